// Package faults_test runs the real cmd/api and cmd/worker binaries as
// processes and hurts them the way production will: a worker killed or
// stopped in the middle of sending, Sinch failing or hanging for a minute,
// Redis restarted under load. Every test ends with the same promise checked:
// each job the API accepted is sent, and Sinch holds exactly one batch for it.
//
// TestMain builds both binaries once, with the race detector when the tests
// run with it. Each test then starts its own Redis, its own Sinch simulator
// and its own processes, all on loopback, and kills them when it ends.
package faults_test

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/logging"
)

// binaries are the programs under test, built by TestMain.
var binaries struct {
	api, worker string
}

func TestMain(m *testing.M) {
	flag.Parse()

	// The tests spend their time waiting for timers in other processes, not
	// computing, so all of them run at once unless -parallel says otherwise;
	// by default go test would run only GOMAXPROCS of them at a time.
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if f := flag.Lookup("test.parallel"); f != nil && !given {
		_ = f.Value.Set("4")
	}

	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if testing.Short() {
		// The tests skip themselves; building is not worth it.
		return m.Run()
	}

	dir, err := os.MkdirTemp("", "mmsgate-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	binaries.api = filepath.Join(dir, "api")
	binaries.worker = filepath.Join(dir, "worker")
	return m.Run()
}

// build compiles cmd/api and cmd/worker into dir.
func build(dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}

	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/api", "./cmd/worker")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// moduleRoot is the folder of go.mod: go env GOMOD says where it is, and if
// that fails the folders above the test's own are searched.
func moduleRoot() (string, error) {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}

	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 20 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("no go.mod above the test's folder")
}

// skipShort skips a test in -short mode: each one takes from half a minute
// to two.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("process-level fault tests are slow; skipped in -short mode")
	}
}

// process is one running mmsgate binary.
type process struct {
	name string
	cmd  *exec.Cmd
	logs *logging.Buffer
	done chan struct{} // closed once the process has exited and been reaped
}

// startProcess runs bin with exactly the environment env (nothing is
// inherited, so a REDIS_URL in the developer's shell cannot leak in). Its
// output is kept, shown if the test fails, and searched for panics and data
// races when the test ends; the process is killed then if still running.
func startProcess(t *testing.T, name, bin string, env []string) *process {
	t.Helper()
	p := &process{name: name, logs: &logging.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()

	t.Cleanup(func() {
		p.kill(t)
		if crash := crashLine(p.logs.String()); crash != "" {
			t.Errorf("%s (pid %d): %s", p.name, p.cmd.Process.Pid, crash)
		}
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", p.name, p.cmd.Process.Pid, p.logs)
		}
	})
	return p
}

// crashLine returns the first line of output that shows a panic, a fatal
// runtime error or a data race, or "".
func crashLine(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, prefix := range []string{"panic: ", "fatal error: ", "WARNING: DATA RACE"} {
			if strings.HasPrefix(line, prefix) {
				return line
			}
		}
	}
	return ""
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// waitExit waits up to limit for the process to end and reports whether it
// did.
func (p *process) waitExit(limit time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(limit):
		return false
	}
}

// kill ends the process at once, unless it has ended already.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	if !p.waitExit(10 * time.Second) {
		t.Errorf("%s (pid %d) still running 10s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// exitCode is the process's exit status; only valid once it exited.
func (p *process) exitCode() int { return p.cmd.ProcessState.ExitCode() }

func TestCrashLine(t *testing.T) {
	t.Parallel()

	tests := []struct {
		out, want string
	}{
		{`{"level":"warn","message":"handler panicked"}` + "\n", ""},
		{"x\npanic: boom\n\ngoroutine 1 [running]:\n", "panic: boom"},
		{"fatal error: concurrent map writes\n", "fatal error: concurrent map writes"},
		{"==================\nWARNING: DATA RACE\nWrite at 0x00c000\n", "WARNING: DATA RACE"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, crashLine(tt.out), "output %q", tt.out)
	}
}
