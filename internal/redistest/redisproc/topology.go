package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster and Sentinel need TCP: nodes and sentinels tell clients
// where to go by IP and port. These servers listen on 127.0.0.1 only, on
// free ports picked at start.

// freePort returns a TCP port on 127.0.0.1 that nothing listens on, and
// whose cluster bus port (port+10000) is free too when bus is set.
func freePort(bus bool) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if !bus {
			_ = ln.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			_ = ln.Close()
			continue
		}
		busLn, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = busLn.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair found on 127.0.0.1")
}

// startTCP runs redis-server from bin on 127.0.0.1:port with its own folder.
func startTCP(bin string, port int, extra ...string) (*Proc, error) {
	dir, err := os.MkdirTemp("", "mmsredis-")
	if err != nil {
		return nil, err
	}
	p := &Proc{URL: "redis://127.0.0.1:" + strconv.Itoa(port), Dir: dir, bin: bin}
	p.args = append(append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
		"--appendonly", "no"}, commonArgs(dir)...), extra...)
	if err := p.start(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Addr is the server's host:port.
func (p *Proc) Addr() string { return strings.TrimPrefix(p.URL, "redis://") }

// Cluster is a private Redis Cluster of primaries only, each serving an
// equal share of the 16384 hash slots.
type Cluster struct {
	Nodes []*Proc
	// URL reaches it as REDIS_URL does: redis+cluster://...
	URL string
}

// StartCluster starts n primaries on 127.0.0.1, joins them into one
// cluster, and returns once every node reports the cluster ok.
func StartCluster(bin string, n int) (*Cluster, error) {
	c := &Cluster{}
	for range n {
		port, err := freePort(true)
		if err != nil {
			c.Close()
			return nil, err
		}
		p, err := startTCP(bin, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--cluster-require-full-coverage", "yes")
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, p)
	}
	if err := c.form(); err != nil {
		c.Close()
		return nil, err
	}
	var others []string
	for _, p := range c.Nodes[1:] {
		others = append(others, "addr="+p.Addr())
	}
	c.URL = "redis+cluster://" + c.Nodes[0].Addr()
	if len(others) > 0 {
		c.URL += "?" + strings.Join(others, "&")
	}
	return c, nil
}

// form gives each node its share of the slots, introduces them to each
// other and waits for the cluster to settle.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const slots = 16384
	per := slots / len(c.Nodes)
	for i, p := range c.Nodes {
		cl := direct(p)
		first, last := i*per, (i+1)*per-1
		if i == len(c.Nodes)-1 {
			last = slots - 1
		}
		err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err()
		if err == nil && i > 0 {
			host, port, _ := net.SplitHostPort(c.Nodes[0].Addr())
			err = cl.ClusterMeet(ctx, host, port).Err()
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("form cluster: %w", err)
		}
	}
	for {
		ok := true
		for _, p := range c.Nodes {
			cl := direct(p)
			info, err := cl.ClusterInfo(ctx).Result()
			_ = cl.Close()
			if err != nil {
				return fmt.Errorf("form cluster: %w", err)
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info,
				"cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster did not settle: %w\n%s", ctx.Err(), c.Nodes[0].Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops every node and removes their folders.
func (c *Cluster) Close() {
	for _, p := range c.Nodes {
		p.Close()
	}
}

// Sentinel is a private primary with one replica, watched by three
// Sentinels that agree on a failover with a quorum of two.
type Sentinel struct {
	// Servers are the primary and the replica as started; after a failover
	// their roles are swapped.
	Servers   []*Proc
	Sentinels []*Proc
	// Master is the name the Sentinels know the primary by.
	Master string
	// URL reaches it as REDIS_URL does: redis+sentinel://...
	URL string
}

// StartSentinel starts the primary, its replica and three Sentinels on
// 127.0.0.1, and returns once the Sentinels know the replica.
func StartSentinel(bin string) (*Sentinel, error) {
	s := &Sentinel{Master: "mmsgate"}
	primaryPort, err := freePort(false)
	if err != nil {
		return nil, err
	}
	primary, err := startTCP(bin, primaryPort)
	if err != nil {
		return nil, err
	}
	s.Servers = append(s.Servers, primary)
	replicaPort, err := freePort(false)
	if err != nil {
		s.Close()
		return nil, err
	}
	replica, err := startTCP(bin, replicaPort, "--replicaof", "127.0.0.1", strconv.Itoa(primaryPort))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Servers = append(s.Servers, replica)

	var addrs []string
	for range 3 {
		port, err := freePort(false)
		if err != nil {
			s.Close()
			return nil, err
		}
		p, err := startSentinel(bin, port, s.Master, primaryPort)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, p)
		addrs = append(addrs, p.Addr())
	}
	s.URL = "redis+sentinel://" + addrs[0] + "/0?master_name=" + s.Master
	for _, a := range addrs[1:] {
		s.URL += "&addr=" + a
	}
	if err := s.waitReplica(30 * time.Second); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startSentinel runs redis-server in Sentinel mode, from a config file of
// its own, since Sentinel rewrites it.
func startSentinel(bin string, port int, master string, primaryPort int) (*Proc, error) {
	dir, err := os.MkdirTemp("", "mmssent-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf(`bind 127.0.0.1
port %d
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, dir, filepath.Join(dir, "redis.log"), master, primaryPort, master, master, master)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &Proc{URL: "redis://127.0.0.1:" + strconv.Itoa(port), Dir: dir, bin: bin,
		args: []string{conf, "--sentinel"}}
	if err := p.start(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// waitReplica waits until every Sentinel knows the replica, so that a
// failover has somewhere to go.
func (s *Sentinel) waitReplica(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ready := 0
		for _, p := range s.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: p.Addr()})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			reps, err := sc.Replicas(ctx, s.Master).Result()
			cancel()
			_ = sc.Close()
			if err == nil && len(reps) == 1 && reps[0]["flags"] == "slave" {
				ready++
			}
		}
		if ready == len(s.Sentinels) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinels did not see the replica within %s\n%s", limit, s.Sentinels[0].Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PrimaryAddr asks a Sentinel for the primary's address.
func (s *Sentinel) PrimaryAddr(ctx context.Context) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, s.Master).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover moves the primary role to the replica as an operator does for
// planned work, so that no acknowledged write is lost: the primary is made
// to refuse writes (min-replicas-to-write above its replicas), the replica
// is let catch up, the Sentinels fail over, and the old primary takes
// writes again only once it has become a replica, which refuses them.
// Meanwhile clients see failed requests, never a lost write. It returns the
// new primary's address.
func (s *Sentinel) Failover() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oldAddr, err := s.PrimaryAddr(ctx)
	if err != nil {
		return "", err
	}
	old := redis.NewClient(&redis.Options{Addr: oldAddr})
	defer old.Close()
	if err := old.ConfigSet(ctx, "min-replicas-to-write", "100").Err(); err != nil {
		return "", fmt.Errorf("stop writes: %w", err)
	}
	defer old.ConfigSet(context.Background(), "min-replicas-to-write", "0")
	if err := s.waitCaughtUp(ctx, old, oldAddr); err != nil {
		return "", err
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer sc.Close()
	if err := sc.Failover(ctx, s.Master).Err(); err != nil {
		return "", fmt.Errorf("sentinel failover: %w", err)
	}
	for {
		addr, err := s.PrimaryAddr(ctx)
		if err == nil && addr != oldAddr {
			// Sentinel turns the old primary into a replica when it next
			// looks at it, up to ten seconds on; do it now, as it would.
			host, port, _ := net.SplitHostPort(addr)
			if err := old.ReplicaOf(ctx, host, port).Err(); err != nil {
				return "", fmt.Errorf("make the old primary a replica: %w", err)
			}
			role, rerr := old.Do(ctx, "ROLE").Slice()
			if rerr == nil && len(role) > 0 && role[0] == "slave" {
				return addr, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("failover did not finish: %w\n%s", ctx.Err(), s.Sentinels[0].Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitCaughtUp waits until the replica has every write the paused primary
// took.
func (s *Sentinel) waitCaughtUp(ctx context.Context, primary *redis.Client, primaryAddr string) error {
	for {
		info, err := primary.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		offset := field(info, "master_repl_offset")
		for _, p := range s.Servers {
			if p.Addr() == primaryAddr {
				continue
			}
			rc := direct(p)
			rinfo, err := rc.Info(ctx, "replication").Result()
			_ = rc.Close()
			if err == nil && field(rinfo, "slave_repl_offset") == offset && offset != "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica did not catch up: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func field(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// Close stops every process and removes their folders.
func (s *Sentinel) Close() {
	for _, p := range s.Sentinels {
		p.Close()
	}
	for _, p := range s.Servers {
		p.Close()
	}
}

// direct is a plain client of one node.
func direct(p *Proc) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.Addr()})
}
