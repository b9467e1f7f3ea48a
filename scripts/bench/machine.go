package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// machine describes where the figures were measured.
type machine struct {
	cpu, goVersion, redis, os string
	// load is the load average when the benchmark started: other work on
	// the machine skews the figures.
	load string
}

func describeMachine(ctx context.Context, e *env) machine {
	m := machine{
		cpu: fmt.Sprintf("%s, %d logical cores (GOMAXPROCS %d)",
			cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		goVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		os:        osName(),
		load:      loadAverage(),
	}
	if e.embedded {
		m.redis = "embedded miniredis (redis-server not installed): figures are NOT those of a real Redis"
	} else {
		v := "redis-server " + infoField(ctx, e, "server", "redis_version")
		if a := infoField(ctx, e, "memory", "mem_allocator"); a != "" {
			v += " (" + a + ")"
		}
		m.redis = v + ", private, on a unix socket; append-only file, fsync every second, as deploy/compose.yaml"
	}
	return m
}

// infoField reads one field of INFO section from the benchmark's Redis.
func infoField(ctx context.Context, e *env, section, field string) string {
	info, err := e.rdb.Info(ctx, section).Result()
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// cpuModel names the processor, where the system says (Linux).
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU (" + runtime.GOARCH + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU (" + runtime.GOARCH + ")"
}

// osName names the operating system and, on Linux, the distribution and
// kernel.
func osName() string {
	name := runtime.GOOS
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		name += ", kernel " + strings.TrimSpace(string(b))
	}
	return name
}

// loadAverage is the 1, 5 and 15 minute load averages (Linux), or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ") + " (1, 5, 15 min) when the benchmark started"
}
