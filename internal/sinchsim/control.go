package sinchsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// controlPrefix starts the paths of the control API. It has no Sinch auth:
// the simulator is meant to listen on loopback only.
const controlPrefix = "/_sim/"

// maxControlBody bounds the body of a control request.
const maxControlBody = 1 << 20

// Stats sums up what the simulator has seen since start or the last Reset.
type Stats struct {
	// Posts counts POST /batches requests that passed the plan and token
	// checks, whatever their outcome.
	Posts int `json:"posts"`

	// Batches counts created batches.
	Batches int `json:"batches"`

	// ClientReferences counts distinct client_reference values.
	ClientReferences int `json:"client_references"`

	// Duplicates counts batches beyond the first for each client_reference:
	// with one job per reference, every duplicate is an MMS sent twice.
	Duplicates int `json:"duplicates"`

	// ByClientReference maps each client_reference that has more than one
	// batch to its number of batches. References seen once are left out
	// to keep the answer small under load tests.
	ByClientReference map[string]int `json:"by_client_reference"`

	// PendingFaults counts injected faults not used yet.
	PendingFaults int `json:"pending_faults"`
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()

	st := Stats{
		Posts:             s.posts,
		Batches:           len(s.batches),
		ClientReferences:  len(s.byRef),
		ByClientReference: make(map[string]int),
		PendingFaults:     len(s.faults),
	}
	for ref, n := range s.byRef {
		if n > 1 {
			st.ByClientReference[ref] = n
			st.Duplicates += n - 1
		}
	}
	return st
}

// settingsJSON is the JSON form of the settings that can change at run
// time. In a PUT, missing fields keep their value.
type settingsJSON struct {
	Latency    *string  `json:"latency,omitempty"` // Go duration, e.g. "150ms"
	FailRate   *float64 `json:"fail_rate,omitempty"`
	FailStatus *int     `json:"fail_status,omitempty"`
}

// serveControl serves the control API; rest is the path after /_sim/.
//
//	GET  /_sim/stats   Stats as JSON
//	GET  /_sim/faults  the pending faults
//	POST /_sim/faults  a JSON array of faults to queue; answers {"pending": n}
//	POST /_sim/reset   drop batches, counters and faults; answers 204
//	GET  /_sim/config  {"latency", "fail_rate", "fail_status"}
//	PUT  /_sim/config  change any of those; answers the new settings
//	GET  /_sim/reports    the report settings (see reportsOut)
//	PUT  /_sim/reports    change any of them (see reportsIn); answers the new ones
//	GET  /_sim/callbacks  the recorded callbacks and their attempts, oldest
//	                      first; ?batch_id= keeps one batch's
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, rest string) {
	switch rest {
	case "stats":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())

	case "faults":
		switch r.Method {
		case http.MethodGet:
			s.mu.Lock()
			pending := append([]Fault{}, s.faults...)
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, pending)
		case http.MethodPost:
			s.postFaults(w, r)
		default:
			methodNotAllowed(w, http.MethodGet, http.MethodPost)
		}

	case "reset":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		s.Reset()
		w.WriteHeader(http.StatusNoContent)

	case "config":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.settings())
		case http.MethodPut:
			s.putConfig(w, r)
		default:
			methodNotAllowed(w, http.MethodGet, http.MethodPut)
		}

	case "reports":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, reportsView(s.Reports()))
		case http.MethodPut:
			s.putReports(w, r)
		default:
			methodNotAllowed(w, http.MethodGet, http.MethodPut)
		}

	case "callbacks":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		out := s.Callbacks()
		if id := r.URL.Query().Get("batch_id"); id != "" {
			out = slices.DeleteFunc(out, func(c Callback) bool { return c.BatchID != id })
		}
		writeJSON(w, http.StatusOK, out)

	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// postFaults queues the faults of a JSON array such as
// [{"status":503,"retry_after":"2s"},{"hang":"5s","after_create":true}].
func (s *Server) postFaults(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		controlError(w, "read body: "+err.Error())
		return
	}
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		controlError(w, "body must be a JSON array of faults")
		return
	}

	var faults []Fault
	if err := json.Unmarshal(raw, &faults); err != nil {
		controlError(w, err.Error())
		return
	}

	// Fault.UnmarshalJSON has validated each one, so Inject cannot panic.
	s.Inject(faults...)
	writeJSON(w, http.StatusOK, map[string]int{"pending": s.PendingFaults()})
}

// putConfig changes the runtime settings named in the body. Nothing changes
// unless all given values are valid.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()

	var in settingsJSON
	if err := dec.Decode(&in); err != nil {
		controlError(w, "decode config: "+err.Error())
		return
	}

	var latency time.Duration
	if in.Latency != nil {
		d, err := time.ParseDuration(*in.Latency)
		if err != nil || d < 0 {
			controlError(w, fmt.Sprintf("latency %q is not a duration of 0 or more, such as 150ms", *in.Latency))
			return
		}
		latency = d
	}
	if in.FailRate != nil && (*in.FailRate < 0 || *in.FailRate > 1) {
		controlError(w, fmt.Sprintf("fail_rate %v is not between 0 and 1", *in.FailRate))
		return
	}
	if in.FailStatus != nil && (*in.FailStatus < 200 || *in.FailStatus > 599) {
		controlError(w, fmt.Sprintf("fail_status %d is not between 200 and 599", *in.FailStatus))
		return
	}

	s.mu.Lock()
	if in.Latency != nil {
		s.latency = latency
	}
	if in.FailRate != nil {
		s.failRate = *in.FailRate
	}
	if in.FailStatus != nil {
		s.failStatus = *in.FailStatus
	}
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, s.settings())
}

// settings returns the current runtime settings in their JSON form.
func (s *Server) settings() settingsJSON {
	s.mu.Lock()
	defer s.mu.Unlock()

	latency := s.latency.String()
	failRate := s.failRate
	failStatus := s.failStatus
	return settingsJSON{Latency: &latency, FailRate: &failRate, FailStatus: &failStatus}
}

// controlError answers a bad control request.
func controlError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

// reportsOut is the JSON form of ReportSettings in GET and PUT answers,
// durations as Go duration strings. The webhook secret is never shown,
// only whether there is one.
type reportsOut struct {
	Delay         string             `json:"delay"`
	Default       Outcome            `json:"default"`
	Outcomes      map[string]Outcome `json:"outcomes"`
	Duplicate     bool               `json:"duplicate"`
	OutOfOrder    bool               `json:"out_of_order"`
	BeforeCreated bool               `json:"before_created"`
	RetryDelay    string             `json:"retry_delay"`
	MaxAttempts   int                `json:"max_attempts"`
	Timeout       string             `json:"timeout"`
	Signed        bool               `json:"signed"`
}

func reportsView(rs ReportSettings) reportsOut {
	out := reportsOut{
		Delay:         rs.Delay.String(),
		Default:       rs.Default,
		Outcomes:      rs.Outcomes,
		Duplicate:     rs.Duplicate,
		OutOfOrder:    rs.OutOfOrder,
		BeforeCreated: rs.BeforeCreated,
		RetryDelay:    rs.RetryDelay.String(),
		MaxAttempts:   rs.MaxAttempts,
		Timeout:       rs.Timeout.String(),
		Signed:        rs.WebhookSecret != "",
	}
	if out.Outcomes == nil {
		out.Outcomes = map[string]Outcome{}
	}
	return out
}

// reportsIn is the body of PUT /_sim/reports. Missing fields keep their
// value; "outcomes" replaces the whole map ({} clears it); a zero duration
// or count, or an empty default, brings back the default; an empty
// webhook_secret turns signing off.
type reportsIn struct {
	Delay         *string             `json:"delay"`
	Default       *Outcome            `json:"default"`
	Outcomes      *map[string]Outcome `json:"outcomes"`
	Duplicate     *bool               `json:"duplicate"`
	OutOfOrder    *bool               `json:"out_of_order"`
	BeforeCreated *bool               `json:"before_created"`
	RetryDelay    *string             `json:"retry_delay"`
	MaxAttempts   *int                `json:"max_attempts"`
	Timeout       *string             `json:"timeout"`
	WebhookSecret *string             `json:"webhook_secret"`
	// Signed is what GET shows in place of the secret. It is taken when it
	// agrees with the secret, so that a GET's answer can be PUT back as it
	// is; it cannot change the secret.
	Signed *bool `json:"signed"`
}

// setIf sets *dst to *src when a field was given.
func setIf[T any](dst, src *T) {
	if src != nil {
		*dst = *src
	}
}

// putReports changes the report settings named in the body. Nothing
// changes unless all given values are valid.
func (s *Server) putReports(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()

	var in reportsIn
	if err := dec.Decode(&in); err != nil {
		controlError(w, "decode reports: "+err.Error())
		return
	}

	// Held from read to write, so that two PUTs cannot lose a change.
	s.mu.Lock()
	rs := s.reports
	var err error
	setDuration := func(dst *time.Duration, field string, src *string) {
		if src != nil && err == nil {
			*dst, err = parseDuration(field, *src)
		}
	}
	setDuration(&rs.Delay, "delay", in.Delay)
	setDuration(&rs.RetryDelay, "retry_delay", in.RetryDelay)
	setDuration(&rs.Timeout, "timeout", in.Timeout)
	if err != nil {
		s.mu.Unlock()
		controlError(w, err.Error())
		return
	}
	setIf(&rs.Duplicate, in.Duplicate)
	setIf(&rs.OutOfOrder, in.OutOfOrder)
	setIf(&rs.BeforeCreated, in.BeforeCreated)
	setIf(&rs.Default, in.Default)
	setIf(&rs.Outcomes, in.Outcomes)
	setIf(&rs.MaxAttempts, in.MaxAttempts)
	setIf(&rs.WebhookSecret, in.WebhookSecret)
	if in.Signed != nil && *in.Signed != (rs.WebhookSecret != "") {
		s.mu.Unlock()
		controlError(w, "signed: shows whether webhook_secret is set; set webhook_secret to change it")
		return
	}

	if err := rs.validate(); err != nil {
		s.mu.Unlock()
		controlError(w, err.Error())
		return
	}
	s.setReportsLocked(rs)
	out := s.reports
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, reportsView(out))
}
