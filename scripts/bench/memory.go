package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memoryTarget is the most Redis memory one retained single-recipient job
// may take once it is sent.
const memoryTarget = 1536

// benchMemory measures the Redis memory that sent single-recipient jobs
// keep for JOB_RETENTION: used_memory (INFO memory) before any job and
// after N jobs went through the API and the worker, with none of the
// services connected either time, divided by N. used_memory is what Redis
// allocated, so it counts the keys, their expiry entries and the growth of
// Redis's tables, and everything asynq leaves behind (its daily counters,
// amortised over N). Beside it, MEMORY USAGE (SAMPLES 0: exact) of the keys
// that carry a job's ID, which leaves those shared costs out.
func benchMemory(ctx context.Context, e *env) (result, error) {
	n := e.opt.memJobs
	if e.embedded {
		return result{
			rows: []row{{figure: "Redis memory per retained single-recipient job, after it was sent",
				measured: "not measurable on miniredis", target: "≤ 1.5 KB", verdict: "n/a"}},
			raw: []string{"miniredis does not report Redis's memory use (no INFO memory); install redis-server"},
		}, nil
	}

	// Scripts are loaded again by the services: their cost is counted, as
	// it is whichever sections ran before.
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		return result{}, fmt.Errorf("SCRIPT FLUSH: %w", err)
	}
	clients, err := e.connectedClients(ctx)
	if err != nil {
		return result{}, err
	}
	before, err := e.usedMemory(ctx)
	if err != nil {
		return result{}, err
	}

	progress("memory: %d jobs through the API and the worker", n)
	api, err := e.startAPI(ctx, nil)
	if err != nil {
		return result{}, err
	}
	w, err := e.startWorker(ctx, 0, e.opt.concurrency)
	if err != nil {
		_ = api.stop()
		return result{}, err
	}
	ids, err := e.createJobs(ctx, api.base, n)
	if err == nil {
		_, _, err = e.waitDone(ctx, n, w.sim.Posts, w, drainLimit)
	}
	if aerr := api.stop(); err == nil && aerr != nil && !errors.Is(aerr, context.Canceled) {
		err = aerr
	}
	if werr := w.stop(); err == nil && werr != nil {
		err = fmt.Errorf("worker: %w", werr)
	}
	if err == nil {
		_, _, err = checkSent(ctx, e, w.sim.Batches(), ids)
	}
	if err != nil {
		return result{}, err
	}
	if err := e.waitClients(ctx, clients); err != nil {
		return result{}, err
	}
	after, err := e.usedMemory(ctx)
	if err != nil {
		return result{}, err
	}

	keys, err := e.keyUsage(ctx, ids)
	if err != nil {
		return result{}, err
	}

	perJob := float64(after-before) / float64(n)
	perJobKeys := float64(keys.jobBytes) / float64(n)
	res := result{
		rows: []row{
			{figure: fmt.Sprintf("Redis memory per retained single-recipient job, after it was sent: "+
				"used_memory delta / %d", n),
				measured: fmt.Sprintf("%.0f B", perJob),
				target:   "≤ 1.5 KB (1536 B)",
				verdict:  verdict(perJob <= memoryTarget)},
			{figure: "the same, counting only the job's own keys (MEMORY USAGE)",
				measured: fmt.Sprintf("%.0f B", perJobKeys)},
		},
		raw: []string{
			fmt.Sprintf("used_memory %d B before, %d B after %d sent jobs: %+d B = %.1f B per job; target ≤ %d B",
				before, after, n, after-before, perJob, memoryTarget),
			fmt.Sprintf("MEMORY USAGE of the keys naming a job ID: %d keys, %d B = %.1f B per job",
				keys.jobKeys, keys.jobBytes, perJobKeys),
		},
	}
	for _, g := range keys.groups {
		res.raw = append(res.raw, "  "+g)
	}
	res.raw = append(res.raw, fmt.Sprintf("other keys: %d, %d B in all (asynq's queues list, counters and such)",
		keys.otherKeys, keys.otherBytes))
	return res, nil
}

// usedMemory reads used_memory from INFO memory.
func (e *env) usedMemory(ctx context.Context) (int64, error) {
	v := infoField(ctx, e, "memory", "used_memory")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INFO memory: used_memory %q: %v", v, err)
	}
	return n, nil
}

// connectedClients reads connected_clients from INFO clients.
func (e *env) connectedClients(ctx context.Context) (int, error) {
	v := infoField(ctx, e, "clients", "connected_clients")
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("INFO clients: connected_clients %q: %v", v, err)
	}
	return n, nil
}

// waitClients waits until no more than n clients are connected, so that
// no service's connection buffers count as job memory.
func (e *env) waitClients(ctx context.Context, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := e.connectedClients(ctx)
		if err != nil {
			return err
		}
		if c <= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("services still connected to redis after they stopped: %d clients, %d before", c, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// keyUsage is what MEMORY USAGE says of the keys in Redis.
type keyUsage struct {
	jobKeys, otherKeys   int
	jobBytes, otherBytes int64
	// groups describes the job keys by shape, one line per shape.
	groups []string
}

// keyUsage scans every key and sorts those that contain one of ids from
// the others.
func (e *env) keyUsage(ctx context.Context, ids []string) (keyUsage, error) {
	isJob := make(map[string]bool, len(ids))
	for _, id := range ids {
		isJob[id] = true
	}
	type group struct {
		keys     int
		bytes    int64
		encoding string
	}
	groups := map[string]*group{}
	var u keyUsage
	iter := e.rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		size, err := e.rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return u, fmt.Errorf("MEMORY USAGE %s: %w", k, err)
		}
		id := jobIDIn(k, isJob)
		if id == "" {
			u.otherKeys++
			u.otherBytes += size
			continue
		}
		u.jobKeys++
		u.jobBytes += size
		shape := strings.ReplaceAll(k, id, "<job id>")
		g := groups[shape]
		if g == nil {
			g = &group{}
			g.encoding, _ = e.rdb.ObjectEncoding(ctx, k).Result()
			groups[shape] = g
		}
		g.keys++
		g.bytes += size
	}
	if err := iter.Err(); err != nil {
		return u, fmt.Errorf("SCAN: %w", err)
	}
	for shape, g := range groups {
		u.groups = append(u.groups, fmt.Sprintf("%s: %d keys, %.1f B each on average (encoding %s)",
			shape, g.keys, float64(g.bytes)/float64(g.keys), g.encoding))
	}
	slices.Sort(u.groups)
	return u, nil
}

// jobIDIn returns the job ID that key contains, if any. Job IDs are ULIDs:
// 26 characters of Crockford base 32.
func jobIDIn(key string, isJob map[string]bool) string {
	const idLen = 26
	for i := 0; i+idLen <= len(key); i++ {
		if isJob[key[i:i+idLen]] {
			return key[i : i+idLen]
		}
	}
	return ""
}
