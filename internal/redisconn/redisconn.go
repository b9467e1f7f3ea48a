// Package redisconn turns REDIS_URL into Redis clients for our own code and
// for asynq, with timeouts that keep a slow or absent Redis from hanging a
// request.
//
// REDIS_URL selects one of three deployments:
//
//   - one server: redis://[user:password@]host:port/db, rediss:// for TLS,
//     or unix:///path/to/socket;
//   - a primary managed by Redis Sentinel:
//     redis+sentinel://[user:password@]sentinel1:26379/db?master_name=NAME&addr=sentinel2:26379
//     (with &password=PRIMARY_PASSWORD; rediss+sentinel:// for TLS), where the user and password in the URL
//     are the Sentinels' and password= is the primary's;
//   - Redis Cluster:
//     redis+cluster://[user:password@]node1:6379?addr=node2:6379&addr=node3:6379
//     (rediss+cluster:// for TLS); any reachable nodes will do, the client
//     learns the rest.
//
// Every multi-key operation of mmsgate keeps its keys in one hash slot, so
// the same code runs on each.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Kind names a deployment.
type Kind string

// The deployments REDIS_URL can select.
const (
	Single   Kind = "single"
	Sentinel Kind = "sentinel"
	Cluster  Kind = "cluster"
)

// Conn is a parsed REDIS_URL. It is also asynq's RedisConnOpt, for the parts
// of asynq (servers, the web UI) that make their own connections.
type Conn struct {
	kind     Kind
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

var _ asynq.RedisConnOpt = Conn{}

// Parse reads url and applies timeout to dialling, reads, writes and the
// wait for a pooled connection.
func Parse(rawURL string, timeout time.Duration) (Conn, error) {
	scheme, _, _ := strings.Cut(rawURL, "://")
	base, mode, hasMode := strings.Cut(scheme, "+")
	u, err := url.Parse(rawURL)
	if err != nil {
		return Conn{}, errors.New("REDIS_URL: not a URL")
	}
	var c Conn
	switch {
	case !hasMode && (scheme == "redis" || scheme == "rediss" || scheme == "unix"):
		if p := u.Port(); p != "" && scheme != "unix" && !validPort(p) {
			return c, fmt.Errorf("REDIS_URL: port %q is not a TCP port", p)
		}
		if scheme == "unix" && (u.Host != "" || u.Path == "" || u.Path == "/") {
			return c, errors.New("REDIS_URL: a unix:// URL needs the socket's absolute path: unix:///path/to/socket")
		}
		opt, err := redis.ParseURL(rawURL)
		if err != nil {
			return c, fmt.Errorf("REDIS_URL: %w", err)
		}
		c = Conn{kind: Single, single: opt}
	case mode == "sentinel" && (base == "redis" || base == "rediss"):
		opt, err := redis.ParseFailoverURL(base + strings.TrimPrefix(rawURL, scheme))
		if err != nil {
			return c, fmt.Errorf("REDIS_URL: %w", err)
		}
		if opt.MasterName == "" {
			return c, fmt.Errorf("REDIS_URL: a %s:// URL needs ?master_name=, the name Sentinel knows the primary by",
				scheme)
		}
		c = Conn{kind: Sentinel, failover: opt}
	case mode == "cluster" && (base == "redis" || base == "rediss"):
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return c, fmt.Errorf("REDIS_URL: a %s:// URL may name no database but 0: a Cluster has only db 0", scheme)
		}
		cu := *u
		cu.Path, cu.Scheme = "", base
		opt, err := redis.ParseClusterURL(cu.String())
		if err != nil {
			return c, fmt.Errorf("REDIS_URL: %w", err)
		}
		c = Conn{kind: Cluster, cluster: opt}
	default:
		return c, fmt.Errorf("REDIS_URL: scheme %q is not redis, rediss, unix, redis+sentinel, rediss+sentinel, "+
			"redis+cluster or rediss+cluster", scheme)
	}
	if hasMode {
		if err := checkAddrs(scheme, u); err != nil {
			return Conn{}, err
		}
	}
	c.tune(timeout)
	return c, nil
}

// checkAddrs requires a host and an explicit, valid port of every node a
// Sentinel or Cluster URL names: go-redis would fill in localhost:6379 for
// a missing one, which is neither Sentinel's port nor, likely, any of ours.
func checkAddrs(scheme string, u *url.URL) error {
	if u.Hostname() == "" {
		return fmt.Errorf("REDIS_URL: a %s:// URL needs a host and port", scheme)
	}
	for _, addr := range append([]string{u.Host}, u.Query()["addr"]...) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return fmt.Errorf("REDIS_URL: %q is not host:port; every node of a %s:// URL needs both", addr, scheme)
		}
		if !validPort(port) {
			return fmt.Errorf("REDIS_URL: %q has no valid port (1 to 65535)", addr)
		}
	}
	return nil
}

// validPort reports whether p is a TCP port number, 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// clusterReload is how often a Cluster client reloads the slot map while it
// is in use. go-redis reloads at once on a MOVED reply, but a primary that
// died answers nothing: until a reload the client keeps dialling it, so
// this bounds how long a failover the Cluster has finished goes unnoticed.
const clusterReload = 2 * time.Second

// tune sets the timeouts and retries of every kind alike. One quick retry
// hides a dropped idle connection; more would only stretch the time a
// caller waits for a Redis that is gone.
func (c Conn) tune(timeout time.Duration) {
	set := func(dial, read, write, pool *time.Duration, retries *int, minB, maxB *time.Duration) {
		if timeout > 0 {
			*dial, *read, *write, *pool = timeout, timeout, timeout, timeout
		}
		*retries, *minB, *maxB = 1, 8*time.Millisecond, 64*time.Millisecond
	}
	switch c.kind {
	case Single:
		o := c.single
		set(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries,
			&o.MinRetryBackoff, &o.MaxRetryBackoff)
	case Sentinel:
		o := c.failover
		set(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries,
			&o.MinRetryBackoff, &o.MaxRetryBackoff)
	case Cluster:
		o := c.cluster
		set(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries,
			&o.MinRetryBackoff, &o.MaxRetryBackoff)
		// A slot that moved, or a failover, takes a few redirects to follow.
		o.MaxRedirects = 8
		o.ClusterStateReloadInterval = clusterReload
	}
}

// Kind says which deployment the URL names.
func (c Conn) Kind() Kind { return c.kind }

// NewClient returns a new client for the deployment.
func (c Conn) NewClient() redis.UniversalClient {
	switch c.kind {
	case Sentinel:
		o := *c.failover
		return redis.NewFailoverClient(&o)
	case Cluster:
		o := *c.cluster
		return redis.NewClusterClient(&o)
	}
	o := *c.single
	return redis.NewClient(&o)
}

// MakeRedisClient returns a new client; asynq closes it when it is done.
func (c Conn) MakeRedisClient() any { return c.NewClient() }

// String names the deployment without passwords, for logs and errors.
func (c Conn) String() string {
	switch c.kind {
	case Sentinel:
		return fmt.Sprintf("sentinel primary %q via %s db %d", c.failover.MasterName,
			strings.Join(c.failover.SentinelAddrs, ","), c.failover.DB)
	case Cluster:
		return "cluster via " + strings.Join(c.cluster.Addrs, ",")
	}
	return fmt.Sprintf("%s %s db %d", c.single.Network, c.single.Addr, c.single.DB)
}

// Open parses url and returns a client once Redis has answered a ping.
func Open(ctx context.Context, rawURL string, timeout time.Duration) (Conn, redis.UniversalClient, error) {
	c, err := Parse(rawURL, timeout)
	if err != nil {
		return c, nil, err
	}
	rdb := c.NewClient()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return c, nil, fmt.Errorf("REDIS_URL: no answer from redis at %s: %w", c, err)
	}
	return c, rdb, nil
}

// Ping checks that Redis can serve: the server, the Sentinel-managed
// primary, or every primary of a Cluster (one that is down leaves its
// slots, and so some jobs, unserved, though the others answer).
func Ping(ctx context.Context, rdb redis.UniversalClient) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	}
	return rdb.Ping(ctx).Err()
}
