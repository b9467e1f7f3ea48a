package mms_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
)

func TestStatusNeverMovesBackwards(t *testing.T) {
	t.Parallel()

	tests := []struct {
		from, to mms.Status
		ok       bool
	}{
		{mms.StatusQueued, mms.StatusSending, true},
		{mms.StatusSending, mms.StatusRetrying, true},
		{mms.StatusRetrying, mms.StatusSending, true},
		{mms.StatusSending, mms.StatusSending, true},
		{mms.StatusSending, mms.StatusSent, true},
		{mms.StatusSending, mms.StatusFailed, true},
		{mms.StatusSent, mms.StatusDelivered, true},
		{mms.StatusSent, mms.StatusSending, false},
		{mms.StatusSent, mms.StatusRetrying, false},
		{mms.StatusSending, mms.StatusQueued, false},
		{mms.StatusFailed, mms.StatusSending, false},
		{mms.StatusFailed, mms.StatusSent, false},
		{mms.StatusDelivered, mms.StatusFailed, false},
		{mms.StatusQueued, "bogus", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.ok, tt.from.CanMove(tt.to), "%s -> %s", tt.from, tt.to)
	}
	require.True(t, mms.StatusCanceled.Final())
	require.False(t, mms.StatusSent.Final())
}

func TestJobID(t *testing.T) {
	t.Parallel()

	id := mms.NewJobID()
	require.True(t, mms.ValidJobID(id))
	require.NotEqual(t, id, mms.NewJobID())
	require.False(t, mms.ValidJobID("../../etc/passwd"))
	require.False(t, mms.ValidJobID(""))
}
