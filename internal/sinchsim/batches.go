package sinchsim

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// List paging limits and windows, as Sinch documents them (§8).
const (
	defaultPageSize = 30
	maxPageSize     = 100
	defaultLookback = 24 * time.Hour
	retention       = 14 * 24 * time.Hour // the list never shows older batches
)

// batchList is the answer of GET /batches. PageSize is the number of
// batches in this page, as Sinch defines it, not the requested size.
type batchList struct {
	Page     int     `json:"page"`
	PageSize int     `json:"page_size"`
	Count    int     `json:"count"`
	Batches  []Batch `json:"batches"`
}

// createBatch serves POST /batches.
//
// The order of events: count the request, wait Latency, then take the next
// injected Fault if there is one, or else roll FailRate. A Fault without
// AfterCreate answers before the request is even read; with AfterCreate the
// request is processed as usual and only its answer is replaced, which is
// how a lost response looks from the client.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	latency := s.countPost()

	// Read the body before any wait: net/http only notices a client that
	// hangs up (and cancels ctx) once the body has been read.
	raw, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestSize))

	if !sleep(ctx, latency) {
		return
	}

	f, hasFault, failStatus := s.nextOutcome()
	if failStatus != 0 {
		f = Fault{Status: failStatus}
		f.write(w)
		return
	}
	if hasFault && !f.AfterCreate {
		if !sleep(ctx, f.Hang) {
			return
		}
		if f.Status != 0 {
			f.write(w)
			return
		}
	}

	b, sendNow, apiErr := s.create(r.Header.Get("Content-Type"), raw, readErr)
	if sendNow {
		// ReportSettings.BeforeCreated: the callbacks' first attempts
		// are answered before the batch's own answer is written, whatever
		// that answer turns out to be.
		s.sendReports(s.callbackContext(), b.ID)
	}

	if hasFault && f.AfterCreate {
		if !sleep(ctx, f.Hang) {
			return
		}
		if f.Status != 0 {
			f.write(w)
			return
		}
	}

	if apiErr != nil {
		apiErr.write(w)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

// countPost counts a POST /batches and returns the latency to apply.
func (s *Server) countPost() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.posts++
	return s.latency
}

// create parses the request and, if it is valid, stores a new batch and
// sets up its reports. sendNow asks the caller to send the batch's
// callbacks before answering.
func (s *Server) create(contentType string, raw []byte, readErr error) (_ Batch, sendNow bool, _ *apiError) {
	now := s.now().UTC().Truncate(time.Millisecond)

	b, apiErr := s.parseSend(contentType, raw, readErr, now)
	if apiErr != nil {
		return Batch{}, false, apiErr
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	id, err := ulid.New(ulid.Timestamp(now), s.entropy)
	if err != nil {
		return Batch{}, false, &apiError{
			Status: http.StatusInternalServerError,
			Code:   "internal_error",
			Text:   "cannot make a batch id",
		}
	}
	b.ID = id.String()

	s.batches = append(s.batches, b)
	s.byID[b.ID] = b
	if b.ClientReference != "" {
		s.byRef[b.ClientReference]++
	}
	sendNow = s.trackLocked(b)
	return b.clone(), sendNow, nil
}

// getBatch serves GET /batches/{id}.
func (s *Server) getBatch(w http.ResponseWriter, r *http.Request, id string) {
	if !sleep(r.Context(), s.currentLatency()) {
		return
	}

	s.mu.Lock()
	b, ok := s.byID[id]
	var c Batch
	if ok {
		c = b.clone()
	}
	s.mu.Unlock()

	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// listQuery is the parsed query of GET /batches.
type listQuery struct {
	page, pageSize  int
	start, end      time.Time // end zero: no upper bound
	clientReference string
	from            []string // any of these senders; empty: all
}

// listBatches serves GET /batches: matching batches, newest first.
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	if !sleep(r.Context(), s.currentLatency()) {
		return
	}

	now := s.now().UTC()
	q, apiErr := parseListQuery(r, now)
	if apiErr != nil {
		apiErr.write(w)
		return
	}

	// Batches older than the retention window are never listed, whatever
	// start_date says.
	q.start = later(q.start, now.Add(-retention))

	s.mu.Lock()
	var matches []*Batch
	for _, b := range s.batches {
		if q.matches(b) {
			matches = append(matches, b)
		}
	}

	// Newest first; among equal times, the later created first.
	slices.Reverse(matches)
	slices.SortStableFunc(matches, func(a, b *Batch) int {
		return b.CreatedAt.Compare(a.CreatedAt)
	})

	out := batchList{Page: q.page, Count: len(matches), Batches: []Batch{}}
	for _, b := range pageOf(matches, &q) {
		out.Batches = append(out.Batches, b.clone())
	}
	s.mu.Unlock()

	out.PageSize = len(out.Batches)
	writeJSON(w, http.StatusOK, out)
}

// pageOf returns the page of all that q asks for. The page check comes
// first so that a huge page number cannot overflow the offset.
func pageOf[T any](all []T, q *listQuery) []T {
	if pages := (len(all) + q.pageSize - 1) / q.pageSize; q.page >= pages {
		return nil
	}
	first := q.page * q.pageSize
	return all[first:min(first+q.pageSize, len(all))]
}

// inWindow reports whether t is within q's start and end dates.
func (q *listQuery) inWindow(t time.Time) bool {
	return !t.Before(q.start) && (q.end.IsZero() || t.Before(q.end))
}

func (q *listQuery) matches(b *Batch) bool {
	switch {
	case !q.inWindow(b.CreatedAt):
		return false
	case q.clientReference != "" && b.ClientReference != q.clientReference:
		return false
	case len(q.from) > 0 && !slices.Contains(q.from, b.From):
		return false
	}
	return true
}

// parseListQuery reads the list filters; any bad value is a 400
// syntax_invalid_parameter_format.
func parseListQuery(r *http.Request, now time.Time) (listQuery, *apiError) {
	v := r.URL.Query()
	q := listQuery{
		pageSize:        defaultPageSize,
		start:           now.Add(-defaultLookback),
		clientReference: v.Get("client_reference"),
	}

	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, badRequest(codeInvalidFormat, "page must be a whole number, 0 or more")
		}
		q.page = n
	}

	if s := v.Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return q, badRequest(codeInvalidFormat, "page_size must be a whole number from 1 to 100")
		}
		q.pageSize = n
	}

	if s := v.Get("start_date"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return q, badRequest(codeInvalidFormat, "start_date is not an ISO-8601 timestamp")
		}
		q.start = t
	}

	if s := v.Get("end_date"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return q, badRequest(codeInvalidFormat, "end_date is not an ISO-8601 timestamp")
		}
		q.end = t
	}

	if s := v.Get("from"); s != "" {
		for f := range strings.SplitSeq(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				q.from = append(q.from, f)
			}
		}
	}

	return q, nil
}

func (s *Server) currentLatency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latency
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
