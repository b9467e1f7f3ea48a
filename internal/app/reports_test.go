package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const reportsPath = "/sinch/reports/" + reportSecret

// sign returns Sinch's signature headers for body.
func sign(secret, body string) []string {
	nonce, ts := "n-"+fmt.Sprint(time.Now().UnixNano()), fmt.Sprint(time.Now().Unix())
	return []string{sinchsim.HeaderSignature, sinchsim.Signature(secret, []byte(body), nonce, ts),
		sinchsim.HeaderSignatureNonce, nonce, sinchsim.HeaderSignatureTimestamp, ts, "X-API-Key", ""}
}

func recipientReport(jobID, who, status string, code int) string {
	return fmt.Sprintf(`{"type":"recipient_delivery_report_mms","batch_id":"b-1","recipient":%q,`+
		`"code":%d,"status":%q,"at":"2026-12-04T12:00:05.120Z","client_reference":%q}`,
		strings.TrimPrefix(who, "+"), code, status, jobID)
}

// postReport posts a signed report as Sinch does, without an API key.
func (s *stack) postReport(t *testing.T, body string) response {
	t.Helper()
	return s.do(t, http.MethodPost, reportsPath, "application/json", body, sign(webhookSecret, body)...)
}

func TestDeliveryReportsIntake(t *testing.T) {
	s := setup(t, options{reports: true})
	id := s.send(t, goodBody)
	s.waitFor(t, id, mms.StatusSent)

	r := s.postReport(t, recipientReport(id, "+12025550123", "Delivered", 0))
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.Equal(t, 1, num(r.body["stored"]))
	s.waitFor(t, id, mms.StatusSent) // one of two recipients: still sent

	// The same report again is a no-op; so is an intermediate one late.
	r = s.postReport(t, recipientReport(id, "+12025550123", "Delivered", 0))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, 1, num(r.body["repeats"]))
	r = s.postReport(t, recipientReport(id, "+12025550123", "Dispatched", 401))
	require.Equal(t, http.StatusOK, r.status)

	r = s.postReport(t, recipientReport(id, "+14155552671", "Failed", 417))
	require.Equal(t, http.StatusOK, r.status)
	job := s.waitFor(t, id, mms.StatusPartiallyDelivered)
	delivery := job["delivery"].([]any)
	require.Len(t, delivery, 2)
	first := delivery[0].(map[string]any)
	require.Equal(t, "+12025550123", first["recipient"])
	require.Equal(t, "Delivered", first["status"])
	second := delivery[1].(map[string]any)
	require.Equal(t, "Failed", second["status"])
	require.Equal(t, 417, num(second["code"]))

	// Refusals: what Sinch must not send again gets a 4xx and changes
	// nothing.
	body := recipientReport(id, "+12025550123", "Failed", 402)
	forged := sign("not-the-secret", body)
	require.Equal(t, http.StatusUnauthorized,
		s.do(t, http.MethodPost, reportsPath, "application/json", body, forged...).status, "forged signature")
	require.Equal(t, http.StatusUnauthorized,
		s.do(t, http.MethodPost, reportsPath, "application/json", body, "X-API-Key", "").status, "unsigned")
	require.Equal(t, http.StatusNotFound,
		s.do(t, http.MethodPost, "/sinch/reports/wrong-secret-0123456789", "application/json", body,
			sign(webhookSecret, body)...).status, "wrong secret in the path")
	require.Equal(t, http.StatusBadRequest, s.postReport(t, `{"type":`).status)
	require.Equal(t, http.StatusBadRequest,
		s.postReport(t, `{"type":"recipient_delivery_report_mms","client_reference":"x"}`).status)
	for _, bad := range []string{
		recipientReport(id, "+12025550123", "Delivered", 0) + ` trailing`,
		`null`,
		recipientReport(id, "+12025550123", "Bogus", 0),
		recipientReport(id, "+1 202 555 0123", "Delivered", 0),
	} {
		require.Equal(t, http.StatusBadRequest, s.postReport(t, bad).status, bad)
	}
	// The error speaks of the report, not of our Go types.
	for _, bad := range []string{`[{"type":"delivery_report_mms"}]`, `{"type":"recipient_delivery_report_mms",` +
		`"client_reference":"` + id + `","recipient":"12025550123","status":"Delivered","code":"0"}`} {
		r := s.postReport(t, bad)
		require.Equal(t, http.StatusBadRequest, r.status, bad)
		require.NotContains(t, fmt.Sprint(r.body), "Go ", bad)
		require.NotContains(t, fmt.Sprint(r.body), "reports.callback", bad)
	}
	r = s.postReport(t, recipientReport(id, "+19995550000", "Delivered", 0))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, true, r.body["ignored"], "a number not in the job is not stored")
	r = s.postReport(t, `{"type":"mo_text","from":"12025550123","body":"STOP"}`)
	require.Equal(t, http.StatusOK, r.status, "other callbacks are taken and ignored")
	require.Equal(t, true, r.body["ignored"])

	job = s.waitFor(t, id, mms.StatusPartiallyDelivered)
	require.Equal(t, "Delivered", job["delivery"].([]any)[0].(map[string]any)["status"], "unchanged")
	require.NotContains(t, s.logs.String(), reportSecret, "the secret stays out of the logs")
}

// TestDeliveryReportDuringRedisOutage: a report that cannot be stored gets a
// 5xx, which Sinch retries; once Redis is back the retry is stored.
func TestDeliveryReportDuringRedisOutage(t *testing.T) {
	s := setup(t, options{reports: true, persistent: true})
	id := s.send(t, goodBody)
	s.waitFor(t, id, mms.StatusSent)

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.redis.Restart(t, 2*time.Second)
	}()
	body := recipientReport(id, "+12025550123", "Delivered", 0)
	saw503 := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := s.postReport(t, body)
		if r.status == http.StatusServiceUnavailable {
			saw503 = true
		}
		if r.status == http.StatusOK && saw503 {
			break
		}
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, r.status, "never a 4xx")
		time.Sleep(100 * time.Millisecond)
	}
	<-done
	require.True(t, saw503, "the report was refused with a 5xx while Redis was away")
	job := s.waitFor(t, id, mms.StatusSent)
	require.Equal(t, "Delivered", job["delivery"].([]any)[0].(map[string]any)["status"])
}
