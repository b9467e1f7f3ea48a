// Command bench measures mmsgate against its performance targets:
// `go run ./scripts/bench` (or `make bench`), `-quick` for a shorter run.
//
// It needs nothing running: it starts a private redis-server on a unix
// socket in a temporary folder (or, without redis-server, the embedded
// miniredis, and says so), its own Sinch simulators, and the real API and
// worker through internal/app, all in this one process. It never touches a
// Redis it did not start and listens only on 127.0.0.1.
//
// The report goes to stdout as markdown, ready to paste into README.md:
// the machine, one table row per figure with its target and PASS or MISS,
// then the raw figures behind each row. Progress goes to stderr. The exit
// status is 0 whether or not targets are met, and 1 only if the benchmark
// itself could not run.
//
// A section is a function that gets the environment and returns its rows
// and raw figures; adding one means adding it to the sections list below.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings every section can read.
type options struct {
	quick bool
	// clients is the number of concurrent HTTP clients (and of goroutines
	// calling asynq's Enqueue in the bare run).
	clients int
	// concurrency is the worker's WORKER_CONCURRENCY, and that of the no-op
	// asynq server it is compared with.
	concurrency int
	// warmup and measure are the phases of a timed load run.
	warmup, measure time.Duration
	// jobs is how many jobs a worker run drains with no simulated latency;
	// jobsSet says -jobs chose it.
	jobs    int
	jobsSet bool
	// memJobs is how many jobs the memory section retains.
	memJobs int
	verbose bool
}

// section is one part of the report.
type section struct {
	// key selects the section with -only.
	key string
	// title heads its rows and raw figures.
	title string
	// run measures. A section with a nil run is planned but not built yet:
	// its planned rows are printed as "not measured yet".
	run     func(ctx context.Context, e *env) (result, error)
	planned []string
}

// result is what a section measured.
type result struct {
	rows []row
	// raw holds the figures behind the rows, one line each.
	raw []string
}

// row is one line of the table.
type row struct {
	figure   string // what was measured, and how
	measured string // the figure itself
	target   string // the target, or "" if this row has none
	verdict  string // PASS, MISS, or "" if this row has no target
}

// sections are measured in this order.
var sections = []section{
	{key: "api", title: "1. API", run: benchAPI},
	{key: "workers", title: "2. Workers", run: benchWorkers},
	{key: "memory", title: "3. Redis memory", run: benchMemory},
	{key: "ratelimit", title: "4. Rate limit", run: benchRateLimit},
	{key: "campaign", title: "5. Campaign", run: benchCampaign},
	{key: "scale", title: "6. Scale-out on Redis Cluster", run: benchScale},
}

func main() {
	var o options
	only := flag.String("only", "", "comma-separated sections to run (default all): "+sectionKeys())
	flag.BoolVar(&o.quick, "quick", false, "a shorter run: shorter load phases, fewer jobs (noisier figures)")
	flag.IntVar(&o.clients, "clients", 16, "concurrent HTTP clients, and goroutines calling Enqueue in the bare run")
	flag.IntVar(&o.concurrency, "concurrency", 20,
		"worker concurrency (WORKER_CONCURRENCY), also of the no-op asynq server")
	jobs := flag.Int("jobs", 0, "tasks per worker run without latency (default 20000, 5000 with -quick)")
	flag.BoolVar(&o.verbose, "v", false, "show the services' logs (otherwise only warnings and errors)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if flag.NArg() > 0 || o.clients < 1 || o.concurrency < 1 || o.concurrency > 1000 || *jobs < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if o.quick {
		o.warmup, o.measure, o.jobs, o.memJobs = 500*time.Millisecond, 2*time.Second, 5000, 2000
	} else {
		o.warmup, o.measure, o.jobs, o.memJobs = time.Second, 5*time.Second, 20000, 5000
	}
	o.jobsSet = *jobs > 0
	if o.jobsSet {
		o.jobs = *jobs
	}
	selected, err := selectSections(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			os.Exit(2)
		}
		defer f.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o, selected)
	stop()
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench failed:", err)
		os.Exit(1)
	}
}

func sectionKeys() string {
	keys := make([]string, len(sections))
	for i, s := range sections {
		keys[i] = s.key
	}
	return strings.Join(keys, ",")
}

func selectSections(only string) (map[string]bool, error) {
	sel := map[string]bool{}
	if only == "" {
		for _, s := range sections {
			sel[s.key] = true
		}
		return sel, nil
	}
	for _, k := range strings.Split(only, ",") {
		k = strings.TrimSpace(k)
		found := false
		for _, s := range sections {
			found = found || s.key == k
		}
		if !found {
			return nil, fmt.Errorf("-only: no section %q (have %s)", k, sectionKeys())
		}
		sel[k] = true
	}
	return sel, nil
}

// outcome is a section's result or the error that stopped it.
type outcome struct {
	section
	result
	err error
}

func run(ctx context.Context, o options, selected map[string]bool) error {
	started := time.Now()
	e, err := newEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	if e.embedded && !o.jobsSet {
		// miniredis is several times slower: keep the run short.
		e.opt.jobs /= 4
		progress("on miniredis: %d jobs per worker run instead of %d", e.opt.jobs, o.jobs)
	}

	var outs []outcome
	failed := 0
	for _, s := range sections {
		if !selected[s.key] {
			continue
		}
		out := outcome{section: s}
		if s.run != nil {
			progress("section %s", s.title)
			t0 := time.Now()
			if err := e.reset(ctx); err != nil {
				return err
			}
			out.result, out.err = s.run(ctx, e)
			if out.err != nil {
				failed++
				progress("section %s failed: %v", s.title, out.err)
			}
			progress("section %s took %s", s.title, time.Since(t0).Round(100*time.Millisecond))
		}
		outs = append(outs, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	printReport(os.Stdout, o, e.machine, outs, time.Since(started))
	if failed > 0 {
		return fmt.Errorf("%d section(s) could not be measured (see above)", failed)
	}
	return nil
}

// progress reports what the benchmark is doing, on stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
