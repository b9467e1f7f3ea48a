package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/redistest"
)

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	rs := redistest.StartPersistent(t)
	c := rs.Client(t)
	ctx := context.Background()

	// Written just before the restart: the graceful shutdown must sync it,
	// not leave it to the once-a-second fsync.
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	rs.Restart(t, 100*time.Millisecond)

	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
}
