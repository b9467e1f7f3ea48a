package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// usage is a snapshot of what has been spent so far: Redis commands by
// name and Redis's CPU time (INFO commandstats and cpu; redis-server only),
// and this process's CPU time (getrusage).
type usage struct {
	commands map[string]int64
	redisCPU time.Duration
	ownCPU   time.Duration
	ok       bool // Redis answered both INFO sections
}

func (e *env) usage(ctx context.Context) usage {
	u := usage{commands: map[string]int64{}, ownCPU: ownCPU()}
	if e.embedded {
		return u
	}
	stats, err1 := e.rdb.Info(ctx, "commandstats").Result()
	cpu, err2 := e.rdb.Info(ctx, "cpu").Result()
	if err1 != nil || err2 != nil {
		return u
	}
	for _, line := range strings.Split(stats, "\n") {
		// cmdstat_evalsha:calls=12,usec=34,...
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				u.commands[name] = n
			}
		}
	}
	var secs float64
	for _, line := range strings.Split(cpu, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, _ := strconv.ParseFloat(v, 64)
			secs += f
		}
	}
	u.redisCPU = time.Duration(secs * float64(time.Second))
	u.ok = true
	return u
}

func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// costPer describes what was spent between two snapshots per operation,
// for n operations over wall time: Redis commands, Redis CPU and this
// process's CPU (which holds the load generator as well as the services).
func costPer(before, after usage, n int, wall time.Duration) string {
	if n == 0 {
		return ""
	}
	own := after.ownCPU - before.ownCPU
	s := fmt.Sprintf("this process: %.0f µs CPU per op (%.2f cores busy)",
		float64(own.Microseconds())/float64(n), own.Seconds()/wall.Seconds())
	if !before.ok || !after.ok {
		return s
	}
	type count struct {
		name string
		n    int64
	}
	var counts []count
	var total int64
	for name, calls := range after.commands {
		d := calls - before.commands[name]
		if d <= 0 || name == "info" {
			continue
		}
		total += d
		counts = append(counts, count{name, d})
	}
	slices.SortFunc(counts, func(a, b count) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.name, b.name)) })
	var parts []string
	for _, c := range counts {
		if per := float64(c.n) / float64(n); per >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.2f", c.name, per))
		}
	}
	redisCPU := after.redisCPU - before.redisCPU
	return fmt.Sprintf("Redis: %.2f commands per op, those run by scripts included (%s; rarer ones left out), "+
		"%.0f µs CPU per op (%.2f cores busy); %s",
		float64(total)/float64(n), strings.Join(parts, ", "),
		float64(redisCPU.Microseconds())/float64(n), redisCPU.Seconds()/wall.Seconds(), s)
}
