// Package redisproc runs a private redis-server: on a unix socket in a
// fresh temporary folder, never on a TCP port, so it cannot clash with (or
// be mistaken for) any other Redis on the machine. redistest uses it for the
// tests and scripts/bench for the benchmark; it needs no testing.TB.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Binary returns the path of redis-server on the PATH, or an error saying
// it is not installed.
func Binary() (string, error) {
	return exec.LookPath("redis-server")
}

// Version returns what `redis-server --version` prints for bin, trimmed, or
// "" if it cannot be run.
func Version(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Proc is one private redis-server. Restart replaces its process by a new
// one on the same socket and folder.
type Proc struct {
	// URL reaches the server: unix:///.../redis.sock.
	URL string
	// Dir is the server's private folder (socket, log, persistence files).
	Dir string

	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited

	closeOnce sync.Once
}

// Start runs redis-server from bin on a unix socket in a new temporary
// folder and returns once it answers. extra is appended to the arguments,
// for persistence settings such as "--appendonly", "yes". On error nothing
// is left running or on disk.
func Start(bin string, extra ...string) (*Proc, error) {
	// A short folder name: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "mmsredis-")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "redis.sock")
	p := &Proc{URL: "unix://" + sock, Dir: dir, bin: bin}
	p.args = append(append([]string{"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700"},
		commonArgs(dir)...), extra...)
	if err := p.start(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// commonArgs are the settings of every private server: its own folder and
// log, in the foreground, refusing writes rather than evicting when full.
func commonArgs(dir string) []string {
	return []string{
		"--dir", dir,
		"--daemonize", "no",
		"--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"),
		"--maxmemory-policy", "noeviction",
	}
}

// start runs a new redis-server and waits until it answers.
func (p *Proc) start() error {
	cmd := exec.Command(p.bin, p.args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	if err := waitReady(p.URL, 10*time.Second); err != nil {
		return fmt.Errorf("redis-server did not come up: %v\n%s", err, p.Log())
	}
	return nil
}

// Log returns the server's log file so far, for error messages.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "redis.log"))
	return string(b)
}

// Kill ends the current process at once, if there is one. The folder stays,
// so Restart can follow.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Close kills the process and removes its folder. It may be called more
// than once.
func (p *Proc) Close() {
	p.closeOnce.Do(func() {
		p.Kill()
		_ = os.RemoveAll(p.Dir)
	})
}

// Restart stops the server as an operator would, with SIGTERM, which makes
// redis-server sync its append-only file and exit; then, after down, starts
// it again on the same socket and folder, where it reloads its data.
func (p *Proc) Restart(down time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("redis-server is not running")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop redis-server: %w", err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		return fmt.Errorf("redis-server did not exit within 15s of SIGTERM\n%s", p.Log())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("redis-server exited with status %d on SIGTERM\n%s", code, p.Log())
	}

	time.Sleep(down)
	return p.start()
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
