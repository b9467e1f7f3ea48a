package sinchsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Results of a callback, as Callback.Result gives them.
const (
	CallbackPending   = "pending"   // retries to come
	CallbackDelivered = "delivered" // the receiver answered 2xx
	CallbackDropped   = "dropped"   // any other answer but 5xx or 429: not retried, as Sinch does
	CallbackFailed    = "failed"    // MaxAttempts used up
	CallbackRefused   = "refused"   // the URL is not a loopback IP literal: never dialed
	CallbackCanceled  = "canceled"  // Reset or Close came first
)

// Headers of a signed callback (§6.6).
const (
	HeaderSignature          = "x-sinch-webhook-signature"
	HeaderSignatureNonce     = "x-sinch-webhook-signature-nonce"
	HeaderSignatureTimestamp = "x-sinch-webhook-signature-timestamp"
)

// maxCallbackAnswer bounds how much of a receiver's answer is read, so
// that the connection can be reused.
const maxCallbackAnswer = 64 << 10

// errNotLoopback is what the dialer answers for an address off loopback.
var errNotLoopback = errors.New("sinchsim: callbacks may only go to loopback addresses")

// Callback records one delivery report sent, or refused, to a batch's
// callback_url, with every attempt. A duplicate (ReportSettings.Duplicate)
// is a Callback of its own with Copy 2.
type Callback struct {
	// Seq numbers the callbacks from 1 in the order of their first attempt
	// (or refusal).
	Seq int `json:"seq"`

	BatchID string `json:"batch_id"`
	Type    string `json:"type"` // TypeRecipientReport or TypeBatchReport

	// Recipient (digits), Status and Code are those of a recipient report;
	// empty, empty and 0 for a batch report.
	Recipient string `json:"recipient,omitempty"`
	Status    string `json:"status,omitempty"`
	Code      int    `json:"code"`

	Copy int    `json:"copy"` // 1, or 2 for the duplicate
	URL  string `json:"url"`

	// Body is the JSON sent, byte for byte.
	Body json.RawMessage `json:"body"`

	// Result is one of the Callback* constants; Reason says why a callback
	// was refused.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`

	Attempts []Attempt `json:"attempts"`
}

// Attempt is one POST of a callback.
type Attempt struct {
	At       time.Time     `json:"at"`
	Status   int           `json:"status,omitempty"` // 0: no answer
	Error    string        `json:"error,omitempty"`  // why there was no answer
	Duration time.Duration `json:"duration_ns"`
}

func (c *Callback) clone() Callback {
	out := *c
	out.Body = slices.Clone(c.Body)
	out.Attempts = slices.Clone(c.Attempts)
	return out
}

// Callbacks returns copies of the callbacks recorded since start or the
// last Reset, in the order of their first attempt.
func (s *Server) Callbacks() []Callback {
	s.mu.Lock()
	defer s.mu.Unlock()

	out := make([]Callback, len(s.callbacks))
	for i, c := range s.callbacks {
		out[i] = c.clone()
	}
	return out
}

// Close stops the callbacks waiting for their delay or for a retry, cuts
// those in flight, and waits until their goroutines have ended. Batches
// created after Close get no callbacks; everything else keeps working.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.stop()
	s.mu.Unlock()

	s.wg.Wait()
	s.client.CloseIdleConnections()
}

// goLocked runs f in a goroutine that Close waits for, unless the server
// is closed, and reports whether it did. The caller holds s.mu.
func (s *Server) goLocked(f func()) bool {
	if s.closed {
		return false
	}
	s.wg.Go(f)
	return true
}

// newCallbackClient returns the client that posts callbacks. Its dialer
// refuses any address off loopback, a second guard behind refuseReason; it
// uses no proxy and follows no redirect, since either would lead elsewhere.
func newCallbackClient() *http.Client {
	dialer := &net.Dialer{Timeout: DefaultCallbackTimeout, Control: loopbackOnly}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// loopbackOnly is the dialer's Control: it runs once the socket exists and
// before it connects, and stops any address that is not on loopback.
func loopbackOnly(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errNotLoopback
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return errNotLoopback
	}
	return nil
}

// refuseReason says why the simulator will not call raw, or returns "" if
// it may. Only http and https URLs whose host is an IP literal on loopback
// (127.0.0.0/8, ::1) are called: a host name would need a look-up, and any
// other address would leave the machine.
func refuseReason(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "callback_url does not parse"
	}
	if scheme := strings.ToLower(u.Scheme); scheme != "http" && scheme != "https" {
		return "callback_url is not http or https"
	}

	addr, err := netip.ParseAddr(u.Hostname())
	switch {
	case err != nil:
		return "callback_url host is not an IP literal; the simulator looks up no names"
	case addr.Zone() != "":
		return "callback_url host has an IPv6 zone"
	case !addr.Unmap().IsLoopback():
		return "callback_url host is not a loopback address"
	}
	return ""
}

// scheduleLocked starts the wait for the callbacks of batch id, which are
// due at st.final by the server's clock. The caller holds s.mu.
func (s *Server) scheduleLocked(id string, st *reportState) {
	ctx := s.ctx
	wait := st.final.Sub(s.now())
	s.goLocked(func() {
		if sleep(ctx, wait) {
			s.sendReports(ctx, id)
		}
	})
}

// outgoing is one report to send as a callback.
type outgoing struct {
	typ       string
	recipient string
	status    string
	code      int
	body      []byte
}

// sendReports sends the callbacks of batch id: the first attempt of each in
// turn, in the order the reports are meant to arrive, with retries in the
// background.
func (s *Server) sendReports(ctx context.Context, id string) {
	s.mu.Lock()
	b, ok := s.byID[id]
	st := s.states[id]
	if !ok || ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	st.fired = true
	batch := b.clone()
	rs := s.reports
	s.mu.Unlock()

	reports, err := st.callbackReports(&batch)
	if err != nil {
		// Only a report that cannot be encoded, which would be a bug.
		panic("sinchsim: " + err.Error())
	}

	copies := 1
	if st.duplicate {
		copies = 2
	}
	reason := refuseReason(batch.CallbackURL)
	for _, out := range reports {
		for copyNo := 1; copyNo <= copies; copyNo++ {
			cb := s.newCallback(&batch, out, copyNo)
			if reason != "" {
				cb.Reason = reason
				s.finish(cb, CallbackRefused)
				continue
			}
			s.deliver(ctx, cb, rs)
		}
	}
}

// callbackReports returns the reports to send for b, in order: for
// per_recipient, Dispatched then the final status of each recipient (the
// other way round if outOfOrder); for per_recipient_final, the final ones;
// for summary and full, one batch report.
func (st *reportState) callbackReports(b *Batch) ([]outgoing, error) {
	var out []outgoing
	addRecipient := func(digits string, p phase) error {
		r := st.recipientReport(b, digits, p)
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode recipient report: %w", err)
		}
		out = append(out, outgoing{typ: r.Type, recipient: digits, status: r.Status, code: r.Code, body: body})
		return nil
	}

	switch b.DeliveryReport {
	case "per_recipient", "per_recipient_final":
		phases := []phase{phaseFinal}
		if b.DeliveryReport == "per_recipient" {
			phases = []phase{phaseDispatched, phaseFinal}
			if st.outOfOrder {
				phases = []phase{phaseFinal, phaseDispatched}
			}
		}
		for _, digits := range recipientDigits(b.To) {
			for _, p := range phases {
				if err := addRecipient(digits, p); err != nil {
					return nil, err
				}
			}
		}
	case "summary", "full":
		body, err := json.Marshal(st.batchReport(b, phaseFinal, b.DeliveryReport == "full", nil))
		if err != nil {
			return nil, fmt.Errorf("encode batch report: %w", err)
		}
		out = append(out, outgoing{typ: TypeBatchReport, body: body})
	}
	return out, nil
}

// newCallback records a callback about to be sent.
func (s *Server) newCallback(b *Batch, out outgoing, copyNo int) *Callback {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.seq++
	cb := &Callback{
		Seq:       s.seq,
		BatchID:   b.ID,
		Type:      out.typ,
		Recipient: out.recipient,
		Status:    out.status,
		Code:      out.code,
		Copy:      copyNo,
		URL:       b.CallbackURL,
		Body:      out.body,
		Result:    CallbackPending,
		Attempts:  []Attempt{},
	}
	s.callbacks = append(s.callbacks, cb)
	return cb
}

// deliver makes the first attempt of cb now and, if it calls for a retry,
// goes on in the background with the backoff of rs.
func (s *Server) deliver(ctx context.Context, cb *Callback, rs ReportSettings) {
	if s.attempt(ctx, cb, rs) {
		return
	}

	s.mu.Lock()
	started := s.goLocked(func() {
		delay := rs.RetryDelay
		for range rs.MaxAttempts - 1 {
			if !sleep(ctx, delay) {
				s.finish(cb, CallbackCanceled)
				return
			}
			if s.attempt(ctx, cb, rs) {
				return
			}
			delay *= 2
		}
		s.finish(cb, CallbackFailed)
	})
	s.mu.Unlock()

	if !started {
		s.finish(cb, CallbackCanceled)
	}
}

// attempt POSTs cb's body once, records the attempt, and reports whether cb is
// done: answered (delivered or dropped), out of attempts, or canceled.
// false means a retry is due.
func (s *Server) attempt(ctx context.Context, cb *Callback, rs ReportSettings) bool {
	start := time.Now()
	status, err := s.post(ctx, cb.URL, cb.Body, rs)
	a := Attempt{At: start, Status: status, Duration: time.Since(start)}
	if err != nil {
		a.Error = err.Error()
	}

	s.mu.Lock()
	cb.Attempts = append(cb.Attempts, a)
	n := len(cb.Attempts)
	s.mu.Unlock()

	switch {
	case ctx.Err() != nil:
		s.finish(cb, CallbackCanceled)
	case err != nil, status >= 500, status == http.StatusTooManyRequests:
		if n < rs.MaxAttempts {
			return false
		}
		s.finish(cb, CallbackFailed)
	case status >= 200 && status < 300:
		s.finish(cb, CallbackDelivered)
	default:
		s.finish(cb, CallbackDropped)
	}
	return true
}

// post sends one callback request and returns the answer's status.
func (s *Server) post(ctx context.Context, target string, body []byte, rs ReportSettings) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, rs.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if rs.WebhookSecret != "" {
		if err := sign(req.Header, rs.WebhookSecret, body, time.Now()); err != nil {
			return 0, err
		}
	}

	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Read some of the answer so that the connection can serve again; its
	// content does not matter.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCallbackAnswer))
	return resp.StatusCode, nil
}

// sign adds Sinch's HMAC headers for body to h: a fresh nonce, the Unix
// time in seconds, and Base64(HMAC-SHA256(secret, body.nonce.timestamp)).
func sign(h http.Header, secret string, body []byte, now time.Time) error {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("make nonce: %w", err)
	}
	nonce := hex.EncodeToString(raw)
	timestamp := strconv.FormatInt(now.Unix(), 10)

	h.Set(HeaderSignatureNonce, nonce)
	h.Set(HeaderSignatureTimestamp, timestamp)
	h.Set(HeaderSignature, Signature(secret, body, nonce, timestamp))
	return nil
}

// Signature returns Sinch's callback signature: Base64(HMAC-SHA256(secret,
// body + "." + nonce + "." + timestamp)).
func Signature(secret string, body []byte, nonce, timestamp string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	mac.Write([]byte("." + nonce + "." + timestamp))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// finish sets the end result of cb, once, and then tells
// Config.OnCallback.
func (s *Server) finish(cb *Callback, result string) {
	s.mu.Lock()
	if cb.Result != CallbackPending {
		s.mu.Unlock()
		return
	}
	cb.Result = result
	c := cb.clone()
	s.mu.Unlock()

	if s.onCallback != nil {
		s.onCallback(c)
	}
}

// callbackContext returns the context that Reset and Close end.
func (s *Server) callbackContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx
}
