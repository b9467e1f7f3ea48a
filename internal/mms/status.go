package mms

// Status is where a job stands.
type Status string

// The job statuses. A job only ever moves to a status of the same or a
// higher rank; see CanMove.
const (
	StatusQueued             Status = "queued"
	StatusScheduled          Status = "scheduled"
	StatusSending            Status = "sending"
	StatusRetrying           Status = "retrying"
	StatusSent               Status = "sent"
	StatusDelivered          Status = "delivered"
	StatusPartiallyDelivered Status = "partially_delivered"
	StatusFailed             Status = "failed"
	StatusCanceled           Status = "canceled"
	StatusExpired            Status = "expired"
)

// rank orders statuses: waiting, being sent, accepted by Sinch, final.
var rank = map[Status]int{
	StatusQueued:             0,
	StatusScheduled:          0,
	StatusSending:            1,
	StatusRetrying:           1,
	StatusSent:               2,
	StatusDelivered:          3,
	StatusPartiallyDelivered: 3,
	StatusFailed:             3,
	StatusCanceled:           3,
	StatusExpired:            3,
}

// Rank returns the order of s among statuses, -1 for an unknown one.
func (s Status) Rank() int {
	r, ok := rank[s]
	if !ok {
		return -1
	}
	return r
}

// Final reports whether nothing more will happen to a job in status s.
func (s Status) Final() bool { return s.Rank() == 3 }

// CanMove reports whether a job may go from status s to next. Statuses never
// move backwards; the only moves within a rank are between sending and
// retrying, as attempts come and go.
func (s Status) CanMove(next Status) bool {
	from, to := s.Rank(), next.Rank()
	if from < 0 || to < 0 || from == 3 {
		return false
	}
	if to > from {
		return true
	}
	return from == 1 && to == 1
}
