package suppress

// These tests live inside the package so that they can pin the store's
// clock; everything else goes through the exported API, against a Redis of
// the test's own.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/redisconn"
	"github.com/mmsgate/mmsgate/internal/redistest"
)

var clock = time.Date(2025, 3, 14, 9, 26, 53, 589_123_000, time.UTC)

type bundle struct {
	store *Store
	rdb   *redis.Client
	rs    *redistest.Server
	trips *tripCounter
}

func setup(t *testing.T) *bundle {
	t.Helper()
	rs := redistest.Start(t)
	rdb := rs.Client(t)
	trips := &tripCounter{}
	rdb.AddHook(trips)
	s := New(rdb)
	s.now = func() time.Time { return clock }
	return &bundle{store: s, rdb: rdb, rs: rs, trips: trips}
}

// tripCounter counts the round trips a client makes and the most commands
// any one of them carried.
type tripCounter struct {
	trips, maxCmds atomic.Int64
}

func (h *tripCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// setupCmd tells the commands a client sends to set up a new connection,
// which are not the store's doing.
func setupCmd(c redis.Cmder) bool { return c.Name() == "hello" || c.Name() == "client" }

func (h *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !setupCmd(cmd) {
			h.trips.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && setupCmd(cmds[0]) {
			return next(ctx, cmds)
		}
		h.trips.Add(1)
		for {
			m := h.maxCmds.Load()
			if int64(len(cmds)) <= m || h.maxCmds.CompareAndSwap(m, int64(len(cmds))) {
				break
			}
		}
		return next(ctx, cmds)
	}
}

func (h *tripCounter) reset() { h.trips.Store(0); h.maxCmds.Store(0) }

// numbers returns n distinct valid-looking E.164 numbers.
func numbers(n, offset int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+1202%07d", offset+i)
	}
	return out
}

func TestPutGetDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	e, created, err := b.store.Put(ctx, "+12025550123", "replied STOP")
	require.NoError(t, err)
	require.True(t, created)
	want := Entry{Number: "+12025550123", Reason: "replied STOP", CreatedAt: clock.Truncate(time.Millisecond)}
	require.Equal(t, want, e)

	got, err := b.store.Get(ctx, "+12025550123")
	require.NoError(t, err)
	require.Equal(t, want, got)

	_, err = b.store.Get(ctx, "+12025550124")
	require.ErrorIs(t, err, ErrNotFound)

	existed, err := b.store.Delete(ctx, "+12025550123")
	require.NoError(t, err)
	require.True(t, existed)
	existed, err = b.store.Delete(ctx, "+12025550123")
	require.NoError(t, err)
	require.False(t, existed, "a second delete finds nothing")

	_, err = b.store.Get(ctx, "+12025550123")
	require.ErrorIs(t, err, ErrNotFound)
	n, err := b.rdb.Exists(ctx, Key).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the last delete leaves no key behind")
}

func TestPutTwiceKeepsTheFirstEntry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	first, created, err := b.store.Put(ctx, "+447911123456", "complaint")
	require.NoError(t, err)
	require.True(t, created)

	b.store.now = func() time.Time { return clock.Add(time.Hour) }
	again, created, err := b.store.Put(ctx, "+447911123456", "another reason")
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first, again, "the stored entry is returned unchanged")

	got, err := b.store.Get(ctx, "+447911123456")
	require.NoError(t, err)
	require.Equal(t, "complaint", got.Reason)
	require.Equal(t, clock.Truncate(time.Millisecond), got.CreatedAt)
}

func TestConcurrentPutsCreateOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)

	var wg sync.WaitGroup
	var createdCount atomic.Int64
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := b.store.Put(context.Background(), "+12025550123", fmt.Sprint("r", i))
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				createdCount.Add(1)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, createdCount.Load())
}

func TestKeyLayout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	_, _, err := b.store.Put(ctx, "+12025550123", "replied STOP")
	require.NoError(t, err)
	_, _, err = b.store.Put(ctx, "+12025550124", "")
	require.NoError(t, err)
	_, err = b.store.Import(ctx, []string{"+12025550125"}, "list A")
	require.NoError(t, err)

	keys, err := b.rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"mmsgate:suppressions"}, keys, "everything lives in one key")
	typ, err := b.rdb.Type(ctx, Key).Result()
	require.NoError(t, err)
	require.Equal(t, "hash", typ)

	all, err := b.rdb.HGetAll(ctx, Key).Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"+12025550123": `{"reason":"replied STOP","created_at":"2025-03-14T09:26:53.589Z"}`,
		"+12025550124": `{"created_at":"2025-03-14T09:26:53.589Z"}`,
		"+12025550125": `{"reason":"list A","created_at":"2025-03-14T09:26:53.589Z"}`,
	}, all)
	ttl, err := b.rdb.TTL(ctx, Key).Result()
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), ttl, "entries do not expire")
}

func TestRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	for _, tt := range []struct{ number, reason string }{
		{"12025550123", ""},     // no +
		{"+02025550123", ""},    // leading 0
		{"+1 202 555 0123", ""}, // not normalised
		{"+1234567890123456", ""},
		{"", ""},
		{"+12025550123", strings.Repeat("é", MaxReason+1)},
		{"+12025550123", "line\nbreak"},
		{"+12025550123", "tab\there"},
		{"+12025550123", "bad \ufffd escape"},
		{"+12025550123", "\x85 C1 control"},
		{"+12025550123", "invalid \xff utf-8"},
	} {
		_, _, err := b.store.Put(ctx, tt.number, tt.reason)
		require.ErrorIs(t, err, ErrInvalid, "Put(%q, %q)", tt.number, tt.reason)
		_, err = b.store.Import(ctx, []string{"+12025550199", tt.number}, tt.reason)
		require.ErrorIs(t, err, ErrInvalid, "Import(%q, %q)", tt.number, tt.reason)
	}
	n, err := b.rdb.Exists(ctx, Key).Result()
	require.NoError(t, err)
	require.Zero(t, n, "a refused call writes nothing, not even the valid numbers of an import")

	// The longest reason is fine.
	_, created, err := b.store.Put(ctx, "+12025550123", strings.Repeat("é", MaxReason))
	require.NoError(t, err)
	require.True(t, created)
}

func TestCheckReason(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckReason(""))
	require.NoError(t, CheckReason("Opted out by SMS “STOP” 👍"))
	require.ErrorContains(t, CheckReason(strings.Repeat("a", 201)), "at most 200 characters, got 201")
	require.ErrorContains(t, CheckReason("a\x00b"), "control characters")
	require.ErrorContains(t, CheckReason("a\x7fb"), "control characters")
	require.ErrorContains(t, CheckReason("\xc3"), "UTF-8")
}

func TestImportCountsOnlyNewNumbers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	_, _, err := b.store.Put(ctx, "+12025550001", "earlier")
	require.NoError(t, err)

	b.store.now = func() time.Time { return clock.Add(time.Minute) }
	in := []string{"+12025550001", "+12025550002", "+12025550003", "+12025550002"}
	added, err := b.store.Import(ctx, in, "import 7")
	require.NoError(t, err)
	require.Equal(t, 2, added, "one was there already and one is given twice")

	old, err := b.store.Get(ctx, "+12025550001")
	require.NoError(t, err)
	require.Equal(t, "earlier", old.Reason, "an import leaves existing entries alone")
	require.Equal(t, clock.Truncate(time.Millisecond), old.CreatedAt)
	fresh, err := b.store.Get(ctx, "+12025550003")
	require.NoError(t, err)
	require.Equal(t, Entry{Number: "+12025550003", Reason: "import 7",
		CreatedAt: clock.Add(time.Minute).Truncate(time.Millisecond)}, fresh)

	added, err = b.store.Import(ctx, in, "import 7")
	require.NoError(t, err)
	require.Zero(t, added, "repeating an import adds nothing")
	require.EqualValues(t, 3, b.rdb.HLen(ctx, Key).Val())

	added, err = b.store.Import(ctx, nil, "")
	require.NoError(t, err)
	require.Zero(t, added)
}

// TestLargeImportAndFilter checks the sizes bulk imports and campaigns
// deal in: 100,000 numbers are written in chunks of 1000 and looked up ten
// thousand per round trip.
func TestLargeImportAndFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	in := numbers(100_000, 0)
	b.trips.reset()
	added, err := b.store.Import(ctx, in, "bulk")
	require.NoError(t, err)
	require.Equal(t, 100_000, added)
	require.EqualValues(t, 100, b.trips.trips.Load(), "one round trip per 1000 numbers")
	require.EqualValues(t, 1000, b.trips.maxCmds.Load())
	require.EqualValues(t, 100_000, b.rdb.HLen(ctx, Key).Val())

	// Half of what we ask about is on the list, interleaved, with a repeat.
	ask := make([]string, 0, 100_001)
	for i := range 50_000 {
		ask = append(ask, in[i*2], fmt.Sprintf("+1303%07d", i))
	}
	ask = append(ask, in[0])
	b.trips.reset()
	got, err := b.store.Filter(ctx, ask)
	require.NoError(t, err)
	require.EqualValues(t, 11, b.trips.trips.Load(), "10,000 numbers per round trip")
	require.EqualValues(t, 10, b.trips.maxCmds.Load())
	require.Len(t, got, len(ask))
	for i, sup := range got {
		require.Equal(t, strings.HasPrefix(ask[i], "+1202"), sup, "number %d (%s)", i, ask[i])
	}

	// Odd sizes: the last HMGET is partial.
	got, err = b.store.Filter(ctx, in[99_990:])
	require.NoError(t, err)
	require.Equal(t, []bool{true, true, true, true, true, true, true, true, true, true}, got)
}

func TestFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	b.trips.reset()
	got, err := b.store.Filter(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Zero(t, b.trips.trips.Load(), "nothing to look up: no round trip")

	got, err = b.store.Filter(ctx, []string{"+12025550123"})
	require.NoError(t, err)
	require.Equal(t, []bool{false}, got, "an empty list suppresses nothing")

	_, _, err = b.store.Put(ctx, "+12025550123", "")
	require.NoError(t, err)
	got, err = b.store.Filter(ctx, []string{"+12025550124", "+12025550123", "not a number", "+12025550123"})
	require.NoError(t, err)
	require.Equal(t, []bool{false, true, false, true}, got)

	_, err = b.store.Delete(ctx, "+12025550123")
	require.NoError(t, err)
	got, err = b.store.Filter(ctx, []string{"+12025550123"})
	require.NoError(t, err)
	require.Equal(t, []bool{false}, got, "a deleted number is no longer suppressed")
}

func TestUnreadableEntryStillSuppresses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	require.NoError(t, b.rdb.HSet(ctx, Key, "+12025550123", "not json").Err())
	_, err := b.store.Get(ctx, "+12025550123")
	require.ErrorIs(t, err, ErrUnreadable)
	require.NotErrorIs(t, err, ErrNotFound)

	got, err := b.store.Filter(ctx, []string{"+12025550123"})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, got)

	_, created, err := b.store.Put(ctx, "+12025550123", "")
	require.ErrorIs(t, err, ErrUnreadable, "the stored value is reported, not overwritten")
	require.False(t, created)
	v, err := b.rdb.HGet(ctx, Key, "+12025550123").Result()
	require.NoError(t, err)
	require.Equal(t, "not json", v)
}

// TestRedisDownIsAnError: without Redis, no call may pass for "not
// suppressed" or "not found".
func TestRedisDownIsAnError(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	conn, err := redisconn.Parse(rs.URL, 200*time.Millisecond) // as the processes connect
	require.NoError(t, err)
	rdb := conn.NewClient()
	t.Cleanup(func() { _ = rdb.Close() })
	store := New(rdb)
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err())
	rs.Stop()

	_, _, err = store.Put(ctx, "+12025550123", "")
	require.Error(t, err)
	_, err = store.Get(ctx, "+12025550123")
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrNotFound))
	_, err = store.Delete(ctx, "+12025550123")
	require.Error(t, err)
	_, err = store.Import(ctx, numbers(10, 0), "")
	require.Error(t, err)
	got, err := store.Filter(ctx, numbers(10, 0))
	require.Error(t, err)
	require.Nil(t, got)
}
