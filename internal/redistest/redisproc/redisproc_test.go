package redisproc_test

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mmsgate/mmsgate/internal/redistest/redisproc"
)

func TestStartAndClose(t *testing.T) {
	bin, err := redisproc.Binary()
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	p, err := redisproc.Start(bin, "--save", "", "--appendonly", "no")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	opt, err := redis.ParseURL(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping %s: %v", p.URL, err)
	}

	p.Close()
	p.Close() // a second Close does nothing
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("the server still answers after Close")
	}
	if _, err := os.Stat(p.Dir); !os.IsNotExist(err) {
		t.Fatalf("folder %s still there after Close (stat: %v)", p.Dir, err)
	}
}
