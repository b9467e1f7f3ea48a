package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mmsgate/mmsgate/internal/config"
)

// buildWorker builds ./cmd/worker, as `go build` does, into dir and
// returns the binary's path and how long the build took.
func buildWorker(ctx context.Context, dir string) (string, time.Duration, error) {
	return buildCmd(ctx, dir, "worker")
}

// buildCmd builds ./cmd/<name> into dir as mmsgate-<name>.
func buildCmd(ctx context.Context, dir, name string) (string, time.Duration, error) {
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", 0, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", 0, errors.New("go env GOMOD: not inside the mmsgate module; run the benchmark from it")
	}
	bin := filepath.Join(dir, "mmsgate-"+name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, bytes.TrimSpace(out))
	}
	return bin, time.Since(t0), nil
}

// childEnv is the environment of a service process the benchmark starts:
// this process's environment without any variable the API or the worker
// reads, plus set. Every setting not in set keeps its production default,
// but for two the benchmark always needs: LOG_LEVEL (warn, info with -v)
// and MEDIA_CHECK=false (the media URLs are placeholders that nothing may
// fetch).
func (e *env) childEnv(set map[string]string) []string {
	set = maps.Clone(set)
	if _, ok := set["LOG_LEVEL"]; !ok {
		set["LOG_LEVEL"] = "warn"
		if e.opt.verbose {
			set["LOG_LEVEL"] = "info"
		}
	}
	if _, ok := set["MEDIA_CHECK"]; !ok {
		set["MEDIA_CHECK"] = "false"
	}
	ours := map[string]bool{}
	for _, n := range append(envNames(reflect.TypeFor[config.API]()), envNames(reflect.TypeFor[config.Worker]())...) {
		ours[n] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !ours[name] {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	slices.Sort(env[len(env)-len(set):])
	return env
}

// proc is a service process started by the benchmark.
type proc struct {
	name string
	cmd  *exec.Cmd
	// exited is closed once the process has exited, with err.
	exited chan struct{}
	err    error
	// stopTook is the time from SIGTERM to its exit, once stopped.
	stopTook time.Duration
	stopOnce sync.Once
	stopErr  error
}

// startProc runs bin with env, its output on stderr with name before each
// line. On Linux the process gets SIGTERM should the benchmark die first.
func startProc(name, bin string, env []string) (*proc, error) {
	p := &proc{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	out := &linePrefixer{prefix: name + ": ", w: os.Stderr}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		out.flush()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, as an operator or an orchestrator does, and waits for
// the process to exit; past timeout it kills it. Exiting with a status
// other than 0 is an error. It may be called more than once.
func (p *proc) stop(timeout time.Duration) error {
	p.stopOnce.Do(func() {
		t0 := time.Now()
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("%s had exited before it was stopped: %v", p.name, p.err)
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			p.stopErr = fmt.Errorf("SIGTERM to %s: %w", p.name, err)
		}
		select {
		case <-p.exited:
			p.stopTook = time.Since(t0)
			if p.err != nil && p.stopErr == nil {
				p.stopErr = fmt.Errorf("%s exited after SIGTERM with %v", p.name, p.err)
			}
		case <-time.After(timeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, timeout)
		}
	})
	return p.stopErr
}

// anyExit returns a running that ends, with an error naming it, as soon as
// one of ps exits, for waitDone; calling the returned stop ends the watch.
func anyExit(ps []*proc) (*running, func()) {
	done := make(chan struct{})
	r := newRunning(func() {})
	var once sync.Once
	for _, p := range ps {
		go func() {
			select {
			case <-p.exited:
				select {
				case <-done:
				default:
					once.Do(func() { r.finish(fmt.Errorf("%s exited: %v", p.name, p.err)) })
				}
			case <-done:
			}
		}()
	}
	return r, func() { close(done) }
}

// linePrefixer writes whole lines to w, each with prefix before it.
type linePrefixer struct {
	prefix string
	w      io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (l *linePrefixer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		_, _ = io.WriteString(l.w, l.prefix+string(l.buf[:i+1]))
		l.buf = l.buf[i+1:]
	}
	return len(b), nil
}

// flush writes what is left of a last line without a newline.
func (l *linePrefixer) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		_, _ = io.WriteString(l.w, l.prefix+string(l.buf)+"\n")
		l.buf = nil
	}
}
