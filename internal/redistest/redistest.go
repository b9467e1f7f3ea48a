// Package redistest gives each test a Redis of its own.
//
// With redis-server on the PATH, every call starts a fresh redis-server on a
// private unix socket in a temporary folder, and stops it when the test
// ends; it never touches a server it did not start. Without redis-server it
// falls back to the embedded Redis (miniredis) that the demo uses, so a new
// contributor still gets a real run, unless MMSGATE_TEST_REDIS=server
// demands the real thing (CI does).
//
// StartPersistent gives a Redis that keeps its data as deployed, and that
// Restart can take down gracefully and bring back, to test what a Redis
// restart does to the processes that use it.
package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/redistest/redisproc"
)

// Server is a Redis started for one test.
type Server struct {
	// URL reaches the server: unix:// for redis-server, redis:// for the
	// embedded one.
	URL string
	// Embedded is true when the server is miniredis.
	Embedded bool

	stop     func()
	restart  func(tb testing.TB, down time.Duration)
	failover func() (string, error)
	nodes    []*redisproc.Proc // of a cluster
}

// Stop shuts the server down before the test ends, to test what happens
// when Redis goes away.
func (s *Server) Stop() { s.stop() }

// Restart shuts the server down gracefully, leaves it down for the given
// time, and starts it again on the same address with the data it had. It
// returns once the server answers again. Only a server from StartPersistent
// can be restarted.
func (s *Server) Restart(tb testing.TB, down time.Duration) {
	tb.Helper()
	if s.restart == nil {
		tb.Fatal("redistest: Restart needs a server from StartPersistent")
	}
	s.restart(tb, down)
}

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
		m := startEmbedded(tb)
		return &Server{URL: "redis://" + m.Addr() + "/0", Embedded: true, stop: m.Close}
	}
	return startServer(tb, "--save", "", "--appendonly", "no")
}

func startEmbedded(tb testing.TB) *miniredis.Miniredis {
	tb.Helper()
	announce.Do(func() {
		fmt.Fprintln(os.Stderr, "redistest: redis-server not used; Redis-backed tests run on embedded miniredis")
	})
	return miniredis.RunT(tb)
}

// StartPersistent starts a Redis for tb that keeps its data across Restart,
// and registers its shutdown. redis-server persists as deployed (see
// deploy/compose.yaml): an append-only file synced every second, in a
// private folder, with Redis's default snapshots. The embedded Redis keeps
// its data in memory instead.
func StartPersistent(tb testing.TB) *Server {
	tb.Helper()
	if Mode() == "embedded" {
		m := startEmbedded(tb)
		return &Server{URL: "redis://" + m.Addr() + "/0", Embedded: true, stop: m.Close,
			restart: func(tb testing.TB, down time.Duration) {
				tb.Helper()
				m.Close()
				time.Sleep(down)
				if err := m.Restart(); err != nil {
					tb.Fatalf("restart miniredis: %v", err)
				}
			}}
	}
	return startServer(tb, "--appendonly", "yes", "--appendfsync", "everysec")
}

func startServer(tb testing.TB, persistence ...string) *Server {
	tb.Helper()
	bin, err := redisproc.Binary()
	if err != nil {
		tb.Fatalf("MMSGATE_TEST_REDIS=server but redis-server is not on the PATH: %v", err)
	}
	p, err := redisproc.Start(bin, persistence...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)

	var once sync.Once
	stop := func() { once.Do(p.Kill) }
	restart := func(tb testing.TB, down time.Duration) {
		tb.Helper()
		if err := p.Restart(down); err != nil {
			tb.Fatal(err)
		}
	}
	return &Server{URL: p.URL, stop: stop, restart: restart}
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

// UniversalClient returns a client for s of whatever kind its URL names
// (one server, Sentinel, Cluster), closed when the test ends.
func (s *Server) UniversalClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	conn, err := redisconn.Parse(s.URL, 2*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	c := conn.NewClient()
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// requireServer fails tb unless redis-server is on the PATH: Cluster and
// Sentinel have no embedded stand-in.
func requireServer(tb testing.TB, what string) string {
	tb.Helper()
	bin, err := redisproc.Binary()
	switch {
	case err != nil && os.Getenv("MMSGATE_TEST_REDIS") == "server":
		tb.Fatalf("MMSGATE_TEST_REDIS=server but redis-server is not on the PATH: %v", err)
	case err != nil:
		tb.Skipf("%s needs redis-server on the PATH (the embedded Redis has no %s): skipped, not passed", what, what)
	}
	return bin
}

// StartCluster starts a private three-primary Redis Cluster on 127.0.0.1
// for tb. Its URL is a redis+cluster:// REDIS_URL.
func StartCluster(tb testing.TB) *Server {
	tb.Helper()
	bin := requireServer(tb, "Redis Cluster")
	c, err := redisproc.StartCluster(bin, 3)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return &Server{URL: c.URL, stop: c.Close, nodes: c.Nodes}
}

// StopNode kills node i of a server from StartCluster, as a crash does.
func (s *Server) StopNode(tb testing.TB, i int) {
	tb.Helper()
	if i >= len(s.nodes) {
		tb.Fatalf("redistest: no cluster node %d", i)
	}
	s.nodes[i].Kill()
}

// StartSentinel starts a private primary, its replica and three Sentinels
// on 127.0.0.1 for tb. Its URL is a redis+sentinel:// REDIS_URL; Failover
// moves the primary role to the replica.
func StartSentinel(tb testing.TB) *Server {
	tb.Helper()
	bin := requireServer(tb, "Redis Sentinel")
	s, err := redisproc.StartSentinel(bin)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return &Server{URL: s.URL, stop: s.Close, failover: s.Failover}
}

// Failover moves the primary role of a server from StartSentinel to its
// replica, refusing writes meanwhile, and returns the new primary's
// address.
func (s *Server) Failover(tb testing.TB) string {
	tb.Helper()
	if s.failover == nil {
		tb.Fatal("redistest: Failover needs a server from StartSentinel")
	}
	addr, err := s.failover()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}
