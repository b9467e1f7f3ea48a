package sinch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Error is a non-2xx answer from Sinch.
type Error struct {
	StatusCode int
	// Code is Sinch's machine-readable reason, e.g.
	// syntax_constraint_violation; empty when the body had none.
	Code string
	// Text is Sinch's human-readable detail. It may quote the request, so
	// log it only through a masking function.
	Text string
	// RetryAfter is the wait Sinch asked for, 0 if it asked for none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("sinch: status %d", e.StatusCode)
	}
	return fmt.Sprintf("sinch: status %d (%s)", e.StatusCode, e.Code)
}

// ErrBadAnswer is a 2xx answer we could not use: not JSON, or a batch
// without an ID.
var ErrBadAnswer = errors.New("unusable answer")

// TransportError is a call that got no usable answer: the connection failed,
// timed out, or the answer could not be read.
type TransportError struct {
	Op string
	// Sent reports whether the request was written in full. If it was,
	// Sinch may have created the batch even though we saw no answer.
	Sent bool
	Err  error
}

func (e *TransportError) Error() string { return fmt.Sprintf("sinch: %s: %v", e.Op, e.Err) }

func (e *TransportError) Unwrap() error { return e.Err }

// Class is what a caller should do about an outcome.
type Class int

// The classes of outcome.
const (
	// Permanent: sending the same batch again cannot succeed.
	Permanent Class = iota
	// Transient: a fault on the way or at Sinch; retry with backoff, and
	// count the attempt against the message's budget.
	Transient
	// Throttled: Sinch asked us to slow down (429). Wait and retry without
	// blaming the message.
	Throttled
	// Unauthorized: our credentials are wrong (401). Nothing is wrong with
	// the message: keep it waiting while an operator fixes the token.
	Unauthorized
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Throttled:
		return "throttled"
	case Unauthorized:
		return "unauthorized"
	}
	return "unknown"
}

// Classify sorts an error from this package into a Class. Errors of other
// kinds are Transient: we cannot tell they are final.
func Classify(err error) Class {
	var se *Error
	if !errors.As(err, &se) {
		return Transient
	}
	switch s := se.StatusCode; {
	case s == http.StatusUnauthorized:
		return Unauthorized
	case s == http.StatusTooManyRequests:
		return Throttled
	case s == http.StatusRequestTimeout:
		return Transient
	case s >= 400 && s < 500:
		// 400 and 403 carry a reason; 404 means a wrong plan or host; 405
		// and 415 are our bugs. None is cured by sending again.
		return Permanent
	}
	return Transient
}

// Ambiguous reports whether err leaves open whether Sinch created the batch:
// the request went out but no answer was read. Before sending again, look
// the batch up by its client_reference.
func Ambiguous(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return te.Sent
	}
	// A context that ended while the call was under way: we cannot know
	// how far it got.
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// ReasonCode returns a short code for err to store with a job: Sinch's own
// code where it gave one, else a code of ours.
func ReasonCode(err error) string {
	var se *Error
	if errors.As(err, &se) {
		if se.Code != "" {
			return se.Code
		}
		return fmt.Sprintf("http_%d", se.StatusCode)
	}
	var te *TransportError
	if errors.As(err, &te) {
		if errors.Is(te.Err, ErrBadAnswer) {
			return "bad_answer"
		}
		var ne net.Error
		if errors.Is(te.Err, context.DeadlineExceeded) || (errors.As(te.Err, &ne) && ne.Timeout()) {
			return "timeout"
		}
		return "network_error"
	}
	return "internal_error"
}
