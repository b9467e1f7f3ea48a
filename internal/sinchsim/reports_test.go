package sinchsim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// reportsBase is the start of the test clock in the polling tests.
var reportsBase = time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)

// failing13 makes numbers ending in 13 fail with code 417.
var failing13 = map[string]sinchsim.Outcome{"*13": {Status: sinchsim.StatusFailed, Code: 417}}

// sendTo creates a batch without delivery reports for the recipients and
// returns it.
func (e *env) sendTo(t *testing.T, ref string, to ...any) sinchsim.Batch {
	t.Helper()

	req := withRef(ref)
	req["to"] = to
	resp := e.post(t, req)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	return resp.batch(t)
}

func TestPollRecipientReport(t *testing.T) {
	t.Parallel()

	clk := newClock(reportsBase)
	e := setup(t, sinchsim.Config{
		Now:     clk.Now,
		Reports: sinchsim.ReportSettings{Delay: time.Second, Outcomes: failing13},
	})
	b := e.sendTo(t, "job-1", "+12025550100", "+12025550113")
	path := "/batches/" + b.ID + "/delivery_report/"

	poll := func(msisdn string) (sinchsim.RecipientReport, map[string]any) {
		t.Helper()
		resp := e.get(t, path+msisdn)
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		require.Equal(t, "application/json", resp.header.Get("Content-Type"))
		var raw map[string]any
		require.NoError(t, json.Unmarshal(resp.body, &raw))
		return decode[sinchsim.RecipientReport](t, resp.body), raw
	}

	// Queued at first, without an operator time.
	rep, raw := poll("12025550100")
	require.Equal(t, sinchsim.RecipientReport{
		Type: "recipient_delivery_report_mms", BatchID: b.ID, Recipient: "12025550100",
		Code: 400, Status: "Queued", At: reportsBase, ClientReference: "job-1",
	}, rep)
	require.NotContains(t, raw, "operator_status_at")
	require.Equal(t, "2025-01-10T12:00:00.000Z", raw["at"])

	// Dispatched halfway through the delay.
	clk.Add(500 * time.Millisecond)
	rep, _ = poll("+12025550113")
	require.Equal(t, "Dispatched", rep.Status)
	require.Equal(t, 401, rep.Code)
	require.Equal(t, reportsBase.Add(500*time.Millisecond), rep.At)
	require.Equal(t, rep.At, rep.OperatorStatusAt)

	// Final once the delay has passed, though no callback was asked for.
	clk.Add(500 * time.Millisecond)
	for _, tt := range []struct {
		msisdn, status string
		code           int
	}{
		{"12025550100", "Delivered", 0},
		{"+12025550100", "Delivered", 0},
		{"0012025550100", "Delivered", 0},
		{"12025550113", "Failed", 417},
	} {
		rep, raw := poll(tt.msisdn)
		require.Equal(t, tt.status, rep.Status, tt.msisdn)
		require.Equal(t, tt.code, rep.Code, tt.msisdn)
		require.Equal(t, reportsBase.Add(time.Second), rep.At)
		require.Equal(t, "2025-01-10T12:00:01.000Z", raw["operator_status_at"])
	}

	// 404 without a body for a number not in the batch, a non-number, an
	// unknown batch.
	e.require404(t,
		path+"12025550199",
		path+"abc",
		"/batches/01HF4WG1TAVS351YYD7Q84K8HA/delivery_report/12025550100",
	)
}

// require404 gets each path and requires a 404 without a body.
func (e *env) require404(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		resp := e.get(t, p)
		require.Equal(t, http.StatusNotFound, resp.status, p)
		require.Empty(t, resp.body)
	}
}

func TestPollScheduledBatch(t *testing.T) {
	t.Parallel()

	clk := newClock(reportsBase)
	e := setup(t, sinchsim.Config{Now: clk.Now, Reports: sinchsim.ReportSettings{Delay: time.Second}})

	req := withRef("later")
	req["send_at"] = "2025-01-10T13:00:00Z"
	resp := e.post(t, req)
	require.Equal(t, http.StatusCreated, resp.status)
	path := "/batches/" + resp.batch(t).ID + "/delivery_report/12025550123"

	status := func() string {
		t.Helper()
		return decode[sinchsim.RecipientReport](t, e.get(t, path).body).Status
	}
	clk.Add(time.Hour + 499*time.Millisecond)
	require.Equal(t, "Queued", status(), "the delay starts at send_at")
	clk.Add(time.Millisecond)
	require.Equal(t, "Dispatched", status())
	clk.Add(500 * time.Millisecond)
	require.Equal(t, "Delivered", status())
}

func TestPollBatchReport(t *testing.T) {
	t.Parallel()

	clk := newClock(reportsBase)
	e := setup(t, sinchsim.Config{
		Now:     clk.Now,
		Reports: sinchsim.ReportSettings{Delay: time.Second, Outcomes: failing13},
	})
	b := e.sendTo(t, "job-2", "+12025550100", "+12025550113", "+12025550101")
	path := "/batches/" + b.ID + "/delivery_report"

	report := func(query string) string {
		t.Helper()
		resp := e.get(t, path+query)
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		return string(resp.body)
	}
	head := `"type":"delivery_report_mms","batch_id":"` + b.ID + `","total_message_count":3,"client_reference":"job-2"`

	require.JSONEq(t, `{`+head+`,"statuses":[{"code":400,"status":"Queued","count":3}]}`, report(""))

	clk.Add(time.Second)
	summary := `{` + head + `,"statuses":[
		{"code":0,"status":"Delivered","count":2},
		{"code":417,"status":"Failed","count":1}]}`
	require.JSONEq(t, summary, report(""))
	require.JSONEq(t, summary, report("?type=summary"))
	require.JSONEq(t, `{`+head+`,"statuses":[
		{"code":0,"status":"Delivered","count":2,"recipients":["12025550100","12025550101"]},
		{"code":417,"status":"Failed","count":1,"recipients":["12025550113"]}]}`, report("?type=full"))

	failedOnly := `{` + head + `,"statuses":[{"code":417,"status":"Failed","count":1}]}`
	require.JSONEq(t, failedOnly, report("?status=Failed"))
	require.JSONEq(t, failedOnly, report("?code=417"))
	require.JSONEq(t, failedOnly, report("?status=failed,Expired&code=0,417"))
	require.JSONEq(t, summary, report("?status=Delivered,Failed"))
	require.JSONEq(t, `{`+head+`,"statuses":[]}`, report("?status=Queued"))

	for _, q := range []string{"?status=Nope", "?code=x", "?code=1,,y"} {
		resp := e.get(t, path+q)
		require.Equal(t, http.StatusBadRequest, resp.status, q)
		code, _ := resp.errorBody(t)
		require.Equal(t, "syntax_invalid_parameter_format", code)
	}

	e.require404(t, path+"?type=detailed", "/batches/01HF4WG1TAVS351YYD7Q84K8HA/delivery_report")
}

func TestListDeliveryReports(t *testing.T) {
	t.Parallel()

	clk := newClock(reportsBase)
	e := setup(t, sinchsim.Config{
		Now:     clk.Now,
		Reports: sinchsim.ReportSettings{Delay: time.Second, Outcomes: failing13},
	})

	type list struct {
		Page            int                        `json:"page"`
		PageSize        int                        `json:"page_size"`
		Count           int                        `json:"count"`
		DeliveryReports []sinchsim.RecipientReport `json:"delivery_reports"`
	}
	get := func(query string) list {
		t.Helper()
		resp := e.get(t, "/delivery_reports"+query)
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
		return decode[list](t, resp.body)
	}
	who := func(l list) []string {
		out := []string{}
		for _, r := range l.DeliveryReports {
			out = append(out, r.ClientReference+"/"+r.Recipient+"/"+r.Status)
		}
		return out
	}

	e.sendTo(t, "a", "+12025550100", "+12025550113")
	require.Equal(t, list{DeliveryReports: []sinchsim.RecipientReport{}}, get(""), "nothing final yet")

	clk.Add(2 * time.Second)
	e.sendTo(t, "b", "+12025550101")
	require.Equal(t, []string{"a/12025550100/Delivered", "a/12025550113/Failed"}, who(get("")),
		"b is not final yet")

	clk.Add(time.Second)
	all := get("")
	require.Equal(t, 3, all.Count)
	require.Equal(t, 3, all.PageSize)
	require.Equal(t, []string{"b/12025550101/Delivered", "a/12025550100/Delivered", "a/12025550113/Failed"},
		who(all), "newest first")
	require.Equal(t, "recipient_delivery_report_mms", all.DeliveryReports[0].Type)
	require.Equal(t, reportsBase.Add(3*time.Second), all.DeliveryReports[0].At)

	require.Equal(t, []string{"a/12025550100/Delivered", "a/12025550113/Failed"}, who(get("?client_reference=a")))
	require.Equal(t, []string{"a/12025550113/Failed"}, who(get("?status=Failed")))
	require.Equal(t, []string{"b/12025550101/Delivered", "a/12025550100/Delivered"}, who(get("?code=0")))
	require.Empty(t, who(get("?client_reference=a&status=Delivered&code=417")))

	page := get("?page=1&page_size=2")
	require.Equal(t, list{Page: 1, PageSize: 1, Count: 3, DeliveryReports: page.DeliveryReports}, page)
	require.Equal(t, []string{"a/12025550113/Failed"}, who(page))
	require.Empty(t, get("?page=5").DeliveryReports)

	q := url.Values{"start_date": {"2025-01-10T12:00:02Z"}}
	require.Equal(t, []string{"b/12025550101/Delivered"}, who(get("?"+q.Encode())))
	q = url.Values{"end_date": {"2025-01-10T12:00:02Z"}}
	require.Equal(t, []string{"a/12025550100/Delivered", "a/12025550113/Failed"}, who(get("?"+q.Encode())))

	// Out of the default 24-hour window, unless start_date says otherwise.
	clk.Add(25 * time.Hour)
	require.Zero(t, get("").Count)
	q = url.Values{"start_date": {"2025-01-10T00:00:00Z"}}
	require.Equal(t, 3, get("?"+q.Encode()).Count)

	for _, bad := range []string{"?page_size=0", "?page_size=101", "?page=-1", "?start_date=soon", "?status=Nope",
		"?code=x"} {
		resp := e.get(t, "/delivery_reports"+bad)
		require.Equal(t, http.StatusBadRequest, resp.status, bad)
	}
}

func TestPollingAuthAndRouting(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	b := e.sendTo(t, "x", "+12025550100")

	paths := []string{
		"/batches/" + b.ID + "/delivery_report",
		"/batches/" + b.ID + "/delivery_report/12025550100",
		"/delivery_reports",
	}
	for _, p := range paths {
		require.Equal(t, http.StatusOK, e.get(t, p).status, p)

		resp := e.do(t, request{method: http.MethodGet, url: e.api + p, noAuth: true})
		require.Equal(t, http.StatusUnauthorized, resp.status, p)

		resp = e.do(t, request{method: http.MethodGet, url: e.srv.URL + "/xms/v1/other" + p})
		require.Equal(t, http.StatusNotFound, resp.status, p)

		resp = e.do(t, request{method: http.MethodPost, url: e.api + p, body: "{}"})
		require.Equal(t, http.StatusMethodNotAllowed, resp.status, p)
		require.Equal(t, "GET", resp.header.Get("Allow"))
	}

	e.require404(t,
		"/delivery_reports/x",
		"/batches/"+b.ID+"/delivery_report/12025550100/x",
		"/batches/"+b.ID+"/delivery_reports",
		"/batches/"+b.ID+"/delivery_report/",
	)
}

func TestPollingAgreesWithCallbacks(t *testing.T) {
	t.Parallel()

	// The test clock never moves, but once the callbacks went out (on a
	// real timer) polling shows the final status too.
	clk := newClock(reportsBase)
	e := setup(t, sinchsim.Config{Now: clk.Now, Reports: fast()})
	rc := newReceiver(t)

	resp := e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100"))
	require.Equal(t, http.StatusCreated, resp.status)
	id := resp.batch(t).ID

	got := rc.wait(t, 1)
	rep := decode[sinchsim.RecipientReport](t, e.get(t, "/batches/"+id+"/delivery_report/12025550100").body)
	require.Equal(t, got[0].recipientReport(t), rep)
	require.Equal(t, 1, decode[struct{ Count int }](t, e.get(t, "/delivery_reports").body).Count)
}

func TestSetReportsAppliesToNewBatches(t *testing.T) {
	t.Parallel()

	clk := newClock(reportsBase)
	e := setup(t, sinchsim.Config{Now: clk.Now, Reports: sinchsim.ReportSettings{Delay: time.Second}})

	before := e.sendTo(t, "before", "+12025550113")
	e.sim.SetReports(sinchsim.ReportSettings{Delay: 2 * time.Second, Outcomes: failing13})
	after := e.sendTo(t, "after", "+12025550113")

	status := func(b sinchsim.Batch) string {
		t.Helper()
		body := e.get(t, "/batches/"+b.ID+"/delivery_report/12025550113").body
		return decode[sinchsim.RecipientReport](t, body).Status
	}
	clk.Add(time.Second)
	require.Equal(t, "Delivered", status(before), "created under the old settings")
	require.Equal(t, "Dispatched", status(after))
	clk.Add(time.Second)
	require.Equal(t, "Failed", status(after))

	rs := e.sim.Reports()
	require.Equal(t, 2*time.Second, rs.Delay)
	require.Equal(t, sinchsim.Outcome{Status: "Delivered"}, rs.Default, "defaults filled in")
	require.Equal(t, sinchsim.DefaultCallbackAttempts, rs.MaxAttempts)
	rs.Outcomes["*00"] = sinchsim.Outcome{Status: "Failed"}
	require.Len(t, e.sim.Reports().Outcomes, 1, "Reports returns a copy")
}

func TestControlReports(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	defaults := `{
		"delay": "200ms", "default": {"status": "Delivered", "code": 0}, "outcomes": {},
		"duplicate": false, "out_of_order": false, "before_created": false,
		"retry_delay": "100ms", "max_attempts": 5, "timeout": "5s", "signed": false
	}`
	resp := e.control(t, http.MethodGet, "reports", nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, defaults, string(resp.body))

	resp = e.control(t, http.MethodPut, "reports", `{
		"delay": "5ms", "outcomes": {"*13": {"status": "Failed", "code": 417}},
		"duplicate": true, "webhook_secret": "s3cret", "max_attempts": 2
	}`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	changed := `{
		"delay": "5ms", "default": {"status": "Delivered", "code": 0},
		"outcomes": {"*13": {"status": "Failed", "code": 417}},
		"duplicate": true, "out_of_order": false, "before_created": false,
		"retry_delay": "100ms", "max_attempts": 2, "timeout": "5s", "signed": true
	}`
	require.JSONEq(t, changed, string(resp.body))
	require.NotContains(t, string(resp.body), "s3cret", "the secret is never shown")
	require.Equal(t, "s3cret", e.sim.Reports().WebhookSecret)

	for _, bad := range []string{
		`{"delay":"soon"}`,
		`{"delay":"-1s"}`,
		`{"timeout":"-1s"}`,
		`{"max_attempts":-1}`,
		`{"default":{"status":"Dispatched","code":401}}`,
		`{"default":{"status":"delivered","code":0}}`,
		`{"outcomes":{"abc":{"status":"Failed","code":1}}}`,
		`{"outcomes":{"*":{"status":"Failed","code":1}}}`,
		`{"outcomes":{"*13":{"status":"Nope","code":1}}}`,
		`{"outcomes":{"*13":{"status":"Failed","code":-1}}}`,
		`{"signed":false}`,                 // disagrees with the secret, and cannot change it
		`{"delay":"1s","max_attempts":-1}`, // nothing changes
		`[]`,
	} {
		resp := e.control(t, http.MethodPut, "reports", bad)
		require.Equal(t, http.StatusBadRequest, resp.status, bad)
		require.Contains(t, string(resp.body), "error")
	}
	require.JSONEq(t, changed, string(e.control(t, http.MethodGet, "reports", nil).body))

	// Zero values bring the defaults back; {} clears the outcomes.
	resp = e.control(t, http.MethodPut, "reports",
		`{"delay":"0s","max_attempts":0,"outcomes":{},"duplicate":false,"webhook_secret":""}`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	require.JSONEq(t, defaults, string(resp.body))

	// The settings take effect: a failing number, polled once final.
	resp = e.control(t, http.MethodPut, "reports",
		`{"delay":"1ms","outcomes":{"12025550123":{"status":"Expired","code":406}}}`)
	require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)
	id := e.post(t, validRequest()).batch(t).ID
	require.Eventually(t, func() bool {
		rep := decode[sinchsim.RecipientReport](t, e.get(t, "/batches/"+id+"/delivery_report/12025550123").body)
		return rep.Status == "Expired" && rep.Code == 406
	}, 5*time.Second, 5*time.Millisecond)

	// Settings survive a reset.
	require.Equal(t, http.StatusNoContent, e.control(t, http.MethodPost, "reset", nil).status)
	require.Equal(t, time.Millisecond, e.sim.Reports().Delay)

	for _, m := range []string{http.MethodPost, http.MethodDelete} {
		resp := e.control(t, m, "reports", nil)
		require.Equal(t, http.StatusMethodNotAllowed, resp.status)
		require.Equal(t, "GET, PUT", resp.header.Get("Allow"))
	}
}

func TestControlCallbacks(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{Reports: fast()})
	rc := newReceiver(t, http.StatusServiceUnavailable)

	resp := e.post(t, drRequest("per_recipient_final", rc.url(), "+12025550100"))
	require.Equal(t, http.StatusCreated, resp.status)
	id := resp.batch(t).ID
	waitCallbacks(t, e.sim, 1)

	resp = e.control(t, http.MethodGet, "callbacks", nil)
	require.Equal(t, http.StatusOK, resp.status)
	var cbs []map[string]any
	require.NoError(t, json.Unmarshal(resp.body, &cbs))
	require.Len(t, cbs, 1)
	c := cbs[0]
	require.Equal(t, id, c["batch_id"])
	require.Equal(t, "recipient_delivery_report_mms", c["type"])
	require.Equal(t, "12025550100", c["recipient"])
	require.Equal(t, "Delivered", c["status"])
	require.Equal(t, "delivered", c["result"])
	require.Equal(t, rc.url(), c["url"])
	require.Equal(t, id, c["body"].(map[string]any)["batch_id"], "the body as sent")
	attempts := c["attempts"].([]any)
	require.Len(t, attempts, 2)
	require.Equal(t, 503.0, attempts[0].(map[string]any)["status"])
	require.Equal(t, 200.0, attempts[1].(map[string]any)["status"])

	require.JSONEq(t, `[]`, string(e.control(t, http.MethodGet, "callbacks?batch_id=other", nil).body))
	require.Len(t, decode[[]sinchsim.Callback](t, e.control(t, http.MethodGet, "callbacks?batch_id="+id, nil).body), 1)

	require.Equal(t, http.StatusMethodNotAllowed, e.control(t, http.MethodPost, "callbacks", nil).status)

	require.Equal(t, http.StatusNoContent, e.control(t, http.MethodPost, "reset", nil).status)
	require.JSONEq(t, `[]`, string(e.control(t, http.MethodGet, "callbacks", nil).body))
	require.Empty(t, e.sim.Callbacks())
}

func TestParseOutcomes(t *testing.T) {
	t.Parallel()

	o, err := sinchsim.ParseOutcome(" failed / 417 ")
	require.NoError(t, err)
	require.Equal(t, sinchsim.Outcome{Status: "Failed", Code: 417}, o)

	for _, bad := range []string{"", "Failed", "Failed/", "Failed/x", "Nope/1", "Dispatched/401", "Failed/-1"} {
		_, err := sinchsim.ParseOutcome(bad)
		require.Error(t, err, bad)
	}

	m, err := sinchsim.ParseOutcomes("*13=Failed/417, +1 202 555 0199=expired/406,")
	require.NoError(t, err)
	require.Equal(t, map[string]sinchsim.Outcome{
		"*13":             {Status: "Failed", Code: 417},
		"+1 202 555 0199": {Status: "Expired", Code: 406},
	}, m)

	m, err = sinchsim.ParseOutcomes(" ")
	require.NoError(t, err)
	require.Empty(t, m)

	for _, bad := range []string{"*13", "abc=Failed/1", "*=Failed/1", "*1x=Failed/1", "*13=Queued/400",
		"123=Failed/1"} {
		_, err := sinchsim.ParseOutcomes(bad)
		require.Error(t, err, bad)
	}
}

func TestBadReportSettingsPanic(t *testing.T) {
	t.Parallel()

	bad := map[string]sinchsim.ReportSettings{
		"negative delay":       {Delay: -1},
		"negative retry delay": {RetryDelay: -1},
		"negative attempts":    {MaxAttempts: -1},
		"negative timeout":     {Timeout: -1},
		"intermediate default": {Default: sinchsim.Outcome{Status: "Queued", Code: 400}},
		"bad outcome key":      {Outcomes: map[string]sinchsim.Outcome{"nope": {Status: "Failed"}}},
		"bad outcome status":   {Outcomes: map[string]sinchsim.Outcome{"*1": {Status: "Lost"}}},
	}
	sim := sinchsim.New(sinchsim.Config{})
	t.Cleanup(sim.Close)
	for name, rs := range bad {
		require.Panics(t, func() { sinchsim.New(sinchsim.Config{Reports: rs}) }, name)
		require.Panics(t, func() { sim.SetReports(rs) }, name)
	}
	require.Equal(t, sinchsim.DefaultReportDelay, sim.Reports().Delay, "nothing changed")
}
