package sinchsim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is a scripted outcome for one POST /batches. Faults are queued by
// Inject (or POST /_sim/faults) and each is used up by the next POST that
// passes the plan and token checks, whatever its body. While a Fault is
// pending, FailRate is not rolled.
//
// The zero Fault answers normally, which lets a script leave gaps:
// Inject(Fault{Status: 503}, Fault{}, Fault{Status: 429}).
type Fault struct {
	// Status is the HTTP status to answer instead of the normal one, from
	// 200 to 599; 0 keeps the normal answer.
	Status int

	// Code and Text make the JSON error body {code, text}. Empty fields get
	// defaults: code syntax_constraint_violation for 400, otherwise the
	// status text in snake_case (e.g. service_unavailable), which is not a
	// Sinch code, so it tests that clients go by status for unknown codes.
	// A 401 without Code answers plain text, as Sinch documents no JSON.
	Code, Text string

	// RetryAfter, if positive, is sent as a Retry-After header in whole
	// seconds, rounded up.
	RetryAfter time.Duration

	// Hang delays the answer by this long, or until the client goes away,
	// to simulate a timeout. Without AfterCreate the request is not
	// processed at all when the client gives up.
	Hang time.Duration

	// AfterCreate processes the request first, storing the batch if it is
	// valid, and only then hangs and answers Status: a lost response for a
	// batch that nevertheless exists.
	AfterCreate bool
}

// Inject queues faults for the next POST /batches requests, in order, after
// any already pending. It panics on a fault that cannot be answered (a
// Status outside 200–599 other than 0, or a negative duration), since that
// is a mistake in the test that calls it.
func (s *Server) Inject(f ...Fault) {
	for _, fault := range f {
		if err := fault.validate(); err != nil {
			panic("sinchsim: " + err.Error())
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// PendingFaults returns the number of injected faults not used yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// nextOutcome decides how the current POST ends: the next pending fault
// (ok true), or a FailRate failure (failStatus non-zero), or neither.
func (s *Server) nextOutcome() (f Fault, ok bool, failStatus int) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if len(s.faults) > 0 {
		f = s.faults[0]
		s.faults = s.faults[1:]
		return f, true, 0
	}
	if s.failRate > 0 && rand.Float64() < s.failRate {
		return Fault{}, false, s.failStatus
	}
	return Fault{}, false, 0
}

func (f Fault) validate() error {
	switch {
	case f.Status != 0 && (f.Status < 200 || f.Status > 599):
		return fmt.Errorf("invalid fault: status %d is not 0 or 200-599", f.Status)
	case f.RetryAfter < 0:
		return fmt.Errorf("invalid fault: negative retry_after %s", f.RetryAfter)
	case f.Hang < 0:
		return fmt.Errorf("invalid fault: negative hang %s", f.Hang)
	}
	return nil
}

// write answers the fault's status and error body.
func (f Fault) write(w http.ResponseWriter) {
	if f.RetryAfter > 0 {
		secs := (f.RetryAfter + time.Second - 1) / time.Second
		w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	}

	e := apiError{Status: f.Status, Code: f.Code, Text: f.Text}
	if e.Code == "" && f.Status != http.StatusUnauthorized {
		e.Code = defaultFaultCode(f.Status)
	}
	if e.Code != "" {
		e.Text = cmp.Or(e.Text, "simulated failure: "+strings.ToLower(http.StatusText(f.Status)))
	}
	e.write(w)
}

// defaultFaultCode is the error code of a fault that names none.
func defaultFaultCode(status int) string {
	if status == http.StatusBadRequest {
		return codeConstraintViolation
	}

	text := http.StatusText(status)
	if text == "" {
		return "status_" + strconv.Itoa(status)
	}
	return strings.ReplaceAll(strings.ToLower(strings.ReplaceAll(text, "-", " ")), " ", "_")
}

// faultJSON is the JSON form of a Fault, with durations as Go duration
// strings such as "1.5s".
type faultJSON struct {
	Status      int    `json:"status,omitempty"`
	Code        string `json:"code,omitempty"`
	Text        string `json:"text,omitempty"`
	RetryAfter  string `json:"retry_after,omitempty"`
	Hang        string `json:"hang,omitempty"`
	AfterCreate bool   `json:"after_create,omitempty"`
}

// MarshalJSON writes f as the control API reads it, e.g.
// {"status":503,"retry_after":"2s"}.
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Status: f.Status, Code: f.Code, Text: f.Text, AfterCreate: f.AfterCreate}
	if f.RetryAfter != 0 {
		j.RetryAfter = f.RetryAfter.String()
	}
	if f.Hang != 0 {
		j.Hang = f.Hang.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form written by MarshalJSON. Unknown fields are
// an error, so that a misspelt knob does not silently do nothing.
func (f *Fault) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()

	var j faultJSON
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}

	out := Fault{Status: j.Status, Code: j.Code, Text: j.Text, AfterCreate: j.AfterCreate}
	var err error
	if out.RetryAfter, err = parseDuration("retry_after", j.RetryAfter); err != nil {
		return err
	}
	if out.Hang, err = parseDuration("hang", j.Hang); err != nil {
		return err
	}

	if err := out.validate(); err != nil {
		return err
	}
	*f = out
	return nil
}

// parseDuration parses an optional Go duration string naming the field in
// its error.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s: must not be negative", field)
	}
	return d, nil
}
