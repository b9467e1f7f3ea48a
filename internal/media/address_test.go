package media

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDefaultDialerChecksAtTheSocket: the default dialer checks the address
// once more just before connecting, so even an address that slipped past
// the first check is never connected to. The listener is on loopback and
// must see no connection.
func TestDefaultDialerChecksAtTheSocket(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			_ = c.Close()
		}
	}()

	g := &guard{resolver: net.DefaultResolver} // no allow-list, default dialer
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := g.connect(ctx, "tcp", ln.Addr().String(), "127.0.0.1", false)
	if conn != nil {
		_ = conn.Close()
	}
	var ae *AddressError
	require.True(t, errors.As(err, &ae), "error %v", err)
	require.Equal(t, "a loopback address", ae.Why)
	select {
	case <-accepted:
		t.Fatal("the listener was connected to")
	case <-time.After(100 * time.Millisecond):
	}

	// With the address allowed, the same dialer connects.
	al, err := ParseAllowList([]string{"127.0.0.1"})
	require.NoError(t, err)
	g.allow = al
	conn, err = g.connect(ctx, "tcp", ln.Addr().String(), "127.0.0.1", false)
	require.NoError(t, err)
	_ = conn.Close()
	select {
	case <-accepted:
	case <-time.After(time.Second):
		t.Fatal("no connection")
	}
}

// TestDefaultDialerEndToEnd: a Checker with the production dialer reaches
// an allowed loopback server and refuses it when not allowed.
func TestDefaultDialerEndToEnd(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 10\r\n\r\n"))
			}()
		}
	}()
	u := "http://" + ln.Addr().String() + "/f.png"

	al, err := ParseAllowList([]string{"127.0.0.1"})
	require.NoError(t, err)
	r := New(Config{Allow: al, Timeout: 2 * time.Second}).Check(context.Background(), u)
	require.True(t, r.OK, "%+v", r)

	r = New(Config{Timeout: 2 * time.Second}).Check(context.Background(), u)
	require.Equal(t, ReasonForbiddenAddress, r.Reason)
}
