package media_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/redistest"
)

func TestCacheInRedis(t *testing.T) {
	t.Parallel()
	rdb := redistest.Start(t).Client(t)
	withCache := func(cfg *media.Config) {
		cfg.Cache = media.NewRedisCache(rdb, time.Second)
		cfg.CacheTTL = time.Minute
	}

	t.Run("a pass is kept and shared", func(t *testing.T) {
		srv, n := serve(t, file("image/jpeg", 500))
		c, _ := newChecker(t, withCache)
		u := srv.URL + "/cached.jpg"

		first := check(t, c, u)
		require.True(t, first.OK)
		require.False(t, first.Cached)
		require.EqualValues(t, 1, n.Load())

		second := check(t, c, u)
		require.EqualValues(t, 1, n.Load(), "the second check made no request")
		require.True(t, second.Cached)
		second.Cached = false
		require.Equal(t, first.CheckedAt.UnixMilli(), second.CheckedAt.UnixMilli())
		second.CheckedAt = first.CheckedAt
		require.Equal(t, first, second)

		// Another process, another Checker: the same Redis answers.
		other, d := newChecker(t, withCache)
		third := check(t, other, u)
		require.True(t, third.OK)
		require.True(t, third.Cached)
		require.EqualValues(t, 1, n.Load())
		require.Empty(t, d.attempts())

		ttl, err := rdb.TTL(context.Background(), media.CacheKey(u)).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 50*time.Second)
		require.LessOrEqual(t, ttl, time.Minute)
		raw, err := rdb.Get(context.Background(), media.CacheKey(u)).Result()
		require.NoError(t, err)
		require.Contains(t, raw, `"ok":true`)
	})

	t.Run("a permanent failure is kept", func(t *testing.T) {
		srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
		c, _ := newChecker(t, withCache)
		u := srv.URL + "/gone.jpg"
		requireFail(t, check(t, c, u), media.ReasonHTTPStatus, false)
		r := check(t, c, u)
		requireFail(t, r, media.ReasonHTTPStatus, false)
		require.True(t, r.Cached)
		require.EqualValues(t, 1, n.Load())
	})

	t.Run("a transient failure is not kept", func(t *testing.T) {
		srv, n := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		c, _ := newChecker(t, withCache)
		u := srv.URL + "/down.jpg"
		requireFail(t, check(t, c, u), media.ReasonHTTPStatus, true)
		r := check(t, c, u)
		requireFail(t, r, media.ReasonHTTPStatus, true)
		require.False(t, r.Cached)
		require.EqualValues(t, 2, n.Load())
		require.Zero(t, rdb.Exists(context.Background(), media.CacheKey(u)).Val())
	})

	t.Run("a forbidden address is kept", func(t *testing.T) {
		c, d := newChecker(t, withCache, "")
		u := "http://10.0.0.1/f.jpg"
		requireFail(t, check(t, c, u), media.ReasonForbiddenAddress, false)
		r := check(t, c, u)
		require.True(t, r.Cached)
		require.Empty(t, d.attempts())
	})

	t.Run("an entry for another URL under the key is ignored", func(t *testing.T) {
		srv, n := serve(t, file("image/jpeg", 500))
		u := srv.URL + "/x.jpg"
		cache := media.NewRedisCache(rdb, time.Second)
		require.NoError(t, cache.Set(context.Background(), "http://elsewhere/y.jpg", media.Result{OK: true},
			time.Minute))
		// Copy that entry under u's key, as a hash collision would.
		raw := rdb.Get(context.Background(), media.CacheKey("http://elsewhere/y.jpg")).Val()
		require.NoError(t, rdb.Set(context.Background(), media.CacheKey(u), raw, time.Minute).Err())

		_, ok, err := cache.Get(context.Background(), u)
		require.NoError(t, err)
		require.False(t, ok)
		c, _ := newChecker(t, withCache)
		require.False(t, check(t, c, u).Cached)
		require.EqualValues(t, 1, n.Load())
	})

	t.Run("Redis away: checks go on without the cache", func(t *testing.T) {
		rs := redistest.Start(t)
		gone := rs.Client(t)
		rs.Stop()
		srv, n := serve(t, file("image/jpeg", 500))
		c, _ := newChecker(t, func(cfg *media.Config) { cfg.Cache = media.NewRedisCache(gone, 200*time.Millisecond) })
		require.True(t, check(t, c, srv.URL+"/f.jpg").OK)
		require.True(t, check(t, c, srv.URL+"/f.jpg").OK)
		require.EqualValues(t, 2, n.Load())
	})
}

func TestCacheKey(t *testing.T) {
	t.Parallel()
	k := media.CacheKey("https://cdn.example.com/a.jpg")
	require.Regexp(t, `^mmsgate:media:\{[0-9a-f]{32}\}$`, k)
	require.NotEqual(t, k, media.CacheKey("https://cdn.example.com/b.jpg"))
	require.NotContains(t, k, "cdn")
}
