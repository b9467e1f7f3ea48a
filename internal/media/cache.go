package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache keeps check results per URL. A Checker stores passing results and
// permanent failures in it, never transient ones.
type Cache interface {
	// Get returns the result kept for rawURL; false when there is none.
	Get(ctx context.Context, rawURL string) (Result, bool, error)
	// Set keeps r for rawURL for ttl.
	Set(ctx context.Context, rawURL string, r Result, ttl time.Duration) error
}

// RedisCache is a Cache in Redis, shared by every process that uses the
// same Redis.
type RedisCache struct {
	rdb     redis.UniversalClient
	timeout time.Duration
}

// NewRedisCache returns a cache in rdb whose operations each take at most
// timeout (none when zero).
func NewRedisCache(rdb redis.UniversalClient, timeout time.Duration) *RedisCache {
	return &RedisCache{rdb: rdb, timeout: timeout}
}

// CacheKey is the Redis key of rawURL's result: a hash, so that the key
// reveals nothing of the URL and has a bounded length.
func CacheKey(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "mmsgate:media:{" + hex.EncodeToString(sum[:16]) + "}"
}

func (c *RedisCache) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Get reads rawURL's result.
func (c *RedisCache) Get(ctx context.Context, rawURL string) (Result, bool, error) {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	b, err := c.rdb.Get(ctx, CacheKey(rawURL)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, err
	}
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Result{}, false, fmt.Errorf("media cache: unreadable entry: %w", err)
	}
	// The key holds only part of a hash: make sure the entry is this URL's.
	if e.URL != rawURL {
		return Result{}, false, nil
	}
	return e.Result, true, nil
}

// entry is a Result as kept, with the URL it is for.
type entry struct {
	Result
	URL string `json:"url"`
}

// Set keeps r for rawURL for ttl.
func (c *RedisCache) Set(ctx context.Context, rawURL string, r Result, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	r.Cached = false
	b, err := json.Marshal(entry{Result: r, URL: rawURL})
	if err != nil {
		return err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.rdb.Set(ctx, CacheKey(rawURL), b, ttl).Err()
}
