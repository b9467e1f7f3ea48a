package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/suppress"
)

const (
	// MaxImport is the most numbers one bulk import may hold.
	MaxImport = 100_000
	// DefaultMaxBulkBodyBytes is the body limit of bulk endpoints when
	// Config.MaxBulkBodyBytes is zero.
	DefaultMaxBulkBodyBytes = 16 << 20

	// maxInvalidListed caps the invalid numbers an import answer lists one
	// by one; invalid_count has them all.
	maxInvalidListed = 1000
	// maxEchoedValue is how much of an invalid value an answer repeats.
	maxEchoedValue = 64
)

func errSuppressUnavailable(msg string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
		Message: "the suppression list is unavailable; " + msg, RetryAfter: 1}
}

// suppressionURL is the address of number's entry; its + is escaped, as
// clients must send it.
func suppressionURL(number string) string {
	return "/api/mms/suppressions/" + strings.Replace(number, "+", "%2B", 1)
}

// oneSegment answers 404, as for any unknown route, when the path parameter
// name holds a "/": Echo lets a route's last parameter take the rest of the
// path, so /api/mms/suppressions/+1.../x would otherwise reach the handler.
func oneSegment(name string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if strings.Contains(c.Param(name), "/") {
				return echo.ErrNotFound
			}
			return next(c)
		}
	}
}

// numberParam reads the number in the path, which may be written in any
// way the send endpoint accepts, and returns it in E.164.
func (s *server) numberParam(c echo.Context) (string, *mms.FieldError) {
	raw := c.Param("number")
	// Echo routes on the escaped path when it differs from the decoded one,
	// and then hands out the parameter still escaped.
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(raw)
		if err != nil {
			return "", &mms.FieldError{Field: "number", Message: "is not a properly escaped path segment"}
		}
		raw = u
	}
	n, err := mms.NormalizeNumber(raw, s.cfg.Rules.DefaultRegion)
	if err != nil {
		return "", &mms.FieldError{Field: "number", Message: err.Error()}
	}
	return n, nil
}

// numberOnly reads the number of a request that has no other field.
func (s *server) numberOnly(c echo.Context) (string, error) {
	n, fe := s.numberParam(c)
	if fe != nil {
		return "", &mms.ValidationError{Fields: []mms.FieldError{*fe}}
	}
	return n, nil
}

// putSuppression adds one number to the suppression list: PUT
// /api/mms/suppressions/{number}, with an optional body {"reason": "..."}.
// 201 when the number is new, 200 with the entry as first stored when it was
// there already.
func (s *server) putSuppression(c echo.Context) error {
	body, err := readBody(c.Request().Body)
	if err != nil {
		return err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := requireJSON(c.Request()); err != nil {
			return err
		}
		if err := mms.DecodeStrict(bytes.NewReader(body), &req); err != nil {
			return badJSON(err)
		}
	}

	var verr mms.ValidationError
	number, fe := s.numberParam(c)
	if fe != nil {
		verr.Fields = append(verr.Fields, *fe)
	}
	if err := suppress.CheckReason(req.Reason); err != nil {
		verr.Fields = append(verr.Fields, mms.FieldError{Field: "reason", Message: err.Error()})
	}
	if len(verr.Fields) > 0 {
		return &verr
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()
	e, created, err := s.deps.Suppress.Put(ctx, number, req.Reason)
	if err != nil {
		return s.suppressError(c, err, "number not suppressed", "nothing was changed, try again")
	}
	if !created {
		return c.JSON(http.StatusOK, e)
	}
	c.Response().Header().Set(echo.HeaderLocation, suppressionURL(number))
	return c.JSON(http.StatusCreated, e)
}

// getSuppression answers the entry of one number: GET
// /api/mms/suppressions/{number}.
func (s *server) getSuppression(c echo.Context) error {
	number, err := s.numberOnly(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()
	e, err := s.deps.Suppress.Get(ctx, number)
	if err != nil {
		return s.suppressError(c, err, "suppression not read", "try again")
	}
	return c.JSON(http.StatusOK, e)
}

// deleteSuppression takes one number off the list: DELETE
// /api/mms/suppressions/{number}. 204, or 404 if it was not on it.
func (s *server) deleteSuppression(c echo.Context) error {
	number, err := s.numberOnly(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout)
	defer cancel()
	existed, err := s.deps.Suppress.Delete(ctx, number)
	if err != nil {
		return s.suppressError(c, err, "suppression not deleted", "try again")
	}
	if !existed {
		return errNotSuppressed()
	}
	return c.NoContent(http.StatusNoContent)
}

func errNotSuppressed() *Error {
	return newError(http.StatusNotFound, "not_found", "the number is not on the suppression list")
}

// suppressError maps an error of the suppression store.
func (s *server) suppressError(c echo.Context, err error, logMsg, retry string) error {
	switch {
	case errors.Is(err, suppress.ErrNotFound):
		return errNotSuppressed()
	case errors.Is(err, suppress.ErrUnreadable):
		return err // ours, not the client's: a 500, logged
	}
	reqLog(c, s.deps.Log).Warn().Err(err).Msg(logMsg)
	return errSuppressUnavailable(retry)
}

// importRequest is the JSON body of a bulk import.
type importRequest struct {
	Numbers []string `json:"numbers"`
	Reason  string   `json:"reason"`
}

// invalidNumber is one number an import left out. JSON imports name it by
// its index in "numbers", CSV imports by its line.
type invalidNumber struct {
	Index   *int   `json:"index,omitempty"`
	Line    int    `json:"line,omitempty"`
	Value   string `json:"value"`
	Message string `json:"message"`
}

// importResult is the answer to a bulk import. Every number received is
// counted once: received = imported + already_suppressed + duplicates +
// invalid_count.
type importResult struct {
	Received          int             `json:"received"`
	Imported          int             `json:"imported"`
	AlreadySuppressed int             `json:"already_suppressed"`
	Duplicates        int             `json:"duplicates"`
	InvalidCount      int             `json:"invalid_count"`
	Invalid           []invalidNumber `json:"invalid"`
}

// candidate is one number as a bulk import gave it: pos is its index (JSON)
// or line (CSV); problem, when set, refuses it before it is parsed.
type candidate struct {
	value   string
	pos     int
	problem string
}

// importSuppressions adds many numbers at once: POST /api/mms/suppressions
// with application/json {"numbers": [...], "reason": "..."} or text/csv,
// one number per line (the reason then in ?reason=). Invalid numbers are
// listed and left out; the rest are imported. 422 only when none is valid.
func (s *server) importSuppressions(c echo.Context) error {
	r := c.Request()
	mt, params, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	var (
		cands  []candidate
		reason string
		isCSV  = mt == "text/csv"
		err    error
	)
	for k, vals := range r.URL.Query() {
		switch {
		case k != "reason":
			return invalid("invalid_query", "the query is not valid", k, "is not a known query parameter")
		case len(vals) > 1:
			return invalid("invalid_query", "the query is not valid", k, "appears more than once")
		}
	}
	switch {
	case isCSV:
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
			return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"the body must be UTF-8; charset "+cs+" is not supported")
		}
		reason = r.URL.Query().Get("reason")
		cands, err = readCSV(r.Body)
	case mt == echo.MIMEApplicationJSON:
		if err := requireJSON(r); err != nil {
			return err
		}
		if r.URL.Query().Has("reason") {
			return &mms.ValidationError{Fields: []mms.FieldError{{Field: "reason",
				Message: "goes in the JSON body; ?reason= is for text/csv imports"}}}
		}
		cands, reason, err = readImportJSON(r.Body)
	default:
		return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type must be application/json or text/csv")
	}
	if err != nil {
		return err
	}

	var verr mms.ValidationError
	field := "numbers"
	if isCSV {
		field = "body"
	}
	switch {
	case len(cands) == 0 && isCSV:
		verr.Fields = append(verr.Fields, mms.FieldError{Field: field, Message: "holds no numbers: give one per line"})
	case len(cands) == 0:
		verr.Fields = append(verr.Fields, mms.FieldError{Field: field,
			Message: fmt.Sprintf("is required: an array of 1 to %d numbers", MaxImport)})
	case len(cands) > MaxImport:
		verr.Fields = append(verr.Fields, mms.FieldError{Field: field,
			Message: fmt.Sprintf("has more than %d numbers; split the import", MaxImport)})
	}
	if err := suppress.CheckReason(reason); err != nil {
		verr.Fields = append(verr.Fields, mms.FieldError{Field: "reason", Message: err.Error()})
	}
	if len(verr.Fields) > 0 {
		return &verr
	}

	res, unique := sortOut(cands, s.cfg.Rules.DefaultRegion, isCSV)
	if len(unique) == 0 {
		return noneValid(res, isCSV)
	}

	// Each round trip of the import (one per suppress.ChunkSize numbers) is
	// bounded by the client's own timeout; the whole, as other bulk work.
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout+s.cfg.BulkTimeout)
	defer cancel()
	added, err := s.deps.Suppress.Import(ctx, unique, reason)
	if err != nil {
		reqLog(c, s.deps.Log).Warn().Err(err).Int("imported", added).Msg("suppression import cut short")
		return errSuppressUnavailable("some numbers may have been imported: repeat the request, which is safe")
	}
	res.Imported = added
	res.AlreadySuppressed = len(unique) - added
	reqLog(c, s.deps.Log).Info().Int("received", res.Received).Int("imported", res.Imported).
		Int("already_suppressed", res.AlreadySuppressed).Int("duplicates", res.Duplicates).
		Int("invalid", res.InvalidCount).Msg("suppressions imported")
	return c.JSON(http.StatusOK, res)
}

// readImportJSON decodes a JSON import body.
func readImportJSON(body io.Reader) ([]candidate, string, error) {
	var req importRequest
	if err := mms.DecodeStrict(body, &req); err != nil {
		return nil, "", badJSON(err)
	}
	cands := make([]candidate, len(req.Numbers))
	for i, n := range req.Numbers {
		cands[i] = candidate{value: n, pos: i}
	}
	return cands, req.Reason, nil
}

// readCSV reads a CSV import body: one number per line, blank lines
// skipped, and a first line without digits (a header such as "number" or
// "phone") skipped too. A line with more than one column is refused, not
// cut down to its first. It stops early once there are more numbers than
// an import may hold.
func readCSV(body io.Reader) ([]candidate, error) {
	raw, err := readBody(body)
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimPrefix(raw, []byte("\ufeff")) // a byte order mark, as spreadsheets write
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	var cands []candidate
	first := true
	for len(cands) <= MaxImport {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			msg := err.Error()
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				msg = fmt.Sprintf("is not valid CSV at line %d: %v", pe.Line, pe.Err)
			}
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid_csv",
				Message: "the body is not valid CSV", Fields: []mms.FieldError{{Field: "body", Message: msg}}}
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if first {
			first = false
			if len(rec) == 1 && isHeader(rec[0]) {
				continue
			}
		}
		c := candidate{value: rec[0], pos: line}
		switch {
		case len(rec) > 1:
			c.value = strings.Join(rec, ",")
			c.problem = fmt.Sprintf("has %d columns; give exactly one number per line", len(rec))
		case strings.ContainsAny(rec[0], ";\t|"):
			c.problem = "has more than one column; give exactly one number per line"
		}
		cands = append(cands, c)
	}
	return cands, nil
}

// isHeader tells a header line: a word or two, but no digit.
func isHeader(s string) bool {
	return !strings.ContainsFunc(s, unicode.IsDigit) && strings.ContainsFunc(s, unicode.IsLetter)
}

// sortOut normalises the candidates and counts them: invalid, duplicate
// (after normalisation) or unique. It returns the counts and the unique
// numbers, in the order given.
func sortOut(cands []candidate, region string, isCSV bool) (importResult, []string) {
	res := importResult{Received: len(cands), Invalid: []invalidNumber{}}
	norm, errs := normalizeAll(cands, region)
	unique := make([]string, 0, len(cands))
	seen := make(map[string]struct{}, len(cands))
	for i, c := range cands {
		if errs[i] != nil {
			res.InvalidCount++
			if len(res.Invalid) < maxInvalidListed {
				inv := invalidNumber{Value: echoValue(c.value), Message: errs[i].Error()}
				if isCSV {
					inv.Line = c.pos
				} else {
					inv.Index = &c.pos
				}
				res.Invalid = append(res.Invalid, inv)
			}
			continue
		}
		if _, dup := seen[norm[i]]; dup {
			res.Duplicates++
			continue
		}
		seen[norm[i]] = struct{}{}
		unique = append(unique, norm[i])
	}
	return res, unique
}

// normalizeAll runs mms.NormalizeNumber over the candidates, on every CPU
// when there are many: parsing is what a large import spends its time on.
func normalizeAll(cands []candidate, region string) ([]string, []error) {
	norm := make([]string, len(cands))
	errs := make([]error, len(cands))
	work := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if cands[i].problem != "" {
				errs[i] = errors.New(cands[i].problem)
				continue
			}
			norm[i], errs[i] = mms.NormalizeNumber(cands[i].value, region)
		}
	}
	const minPerWorker = 2000
	workers := min(runtime.GOMAXPROCS(0), len(cands)/minPerWorker)
	if workers <= 1 {
		work(0, len(cands))
		return norm, errs
	}
	per := (len(cands) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(cands); lo += per {
		wg.Go(func() { work(lo, min(lo+per, len(cands))) })
	}
	wg.Wait()
	return norm, errs
}

// echoValue is the part of an invalid value an answer repeats.
func echoValue(v string) string {
	if utf8.RuneCountInString(v) <= maxEchoedValue {
		return v
	}
	r := []rune(v)
	return string(r[:maxEchoedValue]) + "…"
}

// noneValid is the 422 of an import without a single valid number.
func noneValid(res importResult, isCSV bool) error {
	fields := make([]mms.FieldError, len(res.Invalid))
	for i, inv := range res.Invalid {
		if isCSV {
			fields[i] = mms.FieldError{Field: "line " + strconv.Itoa(inv.Line), Message: inv.Message}
		} else {
			fields[i] = mms.FieldError{Field: "numbers[" + strconv.Itoa(*inv.Index) + "]", Message: inv.Message}
		}
	}
	msg := fmt.Sprintf("none of the %d numbers is valid; nothing was imported", res.Received)
	if res.InvalidCount > len(fields) {
		msg += fmt.Sprintf(" (the first %d are listed)", len(fields))
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed", Message: msg, Fields: fields}
}
