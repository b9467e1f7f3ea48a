package sinchsim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Delivery report types, as Sinch names them for MMS (§6.2, §6.3 of
// shared/reference/sinch-xms-mms.md).
const (
	TypeRecipientReport = "recipient_delivery_report_mms"
	TypeBatchReport     = "delivery_report_mms"
)

// Delivery statuses (§6.4). Queued and Dispatched are intermediate; the
// others are final.
const (
	StatusQueued     = "Queued"
	StatusDispatched = "Dispatched"
	StatusAborted    = "Aborted"
	StatusCancelled  = "Cancelled"
	StatusRejected   = "Rejected"
	StatusDeleted    = "Deleted"
	StatusDelivered  = "Delivered"
	StatusFailed     = "Failed"
	StatusExpired    = "Expired"
	StatusUnknown    = "Unknown"
)

// Detailed codes of the intermediate statuses (§6.5).
const (
	CodeQueued     = 400
	CodeDispatched = 401
)

// Defaults used for zero ReportSettings fields.
const (
	DefaultReportDelay        = 200 * time.Millisecond
	DefaultCallbackRetryDelay = 100 * time.Millisecond
	DefaultCallbackAttempts   = 5
	DefaultCallbackTimeout    = 5 * time.Second
)

// statuses maps every status, in lower case, to its spelling and whether
// it is final.
var statuses = map[string]struct {
	name  string
	final bool
}{
	"queued":     {StatusQueued, false},
	"dispatched": {StatusDispatched, false},
	"aborted":    {StatusAborted, true},
	"cancelled":  {StatusCancelled, true},
	"rejected":   {StatusRejected, true},
	"deleted":    {StatusDeleted, true},
	"delivered":  {StatusDelivered, true},
	"failed":     {StatusFailed, true},
	"expired":    {StatusExpired, true},
	"unknown":    {StatusUnknown, true},
}

// Outcome is the final status of a message and its detailed code, such as
// {Delivered, 0} or {Failed, 417}.
type Outcome struct {
	Status string `json:"status"`
	Code   int    `json:"code"`
}

// ParseOutcome reads an outcome written "Status/code", e.g. "Failed/417";
// the status is case-insensitive and must be final.
func ParseOutcome(s string) (Outcome, error) {
	status, code, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Outcome{}, fmt.Errorf("outcome %q is not written status/code, such as Failed/417", s)
	}

	n, err := strconv.Atoi(strings.TrimSpace(code))
	if err != nil {
		return Outcome{}, fmt.Errorf("outcome %q: code is not a whole number", s)
	}
	o := Outcome{Status: strings.TrimSpace(status), Code: n}
	if st, ok := statuses[strings.ToLower(o.Status)]; ok {
		o.Status = st.name
	}
	if err := o.validate(); err != nil {
		return Outcome{}, err
	}
	return o, nil
}

// ParseOutcomes reads per-number outcomes written as a comma-separated list
// of number=Status/code, e.g. "*13=Failed/417,+12025550199=Expired/406".
// A number is a phone number or "*" and the digits it must end with. An
// empty s gives an empty map.
func ParseOutcomes(s string) (map[string]Outcome, error) {
	out := make(map[string]Outcome)
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		number, outcome, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not written number=Status/code", item)
		}
		o, err := ParseOutcome(outcome)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSpace(number)] = o
	}
	if err := checkOutcomes(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (o Outcome) validate() error {
	st, ok := statuses[strings.ToLower(o.Status)]
	switch {
	case !ok || st.name != o.Status:
		return fmt.Errorf("status %q is not a Sinch delivery status such as Delivered or Failed", o.Status)
	case !st.final:
		return fmt.Errorf("status %s is not final", o.Status)
	case o.Code < 0:
		return fmt.Errorf("code %d is negative", o.Code)
	}
	return nil
}

// ReportSettings decide the delivery reports of the batches created from
// then on, and how callbacks are sent. The zero value is usable: zero
// fields fall back to the defaults named in their comments.
type ReportSettings struct {
	// Delay is the time from a batch's start (created_at, or a later
	// send_at) to its final statuses, when the callbacks go out. Halfway
	// through, the messages turn from Queued to Dispatched. Default 200ms.
	Delay time.Duration

	// Default is the final status of a recipient without an entry in
	// Outcomes. Default {Delivered, 0}.
	Default Outcome

	// Outcomes overrides the final status per recipient. A key is a phone
	// number, in any form Sinch accepts (the digits are compared), or "*"
	// and digits to match every number that ends with them ("*13"). An
	// exact number wins over a suffix, a longer suffix over a shorter one.
	Outcomes map[string]Outcome

	// Duplicate sends every callback twice, the second time once the first
	// has had its first answer.
	Duplicate bool

	// OutOfOrder sends the intermediate Dispatched report of a
	// per_recipient batch after the final one instead of before it.
	OutOfOrder bool

	// BeforeCreated sends the callbacks of a batch at once, before the
	// answer to its POST is written: the first attempt of every callback
	// has its answer before the client sees the batch id. Delay is then
	// not waited for; retries still follow in the background.
	BeforeCreated bool

	// RetryDelay is the wait before the first retry of a callback that got
	// a 5xx, a 429 or no answer; it doubles for every further retry.
	// Default 100ms (Sinch: 5 s).
	RetryDelay time.Duration

	// MaxAttempts bounds the attempts per callback, the first included.
	// Default 5.
	MaxAttempts int

	// Timeout bounds each attempt. Default 5s.
	Timeout time.Duration

	// WebhookSecret, if set, makes every callback carry Sinch's HMAC
	// headers: x-sinch-webhook-signature = Base64(HMAC-SHA256(secret,
	// body + "." + nonce + "." + timestamp)), with the nonce and the
	// timestamp (Unix seconds) in x-sinch-webhook-signature-nonce and
	// x-sinch-webhook-signature-timestamp.
	WebhookSecret string
}

// withDefaults returns rs with its zero fields filled in and its map
// copied, so that the caller's map can change without effect.
func (rs ReportSettings) withDefaults() ReportSettings {
	rs.Delay = cmp.Or(rs.Delay, DefaultReportDelay)
	if rs.Default == (Outcome{}) {
		rs.Default = Outcome{Status: StatusDelivered}
	}
	rs.Outcomes = maps.Clone(rs.Outcomes)
	rs.RetryDelay = cmp.Or(rs.RetryDelay, DefaultCallbackRetryDelay)
	rs.MaxAttempts = cmp.Or(rs.MaxAttempts, DefaultCallbackAttempts)
	rs.Timeout = cmp.Or(rs.Timeout, DefaultCallbackTimeout)
	return rs
}

func (rs ReportSettings) validate() error {
	switch {
	case rs.Delay < 0:
		return fmt.Errorf("report delay %s is negative", rs.Delay)
	case rs.RetryDelay < 0:
		return fmt.Errorf("callback retry delay %s is negative", rs.RetryDelay)
	case rs.MaxAttempts < 0:
		return fmt.Errorf("callback max attempts %d is negative", rs.MaxAttempts)
	case rs.Timeout < 0:
		return fmt.Errorf("callback timeout %s is negative", rs.Timeout)
	}
	if rs.Default != (Outcome{}) {
		if err := rs.Default.validate(); err != nil {
			return fmt.Errorf("default outcome: %w", err)
		}
	}
	return checkOutcomes(rs.Outcomes)
}

// checkOutcomes checks the keys and values of per-number outcomes.
func checkOutcomes(outcomes map[string]Outcome) error {
	for _, key := range slices.Sorted(maps.Keys(outcomes)) {
		if suffix, ok := strings.CutPrefix(key, "*"); ok {
			if suffix == "" || len(suffix) > 15 || !allDigits(suffix) {
				return fmt.Errorf("outcome key %q: a * must be followed by 1 to 15 digits", key)
			}
		} else if _, ok := normalizeMSISDN(key); !ok {
			return fmt.Errorf("outcome key %q is neither a phone number nor * and digits", key)
		}
		if err := outcomes[key].validate(); err != nil {
			return fmt.Errorf("outcome for %q: %w", key, err)
		}
	}
	return nil
}

// outcomeRules is the compiled, read-only form of the outcome settings,
// shared by the batches created while they were current.
type outcomeRules struct {
	fallback Outcome
	exact    map[string]Outcome // by digits
	suffixes []suffixRule       // longest first
}

type suffixRule struct {
	suffix  string
	outcome Outcome
}

// compileRules builds the rules of valid settings with defaults filled in.
func compileRules(rs ReportSettings) *outcomeRules {
	r := &outcomeRules{fallback: rs.Default, exact: make(map[string]Outcome)}
	for key, o := range rs.Outcomes {
		if suffix, ok := strings.CutPrefix(key, "*"); ok {
			r.suffixes = append(r.suffixes, suffixRule{suffix, o})
		} else if digits, ok := normalizeMSISDN(key); ok {
			r.exact[digits] = o
		}
	}
	slices.SortFunc(r.suffixes, func(a, b suffixRule) int {
		return cmp.Or(len(b.suffix)-len(a.suffix), strings.Compare(a.suffix, b.suffix))
	})
	return r
}

// lookup returns the final outcome for a recipient's digits.
func (r *outcomeRules) lookup(digits string) Outcome {
	if o, ok := r.exact[digits]; ok {
		return o
	}
	for _, rule := range r.suffixes {
		if strings.HasSuffix(digits, rule.suffix) {
			return rule.outcome
		}
	}
	return r.fallback
}

// RecipientReport is Sinch's report on one message of a batch: the body of
// a per_recipient callback and of the recipient and list polling
// endpoints. Its JSON form renders times with TimeLayout and leaves out a
// zero OperatorStatusAt.
type RecipientReport struct {
	Type             string    `json:"type"`
	BatchID          string    `json:"batch_id"`
	Recipient        string    `json:"recipient"` // digits, no "+"
	Code             int       `json:"code"`
	Status           string    `json:"status"`
	At               time.Time `json:"at"`
	OperatorStatusAt time.Time `json:"operator_status_at"`
	ClientReference  string    `json:"client_reference,omitempty"`
}

// MarshalJSON renders r as Sinch does.
func (r RecipientReport) MarshalJSON() ([]byte, error) {
	// See Batch.MarshalJSON for how the outer fields hide the inner ones.
	type plain RecipientReport
	var operatorAt string
	if !r.OperatorStatusAt.IsZero() {
		operatorAt = formatTime(r.OperatorStatusAt)
	}
	return json.Marshal(struct {
		plain
		At               string `json:"at"`
		OperatorStatusAt string `json:"operator_status_at,omitempty"`
	}{
		plain:            plain(r),
		At:               formatTime(r.At),
		OperatorStatusAt: operatorAt,
	})
}

// BatchReport is Sinch's report on a whole batch: the body of a summary or
// full callback and of GET .../delivery_report.
type BatchReport struct {
	Type              string         `json:"type"`
	BatchID           string         `json:"batch_id"`
	TotalMessageCount int            `json:"total_message_count"`
	Statuses          []StatusBucket `json:"statuses"`
	ClientReference   string         `json:"client_reference,omitempty"`
}

// StatusBucket counts the messages of a batch with one status and code.
// Recipients is only filled in full reports.
type StatusBucket struct {
	Code       int      `json:"code"`
	Status     string   `json:"status"`
	Count      int      `json:"count"`
	Recipients []string `json:"recipients,omitempty"`
}

// phase is where a message stands: queued, dispatched or final.
type phase int

const (
	phaseQueued phase = iota
	phaseDispatched
	phaseFinal
)

// reportState is what the simulator keeps to report on one batch: its
// timeline and the settings it was created under.
type reportState struct {
	dispatched time.Time // start + delay/2
	final      time.Time // start + delay
	rules      *outcomeRules
	duplicate  bool
	outOfOrder bool
	now        bool // BeforeCreated: callbacks at once, final from the start

	// fired is set when the callbacks are built: from then on the
	// statuses are final whatever Config.Now says, so that polling agrees
	// with the callbacks under a test clock.
	fired bool
}

// newReportState sets up the reports of b, created now under rs.
func newReportState(b *Batch, rs ReportSettings, rules *outcomeRules) *reportState {
	start := later(b.CreatedAt, b.SendAt)
	delay := rs.Delay
	if rs.BeforeCreated {
		start, delay = b.CreatedAt, 0
	}
	return &reportState{
		dispatched: start.Add(delay / 2),
		final:      start.Add(delay),
		rules:      rules,
		duplicate:  rs.Duplicate,
		outOfOrder: rs.OutOfOrder,
		now:        rs.BeforeCreated,
	}
}

// phaseAt returns where the batch's messages stand at t.
func (st *reportState) phaseAt(t time.Time) phase {
	switch {
	case st.fired || !t.Before(st.final):
		return phaseFinal
	case !t.Before(st.dispatched):
		return phaseDispatched
	}
	return phaseQueued
}

// recipientReport returns the report on one recipient (its digits) of b in
// phase p.
func (st *reportState) recipientReport(b *Batch, digits string, p phase) RecipientReport {
	r := RecipientReport{
		Type:            TypeRecipientReport,
		BatchID:         b.ID,
		Recipient:       digits,
		ClientReference: b.ClientReference,
	}
	switch p {
	case phaseQueued:
		r.Status, r.Code, r.At = StatusQueued, CodeQueued, b.CreatedAt
	case phaseDispatched:
		r.Status, r.Code, r.At = StatusDispatched, CodeDispatched, st.dispatched
		r.OperatorStatusAt = st.dispatched
	default:
		o := st.rules.lookup(digits)
		r.Status, r.Code, r.At = o.Status, o.Code, st.final
		r.OperatorStatusAt = st.final
	}
	return r
}

// batchReport returns the report on b in phase p, with the recipients of
// each bucket if full. keep, if not nil, picks the buckets to show.
func (st *reportState) batchReport(b *Batch, p phase, full bool, keep func(status string, code int) bool) BatchReport {
	recipients := recipientDigits(b.To)
	out := BatchReport{
		Type:              TypeBatchReport,
		BatchID:           b.ID,
		TotalMessageCount: len(recipients),
		Statuses:          []StatusBucket{},
		ClientReference:   b.ClientReference,
	}

	// Buckets in the order their first recipient appears in "to".
	index := make(map[Outcome]int)
	for _, digits := range recipients {
		r := st.recipientReport(b, digits, p)
		if keep != nil && !keep(r.Status, r.Code) {
			continue
		}
		key := Outcome{Status: r.Status, Code: r.Code}
		i, ok := index[key]
		if !ok {
			i = len(out.Statuses)
			index[key] = i
			out.Statuses = append(out.Statuses, StatusBucket{Code: r.Code, Status: r.Status})
		}
		out.Statuses[i].Count++
		if full {
			out.Statuses[i].Recipients = append(out.Statuses[i].Recipients, digits)
		}
	}
	return out
}

// recipientDigits returns the recipients of a batch as Sinch reports them:
// digits only, each number once, in the order of "to".
func recipientDigits(to []string) []string {
	out := make([]string, 0, len(to))
	seen := make(map[string]bool, len(to))
	for _, msisdn := range to {
		digits, ok := normalizeMSISDN(msisdn)
		if !ok || seen[digits] {
			continue
		}
		seen[digits] = true
		out = append(out, digits)
	}
	return out
}

// reportFilter is the status and code filter of the polling endpoints.
// Empty lists let everything through.
type reportFilter struct {
	statuses []string
	codes    []int
}

func (f reportFilter) keep(status string, code int) bool {
	return (len(f.statuses) == 0 || slices.Contains(f.statuses, status)) &&
		(len(f.codes) == 0 || slices.Contains(f.codes, code))
}

// parseReportFilter reads the status and code filters, comma lists of
// status names (any case) and of codes.
func parseReportFilter(r *http.Request) (reportFilter, *apiError) {
	var f reportFilter
	v := r.URL.Query()

	for s := range strings.SplitSeq(v.Get("status"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		st, ok := statuses[strings.ToLower(s)]
		if !ok {
			return f, badRequest(codeInvalidFormat, fmt.Sprintf("status %q is not a delivery status", s))
		}
		f.statuses = append(f.statuses, st.name)
	}

	for s := range strings.SplitSeq(v.Get("code"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return f, badRequest(codeInvalidFormat, "code must be a comma-separated list of whole numbers")
		}
		f.codes = append(f.codes, n)
	}
	return f, nil
}

// lookupReports returns a copy of batch id and its report state.
func (s *Server) lookupReports(id string) (Batch, *reportState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	b, ok := s.byID[id]
	if !ok {
		return Batch{}, nil, false
	}
	st := *s.states[id]
	return b.clone(), &st, true
}

// getBatchReport serves GET /batches/{id}/delivery_report: the batch's
// statuses now, summed up (type summary, the default) or with recipients
// (type full). An unknown batch or type is a 404 without a body.
func (s *Server) getBatchReport(w http.ResponseWriter, r *http.Request, id string) {
	if !sleep(r.Context(), s.currentLatency()) {
		return
	}

	var full bool
	switch r.URL.Query().Get("type") {
	case "", "summary":
	case "full":
		full = true
	default:
		w.WriteHeader(http.StatusNotFound)
		return
	}
	f, apiErr := parseReportFilter(r)
	if apiErr != nil {
		apiErr.write(w)
		return
	}

	b, st, ok := s.lookupReports(id)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, st.batchReport(&b, st.phaseAt(s.now()), full, f.keep))
}

// getRecipientReport serves GET /batches/{id}/delivery_report/{msisdn}: the
// recipient's status now. An unknown batch or a number not in it is a 404
// without a body.
func (s *Server) getRecipientReport(w http.ResponseWriter, r *http.Request, id, msisdn string) {
	if !sleep(r.Context(), s.currentLatency()) {
		return
	}

	b, st, ok := s.lookupReports(id)
	digits, valid := normalizeMSISDN(msisdn)
	if !ok || !valid || !slices.Contains(recipientDigits(b.To), digits) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, st.recipientReport(&b, digits, st.phaseAt(s.now())))
}

// reportList is the answer of GET /delivery_reports. PageSize is the
// number of reports in this page, as in batchList.
type reportList struct {
	Page            int               `json:"page"`
	PageSize        int               `json:"page_size"`
	Count           int               `json:"count"`
	DeliveryReports []RecipientReport `json:"delivery_reports"`
}

// listReports serves GET /delivery_reports: the final recipient reports
// whose time is in the window, newest first, filtered by status, code and
// client_reference. Intermediate statuses are never listed, as Sinch lists
// only finished reports.
func (s *Server) listReports(w http.ResponseWriter, r *http.Request) {
	if !sleep(r.Context(), s.currentLatency()) {
		return
	}

	now := s.now().UTC()
	q, apiErr := parseListQuery(r, now)
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	f, apiErr := parseReportFilter(r)
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	q.start = later(q.start, now.Add(-retention))

	s.mu.Lock()
	var matches []RecipientReport
	for _, b := range slices.Backward(s.batches) {
		st := s.states[b.ID]
		if st.phaseAt(now) != phaseFinal ||
			(q.clientReference != "" && b.ClientReference != q.clientReference) {
			continue
		}
		for _, digits := range recipientDigits(b.To) {
			rep := st.recipientReport(b, digits, phaseFinal)
			if q.inWindow(rep.At) && f.keep(rep.Status, rep.Code) {
				matches = append(matches, rep)
			}
		}
	}
	s.mu.Unlock()

	// Newest first; batches created later come first among equal times.
	slices.SortStableFunc(matches, func(a, b RecipientReport) int {
		return b.At.Compare(a.At)
	})

	out := reportList{Page: q.page, Count: len(matches), DeliveryReports: []RecipientReport{}}
	out.DeliveryReports = append(out.DeliveryReports, pageOf(matches, &q)...)
	out.PageSize = len(out.DeliveryReports)
	writeJSON(w, http.StatusOK, out)
}

// Reports returns the current report settings, with defaults filled in.
func (s *Server) Reports() ReportSettings {
	s.mu.Lock()
	defer s.mu.Unlock()

	rs := s.reports
	rs.Outcomes = maps.Clone(rs.Outcomes)
	return rs
}

// SetReports replaces the report settings; zero fields take their
// defaults. Batches created before keep the settings they were created
// under, except for the retry, timeout and secret settings, which apply to
// every callback sent from then on. It panics on invalid settings (a
// negative duration or count, a status that is not final, a bad outcome
// key), since that is a mistake in the test that calls it.
func (s *Server) SetReports(rs ReportSettings) {
	if err := rs.validate(); err != nil {
		panic("sinchsim: " + err.Error())
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.setReportsLocked(rs)
}

// setReportsLocked installs valid settings. The caller holds s.mu.
func (s *Server) setReportsLocked(rs ReportSettings) {
	s.reports = rs.withDefaults()
	s.rules = compileRules(s.reports)
}

// trackLocked sets up the reports of a new batch b and schedules its
// callbacks, unless they are to go before the batch's answer: then sendNow
// is true and the caller sends them. The caller holds s.mu.
func (s *Server) trackLocked(b *Batch) (sendNow bool) {
	st := newReportState(b, s.reports, s.rules)
	s.states[b.ID] = st

	if b.DeliveryReport == "none" || b.CallbackURL == "" {
		return false
	}
	if st.now {
		return true
	}
	s.scheduleLocked(b.ID, st)
	return false
}
