// Package sinchsim simulates the Sinch XMS batches API for MMS ("mt_media")
// so that tests, the demo and load tests can run without the real service.
//
// A Server is an http.Handler. It answers under /xms/v1/{service_plan_id}
// like Sinch does (send, list and get batches), stores every batch it
// creates, and lets a test script failures: injected Faults, a random
// FailRate and a fixed Latency. It also reports on delivery like Sinch:
// after a delay each batch's messages turn final (Delivered, or a status
// set per number), the delivery-report endpoints answer for them, and
// batches with a callback_url get their reports POSTed there, with Sinch's
// retries and optional HMAC signature. Callbacks only ever go to loopback IP
// literals; any other callback_url is recorded as refused and never dialed.
// A small control API under /_sim/ exposes the same knobs to tests that run
// the simulator in another process.
package sinchsim

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Defaults used for zero Config fields.
const (
	DefaultServicePlanID      = "sim-plan"
	DefaultToken              = "sim-token"
	DefaultMaxClientReference = 128
	DefaultFailStatus         = http.StatusServiceUnavailable
)

// Config sets up a Server. The zero value is usable: every zero field falls
// back to the default named in its comment.
type Config struct {
	// ServicePlanID is the path segment after /xms/v1/ that requests must
	// carry; any other plan gets 404 with no body. Default "sim-plan".
	ServicePlanID string

	// Token is the API token expected as "Authorization: Bearer <token>";
	// anything else gets 401. Default "sim-token".
	Token string

	// Latency is added before every answer of the batches endpoints. The
	// wait ends early, without an answer, if the client goes away.
	Latency time.Duration

	// DefaultOriginator, if set, stands in for a missing "from", like
	// Sinch's automatic default originator. If empty, "from" is required.
	DefaultOriginator string

	// MaxClientReference is the longest accepted client_reference, in
	// characters. Default 128 (Sinch's documented limits are 128 or 2048).
	MaxClientReference int

	// FailRate is the probability, from 0 to 1, that a POST /batches with
	// no injected Fault pending answers FailStatus without creating a batch.
	FailRate float64

	// FailStatus is the HTTP status used for FailRate failures, answered
	// with a JSON {code, text} body. Default 503.
	FailStatus int

	// Now tells the time used for created_at, send_at defaults, list
	// windows and the statuses the delivery-report endpoints show.
	// Callbacks go out on real timers, after the time this clock says is
	// left until the final statuses when the batch is created. Default
	// time.Now.
	Now func() time.Time

	// Reports sets up delivery reports and callbacks; its zero fields take
	// the defaults named in ReportSettings. It can change at run time
	// through SetReports or /_sim/reports.
	Reports ReportSettings

	// OnCallback, if set, is called once for every callback when its fate
	// is known (delivered, dropped, failed, refused or canceled), from the
	// goroutine that sent it, possibly many at a time. It must return soon:
	// with ReportSettings.BeforeCreated it delays the batch's answer.
	OnCallback func(Callback)
}

// Server is the simulated Sinch API. It is safe for concurrent use.
type Server struct {
	planID            string
	token             string
	defaultOriginator string
	maxClientRef      int
	now               func() time.Time
	onCallback        func(Callback)
	client            *http.Client   // posts callbacks, to loopback only
	wg                sync.WaitGroup // callback goroutines, for Close

	mu         sync.Mutex
	latency    time.Duration // changeable at run time through /_sim/config
	failRate   float64       // idem
	failStatus int           // idem
	faults     []Fault       // pending, consumed from the front
	batches    []*Batch      // in creation order
	byID       map[string]*Batch
	byRef      map[string]int // client_reference -> number of batches
	posts      int
	entropy    io.Reader // ULID entropy; only used with mu held

	reports   ReportSettings // with defaults; changeable through /_sim/reports
	rules     *outcomeRules  // compiled from reports
	states    map[string]*reportState
	callbacks []*Callback // in order of first attempt
	seq       int         // last Callback.Seq
	ctx       context.Context
	stop      context.CancelFunc // ends ctx: pending callbacks, at Reset and Close
	closed    bool               // no callbacks after Close
}

// New returns a Server for cfg, with defaults filled in for zero fields.
// It panics on a setting that cannot work (FailRate outside 0–1, FailStatus
// outside 200–599, a negative Latency or MaxClientReference, invalid
// Reports): that is a mistake of the caller, found at startup.
//
// A Server that may send callbacks should be closed with Close.
func New(cfg Config) *Server {
	if err := cfg.validate(); err != nil {
		panic("sinchsim: " + err.Error())
	}

	s := &Server{
		planID:            cmp.Or(cfg.ServicePlanID, DefaultServicePlanID),
		token:             cmp.Or(cfg.Token, DefaultToken),
		defaultOriginator: cfg.DefaultOriginator,
		maxClientRef:      cmp.Or(cfg.MaxClientReference, DefaultMaxClientReference),
		now:               cfg.Now,
		latency:           cfg.Latency,
		failRate:          cfg.FailRate,
		failStatus:        cmp.Or(cfg.FailStatus, DefaultFailStatus),
		entropy:           ulid.Monotonic(rand.Reader, 0),
		onCallback:        cfg.OnCallback,
		client:            newCallbackClient(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.setReportsLocked(cfg.Reports)
	s.stop = func() {}
	s.resetLocked()
	return s
}

func (c Config) validate() error {
	switch {
	case c.FailRate < 0 || c.FailRate > 1:
		return fmt.Errorf("fail rate %v is not between 0 and 1", c.FailRate)
	case c.FailStatus != 0 && (c.FailStatus < 200 || c.FailStatus > 599):
		return fmt.Errorf("fail status %d is not between 200 and 599", c.FailStatus)
	case c.Latency < 0:
		return fmt.Errorf("latency %s is negative", c.Latency)
	case c.MaxClientReference < 0:
		return fmt.Errorf("max client reference %d is negative", c.MaxClientReference)
	}
	return c.Reports.validate()
}

// ServeHTTP routes a request to the Sinch endpoints or the control API.
//
// Sinch paths are checked in this order: unknown path (404), service plan
// (404), token (401), method (405), then the endpoint itself. The real API's
// order is not documented; this one never reveals anything to a caller
// without the right plan and token.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, controlPrefix); ok {
		s.serveControl(w, r, rest)
		return
	}

	plan, rt, ok := splitSinchPath(r.URL.Path)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if plan != s.planID {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if !s.authorized(r) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}

	if rt.kind == routeBatches {
		switch r.Method {
		case http.MethodPost:
			s.createBatch(w, r)
		case http.MethodGet:
			s.listBatches(w, r)
		default:
			methodNotAllowed(w, http.MethodGet, http.MethodPost)
		}
		return
	}

	if r.Method != http.MethodGet {
		methodNotAllowed(w, http.MethodGet)
		return
	}
	switch rt.kind {
	case routeBatch:
		s.getBatch(w, r, rt.batchID)
	case routeBatchReport:
		s.getBatchReport(w, r, rt.batchID)
	case routeRecipientReport:
		s.getRecipientReport(w, r, rt.batchID, rt.msisdn)
	case routeReports:
		s.listReports(w, r)
	}
}

// routeKind names a Sinch endpoint of the simulator.
type routeKind int

const (
	routeBatches         routeKind = iota // /batches
	routeBatch                            // /batches/{id}
	routeBatchReport                      // /batches/{id}/delivery_report
	routeRecipientReport                  // /batches/{id}/delivery_report/{msisdn}
	routeReports                          // /delivery_reports
)

// route is a parsed Sinch path below the service plan.
type route struct {
	kind    routeKind
	batchID string
	msisdn  string
}

// splitSinchPath takes a path /xms/v1/{plan}/... apart into the plan and
// the endpoint. ok is false for any path the simulator does not serve.
func splitSinchPath(path string) (plan string, rt route, ok bool) {
	rest, found := strings.CutPrefix(path, "/xms/v1/")
	if !found {
		return "", route{}, false
	}

	parts := strings.Split(rest, "/")
	if slices.Contains(parts, "") {
		return "", route{}, false
	}
	plan = parts[0]

	switch {
	case len(parts) == 2 && parts[1] == "delivery_reports":
		return plan, route{kind: routeReports}, true
	case len(parts) < 2 || parts[1] != "batches":
		return "", route{}, false
	case len(parts) == 2:
		return plan, route{kind: routeBatches}, true
	case len(parts) == 3:
		return plan, route{kind: routeBatch, batchID: parts[2]}, true
	case len(parts) == 4 && parts[3] == "delivery_report":
		return plan, route{kind: routeBatchReport, batchID: parts[2]}, true
	case len(parts) == 5 && parts[3] == "delivery_report":
		return plan, route{kind: routeRecipientReport, batchID: parts[2], msisdn: parts[4]}, true
	}
	return "", route{}, false
}

// authorized reports whether r carries the expected bearer token. The scheme
// name is case-insensitive, as HTTP says; the token is compared in constant
// time out of habit.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.token)) == 1
}

// Batches returns copies of all created batches, in creation order.
func (s *Server) Batches() []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()

	out := make([]Batch, len(s.batches))
	for i, b := range s.batches {
		out[i] = b.clone()
	}
	return out
}

// Posts returns the number of POST /batches requests that passed the plan
// and token checks, whatever their outcome.
func (s *Server) Posts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts
}

// CountByClientReference returns how many created batches carry ref as
// their client_reference. More than one means the client sent a duplicate.
func (s *Server) CountByClientReference(ref string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byRef[ref]
}

// Reset drops all batches, counters, pending faults and recorded
// callbacks, and stops the callbacks not sent yet. Runtime settings
// (latency, fail rate, fail status, report settings) are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.faults = nil
	s.batches = nil
	s.byID = make(map[string]*Batch)
	s.byRef = make(map[string]int)
	s.posts = 0

	s.stop()
	s.ctx, s.stop = context.WithCancel(context.Background())
	if s.closed {
		s.stop()
	}
	s.states = make(map[string]*reportState)
	s.callbacks = nil
	s.seq = 0
}

// apiError is a Sinch error answer: a status and, for JSON answers, the
// {code, text} body. An empty Code means a plain-text body.
type apiError struct {
	Status int
	Code   string
	Text   string
}

// Sinch's error codes used by the simulator.
const (
	codeInvalidJSON         = "syntax_invalid_json"
	codeInvalidFormat       = "syntax_invalid_parameter_format"
	codeConstraintViolation = "syntax_constraint_violation"
)

func badRequest(code, text string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Text: text}
}

// write sends e to the client.
func (e *apiError) write(w http.ResponseWriter) {
	if e.Code == "" {
		http.Error(w, cmp.Or(e.Text, http.StatusText(e.Status)), e.Status)
		return
	}
	writeJSON(w, e.Status, errorBody{Code: e.Code, Text: e.Text})
}

// errorBody is Sinch's JSON error body.
type errorBody struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// writeJSON sends v as a JSON answer with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An error here means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

func methodNotAllowed(w http.ResponseWriter, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
}

// sleep waits d, or until ctx ends. It reports whether the full wait passed,
// so that false means the client is gone and nothing should be answered.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}

	t := time.NewTimer(d)
	defer t.Stop()

	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
