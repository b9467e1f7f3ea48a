package jobstore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
)

func TestReserve(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	r1 := Reservation{Fingerprint: "fp", JobID: mms.NewJobID(), At: clock}
	prev, err := b.store.Reserve(ctx, "k1", "order-1", r1, nil, time.Hour)
	require.NoError(t, err)
	require.Nil(t, prev, "the first reservation is taken")

	ttl, err := b.rdb.PTTL(ctx, idemKey("k1", "order-1")).Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)

	r2 := Reservation{Fingerprint: "fp", JobID: mms.NewJobID(), At: clock}
	prev, err = b.store.Reserve(ctx, "k1", "order-1", r2, nil, time.Hour)
	require.NoError(t, err)
	require.Equal(t, r1.JobID, prev.JobID, "a second one gets the first back")
	require.Equal(t, r1.Fingerprint, prev.Fingerprint)

	prev, err = b.store.Reserve(ctx, "k2", "order-1", r2, nil, time.Hour)
	require.NoError(t, err)
	require.Nil(t, prev, "scopes are separate")

	// Taking over a stale reservation works only against the one read.
	stale, err := b.store.Reserve(ctx, "k1", "order-1", r2, nil, time.Hour)
	require.NoError(t, err)
	prev, err = b.store.Reserve(ctx, "k1", "order-1", r2, stale, time.Hour)
	require.NoError(t, err)
	require.Nil(t, prev)
	r3 := Reservation{Fingerprint: "fp", JobID: mms.NewJobID(), At: clock}
	prev, err = b.store.Reserve(ctx, "k1", "order-1", r3, stale, time.Hour)
	require.NoError(t, err)
	require.Equal(t, r2.JobID, prev.JobID, "the reservation changed: no takeover")

	// Release removes only the caller's own reservation.
	require.NoError(t, b.store.Release(ctx, "k1", "order-1", r1))
	prev, err = b.store.Reserve(ctx, "k1", "order-1", r3, nil, time.Hour)
	require.NoError(t, err)
	require.Equal(t, r2.JobID, prev.JobID)
	require.NoError(t, b.store.Release(ctx, "k1", "order-1", r2))
	prev, err = b.store.Reserve(ctx, "k1", "order-1", r3, nil, time.Hour)
	require.NoError(t, err)
	require.Nil(t, prev)
}
