// Package redisconn turns REDIS_URL into Redis clients for our own code and
// for asynq, with timeouts that keep a slow or absent Redis from hanging a
// request.
package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Options parses url (redis://, rediss:// or unix://) and applies timeout to
// dialling, reads and writes.
func Options(url string, timeout time.Duration) (*redis.Options, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if timeout > 0 {
		opt.DialTimeout = timeout
		opt.ReadTimeout = timeout
		opt.WriteTimeout = timeout
		opt.PoolTimeout = timeout
	}
	// One quick retry hides a dropped idle connection; more would only
	// stretch the time a caller waits for a Redis that is gone.
	opt.MaxRetries = 1
	opt.MinRetryBackoff = 8 * time.Millisecond
	opt.MaxRetryBackoff = 64 * time.Millisecond
	return opt, nil
}

// Open returns the options parsed from url and a client built from them,
// once Redis has answered a ping.
func Open(ctx context.Context, url string, timeout time.Duration) (*redis.Options, *redis.Client, error) {
	opt, err := Options(url, timeout)
	if err != nil {
		return nil, nil, err
	}
	c := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("REDIS_URL: no answer from redis at %s: %w", safeAddr(opt), err)
	}
	return opt, c, nil
}

// ConnOpt adapts options to asynq's RedisConnOpt, for the parts of asynq
// (server, web UI) that make their own connection.
type ConnOpt struct{ Opt *redis.Options }

// MakeRedisClient returns a new client; asynq closes it when it is done.
func (c ConnOpt) MakeRedisClient() any {
	o := *c.Opt
	return redis.NewClient(&o)
}

var _ asynq.RedisConnOpt = ConnOpt{}

// safeAddr names the server without the password, for error messages.
func safeAddr(o *redis.Options) string {
	return fmt.Sprintf("%s %s db %d", o.Network, o.Addr, o.DB)
}
