package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// campaignAccepted is the body of a 202 for a campaign.
type campaignAccepted struct {
	CampaignID string          `json:"campaign_id"`
	Name       string          `json:"name,omitempty"`
	Status     string          `json:"status"`
	StatusURL  string          `json:"status_url"`
	JobsURL    string          `json:"jobs_url"`
	Jobs       int             `json:"jobs"`
	Recipients campaign.Counts `json:"recipients"`
	// Invalid and Suppressed list the first mms.MaxListed of each.
	Invalid    []mms.Rejected `json:"invalid"`
	Suppressed []string       `json:"suppressed"`
}

func campaignURL(id string) string { return "/api/mms/campaigns/" + id }

func acceptedCampaign(r *campaign.Record) campaignAccepted {
	status := "preparing"
	if r.Content.SendAt.After(time.Now()) {
		status = "scheduled"
	}
	return campaignAccepted{
		CampaignID: r.ID, Name: r.Name, Status: status,
		StatusURL: campaignURL(r.ID), JobsURL: campaignURL(r.ID) + "/jobs",
		Jobs: r.Jobs, Recipients: r.Counts,
		Invalid: nonNil(r.InvalidList), Suppressed: nonNil(r.SuppressedList),
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// createCampaign accepts a campaign: as JSON, as a text/csv body with the
// other fields in the query string, or as a multipart form with the CSV in
// a "recipients" file and the other fields as form values. It validates
// every recipient, leaves out the invalid, repeated and suppressed ones,
// stores the campaign with its batches and enqueues the task that turns
// them into jobs; it does not wait for that.
func (s *server) createCampaign(c echo.Context) error {
	req, raw, err := s.readCampaign(c)
	if err != nil {
		return err
	}
	idemKey, err := idempotencyKey(c.Request())
	if err != nil {
		return err
	}
	plan, err := req.Validate(s.cfg.Rules)
	if errors.Is(err, mms.ErrNoRecipients) {
		return noValidRecipient(plan, "no recipient is a valid phone number", nil)
	}
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout+s.cfg.BulkTimeout)
	defer cancel()

	// The key is checked before the suppression list is read, so a replay
	// answers as the first request did even if the list changed since.
	now := time.Now().UTC()
	rec := &campaign.Record{
		ID: mms.NewJobID(), Name: plan.Name, Reference: plan.Reference, Priority: plan.Priority,
		RateLimit: plan.RateLimit, CallbackURL: plan.CallbackURL, Content: plan.Content, MaxAttempts: s.cfg.MaxAttempts,
		BatchSize: s.cfg.CampaignBatchSize, InvalidList: plan.Invalid, CreatedAt: now,
		Counts:      campaign.Counts{Listed: plan.Listed, Invalid: plan.InvalidCount, Duplicates: plan.Duplicates},
		Fingerprint: campaignFingerprint(c, raw),
	}
	c.Set(ctxJobID, rec.ID)
	scope := "campaigns:" + keyScope(c)
	var held *campaign.Record
	if idemKey != "" {
		earlier, r, err := reserveFor(ctx, s, c, scope, idemKey, rec.Fingerprint, rec.ID,
			func(ctx context.Context, id string) (*campaign.Record, error) {
				r, _, err := s.deps.Campaigns.Get(ctx, id)
				if errors.Is(err, campaign.ErrNotFound) {
					err = mms.ErrNotFound
				}
				return r, err
			})
		if err != nil {
			return err
		}
		if earlier != nil {
			c.Response().Header().Set("Idempotent-Replayed", "true")
			return answerCampaign(c, earlier)
		}
		defer func() {
			if held == nil { // not accepted: free the key at once
				s.releaseKey(c, scope, idemKey, *r)
			}
		}()
	}

	if err := s.leaveOutSuppressed(ctx, plan, rec); err != nil {
		return err
	}
	if len(plan.Recipients) == 0 {
		return noValidRecipient(plan, "every valid recipient is on the suppression list", rec.SuppressedList)
	}
	rec.Accepted = len(plan.Recipients)
	rec.Jobs = (rec.Accepted + rec.BatchSize - 1) / rec.BatchSize

	if err := s.deps.Campaigns.Create(ctx, rec, plan); err != nil {
		s.undoCampaign(c, rec.ID, err)
		return errUnavailable()
	}
	t, err := campaign.NewExpandTask(rec.ID)
	if err == nil {
		_, err = s.deps.Queue.EnqueueContext(ctx, t)
	}
	if err != nil {
		s.undoCampaign(c, rec.ID, err)
		return errUnavailable()
	}
	held = rec
	reqLog(c, s.deps.Log).Info().Str("campaign_id", rec.ID).Int("recipients", rec.Accepted).
		Int("jobs", rec.Jobs).Int("invalid", rec.Invalid).Int("duplicates", rec.Duplicates).
		Int("suppressed", rec.Suppressed).Msg("campaign accepted")
	return answerCampaign(c, rec)
}

func answerCampaign(c echo.Context, r *campaign.Record) error {
	c.Response().Header().Set(echo.HeaderLocation, campaignURL(r.ID))
	return c.JSON(http.StatusAccepted, acceptedCampaign(r))
}

// noValidRecipient is the 422 for a campaign left with no recipient to send to; it
// lists why each was refused.
func noValidRecipient(plan *mms.CampaignPlan, msg string, suppressed []string) error {
	fields := make([]mms.FieldError, 0, len(plan.Invalid)+len(suppressed))
	for _, r := range plan.Invalid {
		fields = append(fields, mms.FieldError{Field: rejectedField(r), Message: r.Message})
	}
	for _, n := range suppressed {
		fields = append(fields, mms.FieldError{Field: "recipients", Message: n + " is on the suppression list"})
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "no_valid_recipients", Message: msg,
		Fields: fields}
}

func rejectedField(r mms.Rejected) string {
	if r.Index != nil {
		return "recipients[" + strconv.Itoa(*r.Index) + "]"
	}
	return "recipients (line " + strconv.Itoa(r.Line) + ")"
}

// leaveOutSuppressed removes the plan's recipients that are on the
// suppression list, and counts them on the record.
func (s *server) leaveOutSuppressed(ctx context.Context, plan *mms.CampaignPlan, rec *campaign.Record) error {
	if s.deps.Suppress == nil {
		return nil
	}
	hit, err := s.deps.Suppress.Filter(ctx, plan.Recipients)
	if err != nil {
		return errUnavailable()
	}
	keep := 0
	for i, n := range plan.Recipients {
		if hit[i] {
			rec.Suppressed++
			if len(rec.SuppressedList) < mms.MaxListed {
				rec.SuppressedList = append(rec.SuppressedList, n)
			}
			continue
		}
		plan.Recipients[keep] = n
		for _, vals := range plan.Values {
			vals[keep] = vals[i]
		}
		keep++
	}
	plan.Recipients = plan.Recipients[:keep]
	for name, vals := range plan.Values {
		plan.Values[name] = vals[:keep]
	}
	return nil
}

// readCampaign decodes the request in whichever form it came. raw is what
// identifies the request's content for Idempotency-Key.
func (s *server) readCampaign(c echo.Context) (*mms.CampaignRequest, []byte, error) {
	r := c.Request()
	mt, params, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil {
		mt = ""
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, nil, newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the body must be UTF-8; charset "+cs+" is not supported")
	}
	req := &mms.CampaignRequest{}
	switch mt {
	case echo.MIMEApplicationJSON:
		body, err := readBody(r.Body)
		if err != nil {
			return nil, nil, err
		}
		if err := mms.DecodeStrict(bytes.NewReader(body), req); err != nil {
			return nil, nil, badJSON(err)
		}
		return req, body, nil

	case "text/csv":
		body, err := readBody(r.Body)
		if err != nil {
			return nil, nil, err
		}
		if err := readCSVCampaign(req, r.URL.Query(), body); err != nil {
			return nil, nil, err
		}
		return req, append([]byte(r.URL.RawQuery+"\n"), body...), nil

	case echo.MIMEMultipartForm:
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, nil, err
			}
			return nil, nil, invalid("invalid_form", "the body is not a valid multipart form", "body",
				"is not a valid multipart form")
		}
		defer func() { _ = r.MultipartForm.RemoveAll() }()
		for name := range r.MultipartForm.File {
			if name != "recipients" {
				return nil, nil, invalid("invalid_form", "the form has an unknown file", name,
					"is not a known file field; attach the CSV as \"recipients\"")
			}
		}
		files := r.MultipartForm.File["recipients"]
		if len(files) != 1 {
			return nil, nil, invalid("invalid_form", "the form needs one CSV file", "recipients",
				"attach exactly one CSV file as form field \"recipients\"")
		}
		f, err := files[0].Open()
		if err != nil {
			return nil, nil, unreadable(err)
		}
		defer f.Close()
		body, err := readBody(f)
		if err != nil {
			return nil, nil, err
		}
		if err := readCSVCampaign(req, r.MultipartForm.Value, body); err != nil {
			return nil, nil, err
		}
		form, _ := json.Marshal(r.MultipartForm.Value)
		return req, append(append(form, '\n'), body...), nil
	}
	return nil, nil, newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
		"Content-Type must be application/json, text/csv or multipart/form-data")
}

// readCSVCampaign fills req from a CSV of recipients and the other fields
// as a query string or form values. Lines ended by a carriage return alone,
// as some spreadsheets write them, are read as lines too.
func readCSVCampaign(req *mms.CampaignRequest, fields url.Values, body []byte) error {
	if err := req.ReadCampaignFields(fields); err != nil {
		return asInvalid(err, "invalid_query", "a field given with the CSV is not valid")
	}
	if !bytes.ContainsRune(body, '\n') {
		body = bytes.ReplaceAll(body, []byte{'\r'}, []byte{'\n'})
	}
	if err := req.ReadRecipientsCSV(bytes.NewReader(body)); err != nil {
		return asInvalid(err, "invalid_csv", "the CSV of recipients is not valid")
	}
	return nil
}

// invalid is a 400 with one field named.
func invalid(code, msg, field, problem string) error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg,
		Fields: []mms.FieldError{{Field: field, Message: problem}}}
}

// asInvalid maps a reading error to a 400 with the given code, naming the
// fields a validation error names.
func asInvalid(err error, code, msg string) error {
	var verr *mms.ValidationError
	if errors.As(err, &verr) {
		return &Error{Status: http.StatusBadRequest, Code: code, Message: msg, Fields: verr.Fields}
	}
	return unreadable(err)
}

// campaignFingerprint identifies a campaign request by its content, taken
// as sent: the same campaign written differently counts as another.
func campaignFingerprint(c echo.Context, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(c.Request().Header.Get(echo.HeaderContentType)))
	h.Write([]byte{0})
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))
}

// undoCampaign removes a campaign that could not be accepted.
func (s *server) undoCampaign(c echo.Context, id string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), s.cfg.RedisTimeout)
	defer cancel()
	log := reqLog(c, s.deps.Log)
	if err := s.deps.Campaigns.Delete(ctx, id); err != nil {
		log.Error().Err(err).AnErr("cause", cause).Msg("campaign not accepted and maybe not removed; it has no task")
		return
	}
	log.Warn().Err(cause).Msg("campaign not accepted; removed")
}

// campaignView is a campaign as clients see it.
type campaignView struct {
	CampaignID string          `json:"campaign_id"`
	Name       string          `json:"name,omitempty"`
	Reference  string          `json:"reference,omitempty"`
	Status     string          `json:"status"`
	Priority   mms.Priority    `json:"priority"`
	RateLimit  *float64        `json:"rate_limit"`
	Recipients campaign.Counts `json:"recipients"`
	Jobs       struct {
		Total   int                `json:"total"`
		Created int                `json:"created"`
		Status  map[mms.Status]int `json:"by_status"`
	} `json:"jobs"`
	RecipientsByStatus map[mms.Status]int             `json:"recipients_by_status"`
	Progress           float64                        `json:"progress"`
	Rate               float64                        `json:"rate"`
	ETA                *time.Time                     `json:"eta"`
	Errors             map[string]campaign.ErrorCount `json:"errors"`
	SendAt             *time.Time                     `json:"send_at,omitempty"`
	ExpireAt           time.Time                      `json:"expire_at"`
	CreatedAt          time.Time                      `json:"created_at"`
	CanceledAt         *time.Time                     `json:"canceled_at,omitempty"`
	JobsURL            string                         `json:"jobs_url"`
	CallbackURL        string                         `json:"callback_url,omitempty"`
}

func (s *server) getCampaign(c echo.Context) error {
	id, err := campaignParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout+s.cfg.BulkTimeout)
	defer cancel()
	sum, err := s.deps.Campaigns.Summarize(ctx, id)
	if err != nil {
		return s.campaignError(c, err)
	}
	r := sum.Record
	v := campaignView{
		CampaignID: r.ID, Name: r.Name, Reference: r.Reference, Status: sum.Status, Priority: r.Priority,
		CallbackURL: r.CallbackURL, Recipients: r.Counts, RecipientsByStatus: sum.Recipients,
		Progress: math.Round(sum.Progress*10000) / 10000, Rate: math.Round(sum.Rate*100) / 100, ETA: sum.ETA,
		Errors: sum.Errors, ExpireAt: r.Content.ExpireAt, CreatedAt: r.CreatedAt, JobsURL: campaignURL(r.ID) + "/jobs",
	}
	if r.RateLimit > 0 {
		v.RateLimit = &r.RateLimit
	}
	v.Jobs.Total, v.Jobs.Created, v.Jobs.Status = r.Jobs, sum.State.Made, sum.Jobs
	if !r.Content.SendAt.IsZero() {
		v.SendAt = &r.Content.SendAt
	}
	if !sum.State.CanceledAt.IsZero() {
		v.CanceledAt = &sum.State.CanceledAt
	}
	return c.JSON(http.StatusOK, v)
}

// campaignJob is one job in a campaign's job list.
type campaignJob struct {
	JobID        string     `json:"job_id"`
	Status       mms.Status `json:"status"`
	Recipients   int        `json:"recipients"`
	ErrorCode    *string    `json:"error_code"`
	SinchBatchID *string    `json:"sinch_batch_id"`
	UpdatedAt    *time.Time `json:"updated_at"`
	StatusURL    string     `json:"status_url"`
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (s *server) listCampaignJobs(c echo.Context) error {
	id, err := campaignParam(c)
	if err != nil {
		return err
	}
	var fields []mms.FieldError
	q := c.QueryParams()
	for k, vals := range q {
		switch {
		case !slices.Contains([]string{"status", "cursor", "limit"}, k):
			fields = append(fields, mms.FieldError{Field: k, Message: "is not a known query parameter"})
		case len(vals) > 1:
			fields = append(fields, mms.FieldError{Field: k, Message: "appears more than once"})
		}
	}
	status := mms.Status(q.Get("status"))
	if status != "" && status.Rank() < 0 {
		fields = append(fields, mms.FieldError{Field: "status", Message: "is not a job status"})
	}
	cursor, limit := 0, defaultPageSize
	if v := q.Get("cursor"); v != "" {
		if cursor, err = strconv.Atoi(v); err != nil || cursor < 0 {
			fields = append(fields, mms.FieldError{Field: "cursor", Message: "must be a cursor from next_cursor"})
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxPageSize {
			fields = append(fields, mms.FieldError{Field: "limit",
				Message: "must be 1 to " + strconv.Itoa(maxPageSize)})
		}
	}
	if len(fields) > 0 {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_query", Message: "the query is not valid",
			Fields: fields}
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout+s.cfg.BulkTimeout)
	defer cancel()
	page, err := s.deps.Campaigns.ListJobs(ctx, id, cursor, limit, status)
	if err != nil {
		return s.campaignError(c, err)
	}
	out := struct {
		Jobs       []campaignJob `json:"jobs"`
		NextCursor *string       `json:"next_cursor"`
	}{Jobs: make([]campaignJob, 0, len(page.Jobs))}
	for _, b := range page.Jobs {
		j := campaignJob{JobID: b.ID, Status: b.Status, Recipients: b.Recipients, StatusURL: statusURL(b.ID)}
		if b.ErrCode != "" {
			j.ErrorCode = &b.ErrCode
		}
		if b.BatchID != "" {
			j.SinchBatchID = &b.BatchID
		}
		if !b.UpdatedAt.IsZero() {
			u := b.UpdatedAt
			j.UpdatedAt = &u
		}
		out.Jobs = append(out.Jobs, j)
	}
	if page.Next >= 0 {
		n := strconv.Itoa(page.Next)
		out.NextCursor = &n
	}
	return c.JSON(http.StatusOK, out)
}

func (s *server) cancelCampaign(c echo.Context) error {
	id, err := campaignParam(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RedisTimeout+s.cfg.BulkTimeout)
	defer cancel()
	s.flushLater(c, "", id)
	sum, err := s.deps.Campaigns.Cancel(ctx, id)
	if err != nil {
		return s.campaignError(c, err)
	}
	s.deps.Metrics.Jobs().JobsChanged(sum.Queue, string(mms.StatusCanceled), "campaign_canceled", sum.CanceledJobs)
	reqLog(c, s.deps.Log).Info().Str("campaign_id", id).Int("canceled_jobs", sum.CanceledJobs).
		Msg("campaign canceled")
	return c.JSON(http.StatusOK, struct {
		CampaignID string `json:"campaign_id"`
		Status     string `json:"status"`
		*campaign.CancelSummary
	}{id, "canceled", sum})
}

// campaignParam reads a campaign ID, in any case, as job IDs are.
func campaignParam(c echo.Context) (string, error) {
	id := strings.ToLower(c.Param("id"))
	if !mms.ValidJobID(id) {
		return "", &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no campaign with that ID",
			Fields: []mms.FieldError{{Field: "id", Message: "is not a campaign ID"}}}
	}
	return id, nil
}

func (s *server) campaignError(c echo.Context, err error) error {
	if errors.Is(err, campaign.ErrNotFound) {
		return newError(http.StatusNotFound, "not_found",
			"no campaign with that ID (campaigns are kept for the retention period)")
	}
	if errors.Is(err, campaign.ErrCompleted) {
		return newError(http.StatusConflict, "not_cancelable",
			"the campaign has completed: every job was handed to Sinch or ended")
	}
	reqLog(c, s.deps.Log).Warn().Err(err).Msg("campaign not read")
	return errUnavailable()
}
