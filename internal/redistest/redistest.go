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
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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

	stop    func()
	restart func(tb testing.TB, down time.Duration)
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

// redisProc is one redis-server, which Restart replaces by a new process on
// the same socket and folder.
type redisProc struct {
	bin  string
	args []string
	dir  string
	url  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
}

func startServer(tb testing.TB, persistence ...string) *Server {
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

	p := &redisProc{bin: bin, dir: dir, url: "unix://" + sock}
	p.args = append([]string{
		"--port", "0",
		"--unixsocket", sock,
		"--unixsocketperm", "700",
		"--dir", dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"),
		"--maxmemory-policy", "noeviction",
	}, persistence...)
	tb.Cleanup(func() {
		p.kill()
		_ = os.RemoveAll(dir)
	})
	p.start(tb)

	var once sync.Once
	stop := func() { once.Do(p.kill) }
	return &Server{URL: p.url, stop: stop, restart: p.restart}
}

// start runs a new redis-server and waits until it answers.
func (p *redisProc) start(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command(p.bin, p.args...)
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	if err := waitReady(p.url, 10*time.Second); err != nil {
		logText, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
		tb.Fatalf("redis-server did not come up: %v\n%s", err, logText)
	}
}

// kill ends the current process at once, if there is one.
func (p *redisProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// restart stops the server as an operator would, with SIGTERM, which makes
// redis-server sync its append-only file and exit; then, after down, starts
// it again on the same socket and folder, where it reloads its data.
func (p *redisProc) restart(tb testing.TB, down time.Duration) {
	tb.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("stop redis-server: %v", err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		logText, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
		tb.Fatalf("redis-server did not exit within 15s of SIGTERM\n%s", logText)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		logText, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
		tb.Fatalf("redis-server exited with status %d on SIGTERM\n%s", code, logText)
	}

	time.Sleep(down)
	p.start(tb)
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
