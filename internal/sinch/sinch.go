// Package sinch is a client for the parts of the Sinch XMS REST API that
// mmsgate uses: sending mt_media batches and finding a batch again by its
// client_reference.
//
// The client does not retry. It reports each outcome precisely (see Error,
// TransportError and Classify) and leaves the decision to the caller.
package sinch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TypeMedia is the batch type of an MMS.
const TypeMedia = "mt_media"

// Config configures a Client.
type Config struct {
	// BaseURL is the regional host, e.g. https://us.sms.api.sinch.com.
	BaseURL string
	// ServicePlanID goes in the request path.
	ServicePlanID string
	// Token is the service plan's API token.
	Token string
	// Timeout bounds one call, from dialling to the last byte of the answer.
	Timeout time.Duration
	// HTTPClient, if set, replaces the client built from Timeout.
	HTTPClient *http.Client
}

// Client calls the XMS API. It is safe for concurrent use.
type Client struct {
	batchesURL string
	token      string
	http       *http.Client
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("sinch: base URL %q is not usable", cfg.BaseURL)
	}
	if cfg.ServicePlanID == "" || cfg.Token == "" {
		return nil, errors.New("sinch: service plan ID and token are required")
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient(cfg.Timeout)
	}
	return &Client{
		batchesURL: u.String() + "/xms/v1/" + url.PathEscape(cfg.ServicePlanID) + "/batches",
		token:      cfg.Token,
		http:       hc,
	}, nil
}

// newHTTPClient sets every timeout explicitly: a provider that stops
// answering must cost a bounded time, never a stuck worker.
func newHTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 256
	tr.IdleConnTimeout = 90 * time.Second
	tr.TLSHandshakeTimeout = min(10*time.Second, timeout)
	tr.ResponseHeaderTimeout = timeout
	tr.ExpectContinueTimeout = time.Second
	return &http.Client{
		Timeout:   timeout,
		Transport: tr,
		// The API never redirects; following one could leak the token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Probe checks the plan ID, token and host with a cheap read (a one-item
// batch list). It returns the *Error Sinch answered, or a *TransportError.
func (c *Client) Probe(ctx context.Context) error {
	var page struct{}
	_, err := c.do(ctx, http.MethodGet, c.batchesURL+"?page_size=1", nil, &page)
	return err
}

// MediaBody is the content of an MMS.
type MediaBody struct {
	URL     string `json:"url"`
	Message string `json:"message,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// MediaBatch is the request body of an mt_media batch.
type MediaBatch struct {
	To              []string                     `json:"to"`
	From            string                       `json:"from,omitempty"`
	Type            string                       `json:"type"`
	Body            MediaBody                    `json:"body"`
	Parameters      map[string]map[string]string `json:"parameters,omitempty"`
	ClientReference string                       `json:"client_reference,omitempty"`
	DeliveryReport  string                       `json:"delivery_report,omitempty"`
	CallbackURL     string                       `json:"callback_url,omitempty"`
	SendAt          *time.Time                   `json:"send_at,omitempty"`
	ExpireAt        *time.Time                   `json:"expire_at,omitempty"`
}

// Batch is a batch as Sinch returns it. Decoding ignores fields we do not
// know: Sinch may add new ones at any time.
type Batch struct {
	ID              string    `json:"id"`
	To              []string  `json:"to"`
	From            string    `json:"from"`
	Type            string    `json:"type"`
	Canceled        bool      `json:"canceled"`
	ClientReference string    `json:"client_reference"`
	CreatedAt       time.Time `json:"created_at"`
	ExpireAt        time.Time `json:"expire_at"`

	// HTTPStatus is the status of the answer that carried the batch.
	HTTPStatus int `json:"-"`
}

// SendMedia creates an mt_media batch. On success Sinch has queued the
// batch; it says nothing yet about delivery.
func (c *Client) SendMedia(ctx context.Context, b MediaBatch) (*Batch, error) {
	b.Type = TypeMedia
	body, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("sinch: encode batch: %w", err)
	}

	var out Batch
	status, err := c.do(ctx, http.MethodPost, c.batchesURL, body, &out)
	if err != nil {
		return nil, err
	}
	out.HTTPStatus = status
	if out.ID == "" {
		// A 2xx without an ID leaves us unable to tell what Sinch holds;
		// treat it like a lost answer.
		return nil, &TransportError{Op: "decode batch", Sent: true, Err: ErrBadAnswer}
	}
	return &out, nil
}

// FindByClientReference returns the newest batch created since the given
// time with that client_reference, or nil if there is none. Sinch lists only
// batches of the last 14 days.
func (c *Client) FindByClientReference(ctx context.Context, ref string, since time.Time) (*Batch, error) {
	q := url.Values{}
	q.Set("client_reference", ref)
	q.Set("page_size", "1")
	if floor := time.Now().Add(-14 * 24 * time.Hour); since.Before(floor) {
		since = floor
	}
	q.Set("start_date", since.UTC().Format("2006-01-02T15:04:05.000Z"))

	var page struct {
		Count   int     `json:"count"`
		Batches []Batch `json:"batches"`
	}
	if _, err := c.do(ctx, http.MethodGet, c.batchesURL+"?"+q.Encode(), nil, &page); err != nil {
		return nil, err
	}
	for i := range page.Batches {
		if page.Batches[i].ClientReference == ref {
			return &page.Batches[i], nil
		}
	}
	return nil, nil
}

// do sends one request, decodes a 2xx answer into out and returns its
// status. Every failure comes back as *Error (Sinch answered) or
// *TransportError (it did not, or not readably).
// DeliveryReport fetches a batch's full delivery report, as Sinch's JSON:
// the same shape as a delivery_report_mms callback, with the recipients in
// each status.
func (c *Client) DeliveryReport(ctx context.Context, batchID string) ([]byte, error) {
	var raw json.RawMessage
	target := c.batchesURL + "/" + url.PathEscape(batchID) + "/delivery_report?type=full"
	if _, err := c.do(ctx, http.MethodGet, target, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

func (c *Client) do(ctx context.Context, method, target string, body []byte, out any) (int, error) {
	var wrote bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote = true },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, target, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("sinch: build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	op := method + " " + pathOf(target)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, &TransportError{Op: op, Sent: wrote, Err: err}
	}
	defer resp.Body.Close()

	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, &TransportError{Op: op, Sent: true, Err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, newError(resp, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return 0, &TransportError{Op: op, Sent: true, Err: fmt.Errorf("%w: %w", ErrBadAnswer, err)}
	}
	return resp.StatusCode, nil
}

func pathOf(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	return u.Path
}

// newError reads Sinch's error body defensively: the documented shape is
// {code, text}, but other shapes and plain text occur.
func newError(resp *http.Response, raw []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body struct {
		Code string `json:"code"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Code != "" {
		e.Code, e.Text = body.Code, body.Text
		return e
	}
	e.Text = strings.TrimSpace(string(raw))
	if len(e.Text) > 300 {
		e.Text = e.Text[:300]
	}
	return e
}

// parseRetryAfter reads a Retry-After header in either of its two forms,
// seconds or an HTTP date. It returns 0 when the header is absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
