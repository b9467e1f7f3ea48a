// Command test runs mmsgate's whole test suite: `go run ./scripts/test`.
//
// It says plainly which Redis the Redis-backed tests will use. Each such
// test starts its own redis-server on a private socket; without redis-server
// they run on the embedded Redis the demo uses, unless -require-redis-server
// is given (CI gives it), in which case a missing redis-server is an error.
// Arguments after the flags go to `go test` in place of the defaults.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

func main() {
	require := flag.Bool("require-redis-server", false, "fail if redis-server is not installed")
	race := flag.Bool("race", false, "run the tests with the race detector (needs cgo and a C compiler)")
	flag.Parse()

	env := os.Environ()
	if path, err := exec.LookPath("redis-server"); err == nil {
		version, _ := exec.Command(path, "--version").Output()
		fmt.Printf("test: Redis-backed tests use %s (%s), one private server per test\n",
			path, strings.TrimSpace(string(version)))
		env = append(env, "MMSGATE_TEST_REDIS=server")
	} else if *require {
		fmt.Println("test: redis-server is required (-require-redis-server) but not installed")
		os.Exit(1)
	} else {
		fmt.Println("test: redis-server is NOT installed: Redis-backed tests run on the embedded Redis (miniredis)")
		fmt.Println("test: install redis-server (e.g. apt-get install redis-server) to run them on real Redis")
		env = append(env, "MMSGATE_TEST_REDIS=embedded")
	}

	args := []string{"test", "-count=1", "-p", "2", "-timeout", "15m"}
	if *race {
		args = append(args, "-race")
	}
	if flag.NArg() > 0 {
		args = append(args, flag.Args()...)
	} else {
		args = append(args, "./...")
	}
	fmt.Println("test: go " + strings.Join(args, " "))

	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdout, os.Stderr, env
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Println("test:", err)
		os.Exit(1)
	}
}
