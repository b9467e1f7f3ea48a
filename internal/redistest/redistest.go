// Package redistest gives each test a Redis of its own.
//
// With redis-server on the PATH, every call starts a fresh redis-server on a
// private unix socket in a temporary folder, and stops it when the test
// ends; it never touches a server it did not start. Without redis-server it
// falls back to the embedded Redis (miniredis) that the demo uses, so a new
// contributor still gets a real run, unless MMSGATE_TEST_REDIS=server
// demands the real thing (CI does).
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is a Redis started for one test.
type Server struct {
	// URL reaches the server: unix:// for redis-server, redis:// for the
	// embedded one.
	URL string
	// Embedded is true when the server is miniredis.
	Embedded bool

	stop func()
}

// Stop shuts the server down before the test ends, to test what happens
// when Redis goes away.
func (s *Server) Stop() { s.stop() }

// Mode says which Redis the tests use: "server" or "embedded".
func Mode() string {
	switch os.Getenv("MMSGATE_TEST_REDIS") {
	case "server":
		return "server"
	case "embedded":
		return "embedded"
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		return "server"
	}
	return "embedded"
}

var announce sync.Once

// Start starts a Redis for tb and registers its shutdown.
func Start(tb testing.TB) *Server {
	tb.Helper()
	if Mode() == "embedded" {
		announce.Do(func() {
			fmt.Fprintln(os.Stderr, "redistest: redis-server not used; Redis-backed tests run on embedded miniredis")
		})
		m := miniredis.RunT(tb)
		return &Server{URL: "redis://" + m.Addr() + "/0", Embedded: true, stop: m.Close}
	}
	return startServer(tb)
}

func startServer(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("MMSGATE_TEST_REDIS=server but redis-server is not on the PATH: %v", err)
	}
	// A short folder name: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "mmsredis-")
	if err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(dir, "redis.sock")

	cmd := exec.Command(bin,
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"),
		"--maxmemory-policy", "noeviction",
	)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	tb.Cleanup(func() {
		stop()
		_ = os.RemoveAll(dir)
	})

	url := "unix://" + sock
	if err := waitReady(url, 10*time.Second); err != nil {
		logText, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		tb.Fatalf("redis-server did not come up: %v\n%s", err, logText)
	}
	return &Server{URL: url, stop: stop}
}

func waitReady(url string, limit time.Duration) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Client returns a client for s, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(s.URL)
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opt)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
