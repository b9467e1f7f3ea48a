package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

// waitCampaign polls a campaign until its status is want, and returns it.
func (s *stack) waitCampaign(t *testing.T, id, want string) map[string]any {
	t.Helper()
	var last map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r := s.do(t, http.MethodGet, "/api/mms/campaigns/"+id, "", "")
		require.Equal(t, http.StatusOK, r.status, "%v", r.body)
		last = r.body
		if last["status"] == want {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("campaign %s did not reach %s; last: %v", id, want, last)
	return nil
}

// sentTo maps each number the simulator received to how many batches held
// it, and to the values of parameter name for it.
func sentTo(batches []sinchsim.Batch, param string) (map[string]int, map[string]string) {
	count, values := map[string]int{}, map[string]string{}
	for _, b := range batches {
		for _, n := range b.To {
			count[n]++
			if v, ok := b.Parameters[param][n]; ok {
				values[n] = v
			} else if v, ok := b.Parameters[param]["default"]; ok {
				values[n] = v
			}
		}
	}
	return count, values
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func TestCampaignJSON(t *testing.T) {
	s := setup(t, options{batchSize: 2})
	body := `{
	  "name": "Winter sale",
	  "media_url": "https://cdn.example.com/sale.jpg",
	  "message": "Hi ${name}, the sale is on",
	  "parameters": {"name": "there"},
	  "recipients": [
	    {"to": "+12025550101", "parameters": {"name": "Ann"}},
	    "202-555-0102",
	    "12",
	    "(202) 555-0101",
	    {"to": "+1 415 555 2671", "parameters": {"name": "Bo"}},
	    "not a number",
	    "+12025550103",
	    "+12025550104"
	  ]
	}`
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", body)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	id, _ := r.body["campaign_id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "/api/mms/campaigns/"+id, r.header.Get("Location"))

	counts := r.body["recipients"].(map[string]any)
	require.Equal(t, 8, num(counts["listed"]))
	require.Equal(t, 5, num(counts["accepted"]))
	require.Equal(t, 2, num(counts["invalid"]))
	require.Equal(t, 1, num(counts["duplicates"]), "(202) 555-0101 repeats +12025550101")
	require.Equal(t, 3, num(r.body["jobs"]), "five recipients in batches of two")
	invalid := r.body["invalid"].([]any)
	require.Len(t, invalid, 2)
	first := invalid[0].(map[string]any)
	require.Equal(t, 2, num(first["index"]))
	require.Equal(t, "12", first["value"])
	require.NotEmpty(t, first["message"])
	require.Equal(t, 5, num(invalid[1].(map[string]any)["index"]))

	v := s.waitCampaign(t, id, "completed")
	require.Equal(t, 1.0, v["progress"])
	jobs := v["jobs"].(map[string]any)
	require.Equal(t, 3, num(jobs["total"]))
	require.Equal(t, 3, num(jobs["by_status"].(map[string]any)["sent"]))
	require.Equal(t, 5, num(v["recipients_by_status"].(map[string]any)["sent"]))

	batches := s.sim.Batches()
	require.Len(t, batches, 3)
	count, names := sentTo(batches, "name")
	require.Equal(t, map[string]int{"+12025550101": 1, "+12025550102": 1, "+14155552671": 1,
		"+12025550103": 1, "+12025550104": 1}, count, "every valid number once, none of the others")
	require.Equal(t, "Ann", names["+12025550101"])
	require.Equal(t, "Bo", names["+14155552671"])
	require.Equal(t, "there", names["+12025550103"], "the campaign's default fills in")
	for _, b := range batches {
		require.LessOrEqual(t, len(b.To), 2)
		require.Equal(t, "Hi ${name}, the sale is on", b.Body.Message)
	}

	// The job list pages through the three jobs, and filters by status.
	page := s.do(t, http.MethodGet, "/api/mms/campaigns/"+id+"/jobs?limit=2", "", "")
	require.Equal(t, http.StatusOK, page.status, "%v", page.body)
	require.Len(t, page.body["jobs"], 2)
	require.Equal(t, "2", page.body["next_cursor"])
	page = s.do(t, http.MethodGet, "/api/mms/campaigns/"+id+"/jobs?limit=2&cursor=2", "", "")
	require.Len(t, page.body["jobs"], 1)
	require.Nil(t, page.body["next_cursor"])
	job := page.body["jobs"].([]any)[0].(map[string]any)
	require.Equal(t, "sent", job["status"])
	require.Equal(t, 1, num(job["recipients"]))
	page = s.do(t, http.MethodGet, "/api/mms/campaigns/"+id+"/jobs?status=failed", "", "")
	require.Empty(t, page.body["jobs"])
	page = s.do(t, http.MethodGet, "/api/mms/campaigns/"+id+"/jobs?status=bogus&limit=0", "", "")
	require.Equal(t, http.StatusBadRequest, page.status)
	require.Len(t, page.body["error"].(map[string]any)["fields"], 2)

	// A completed campaign has nothing to cancel.
	c := s.do(t, http.MethodDelete, "/api/mms/campaigns/"+id, "", "")
	require.Equal(t, http.StatusConflict, c.status, "%v", c.body)
	require.Equal(t, "not_cancelable", c.body["error"].(map[string]any)["code"])

	// Each job is an ordinary job too.
	jr := s.do(t, http.MethodGet, job["status_url"].(string), "", "")
	require.Equal(t, http.StatusOK, jr.status)
	require.Equal(t, "sent", jr.body["status"])
}

func TestCampaignCSV(t *testing.T) {
	s := setup(t, options{batchSize: 1000})
	q := url.Values{"media_url": {"https://cdn.example.com/a.jpg"}, "message": {"Hello ${first}"},
		"name": {"csv"}, "priority": {"normal"}}
	csv := "\uFEFFphone,first\n+12025550111,Ann\n\n202 555 0112,Bo\nbad,Cy\n+12025550111,Ann again\n"
	r := s.do(t, http.MethodPost, "/api/mms/campaigns?"+q.Encode(), "text/csv", csv)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	counts := r.body["recipients"].(map[string]any)
	require.Equal(t, 4, num(counts["listed"]))
	require.Equal(t, 2, num(counts["accepted"]))
	require.Equal(t, 1, num(counts["duplicates"]))
	bad := r.body["invalid"].([]any)[0].(map[string]any)
	require.Equal(t, 5, num(bad["line"]), "the CSV line of the bad number")
	require.Nil(t, bad["index"])
	s.waitCampaign(t, r.body["campaign_id"].(string), "completed")
	_, first := sentTo(s.sim.Batches(), "first")
	require.Equal(t, map[string]string{"+12025550111": "Ann", "+12025550112": "Bo"}, first)

	// The same as an upload, the fields in the form.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("media_url", "https://cdn.example.com/b.jpg"))
	require.NoError(t, mw.WriteField("message", "Plain"))
	fw, err := mw.CreateFormFile("recipients", "list.csv")
	require.NoError(t, err)
	_, _ = fw.Write([]byte("+12025550121\n+12025550122\n"))
	require.NoError(t, mw.Close())
	r = s.do(t, http.MethodPost, "/api/mms/campaigns", mw.FormDataContentType(), buf.String())
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	require.Equal(t, 2, num(r.body["recipients"].(map[string]any)["accepted"]))
	s.waitCampaign(t, r.body["campaign_id"].(string), "completed")

	// Problems with the CSV or the fields name what is wrong.
	for _, tc := range []struct{ query, body, field string }{
		{"media_url=https://cdn.example.com/a.jpg", "+12025550111,extra\n", "recipients"},
		{"media_url=https://cdn.example.com/a.jpg", "phone,bad name!\n+12025550111,x\n", "recipients"},
		{"media_url=https://cdn.example.com/a.jpg&colour=red", "+12025550111\n", "colour"},
		{"media_url=https://cdn.example.com/a.jpg&rate_limit=fast", "+12025550111\n", "rate_limit"},
		{"media_url=ftp://x", "+12025550111\n", "media_url"},
		{"media_url=https://cdn.example.com/a.jpg", "", "recipients"},
	} {
		r := s.do(t, http.MethodPost, "/api/mms/campaigns?"+tc.query, "text/csv", tc.body)
		require.Contains(t, []int{400, 422}, r.status, "%s %q: %v", tc.query, tc.body, r.body)
		fields := r.body["error"].(map[string]any)["fields"].([]any)
		require.Equal(t, tc.field, fields[0].(map[string]any)["field"], "%v", r.body)
	}
	require.Len(t, s.sim.Batches(), 2, "nothing more was sent")
}

func TestCampaignNoValidRecipient(t *testing.T) {
	s := setup(t, options{})
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"media_url":"https://cdn.example.com/a.jpg","recipients":["12","abc"]}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%v", r.body)
	e := r.body["error"].(map[string]any)
	require.Equal(t, "no_valid_recipients", e["code"])
	fields := e["fields"].([]any)
	require.Len(t, fields, 2)
	require.Equal(t, "recipients[1]", fields[1].(map[string]any)["field"])

	// A campaign whose message needs a value no recipient has, and no
	// default, is refused recipient by recipient.
	r = s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"media_url":"https://cdn.example.com/a.jpg","message":"Hi ${name}","recipients":["+12025550101"]}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Contains(t, fmt.Sprint(r.body), "${name}")

	keys, err := s.rdb.Keys(t.Context(), "mmsgate:campaign:*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "nothing stored")
	require.Empty(t, s.sim.Batches())
}

func TestCampaignScheduleThenCancel(t *testing.T) {
	s := setup(t, options{batchSize: 2})
	sendAt := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second)
	body := fmt.Sprintf(`{"media_url":"https://cdn.example.com/a.jpg","send_at":%q,`+
		`"recipients":["+12025550131","+12025550132","+12025550133"]}`, sendAt.Format(time.RFC3339))
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", body)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	require.Equal(t, "scheduled", r.body["status"])
	id := r.body["campaign_id"].(string)

	require.Eventually(t, func() bool {
		v := s.waitCampaign(t, id, "scheduled")
		return num(v["jobs"].(map[string]any)["created"]) == 2
	}, 10*time.Second, 20*time.Millisecond, "the jobs exist, waiting for their time")

	c := s.do(t, http.MethodDelete, "/api/mms/campaigns/"+id, "", "")
	require.Equal(t, http.StatusOK, c.status, "%v", c.body)
	require.Equal(t, 2, num(c.body["canceled_jobs"]))
	require.Equal(t, 3, num(c.body["canceled_recipients"]))

	time.Sleep(time.Until(sendAt) + time.Second)
	require.Empty(t, s.sim.Batches(), "nothing sent after the cancel")
	v := s.waitCampaign(t, id, "canceled")
	require.Equal(t, 2, num(v["jobs"].(map[string]any)["by_status"].(map[string]any)["canceled"]))
	require.Equal(t, 2, num(v["errors"].(map[string]any)["campaign_canceled"].(map[string]any)["jobs"]))

	// Canceling again changes nothing.
	c = s.do(t, http.MethodDelete, "/api/mms/campaigns/"+id, "", "")
	require.Equal(t, http.StatusOK, c.status)
	require.Equal(t, 0, num(c.body["canceled_jobs"]))
	require.Equal(t, 2, num(c.body["already_canceled_jobs"]))
	require.Equal(t, http.StatusNotFound,
		s.do(t, http.MethodDelete, "/api/mms/campaigns/01arz3ndektsv4rrffq69g5fav", "", "").status)
}

func TestCampaignScheduled(t *testing.T) {
	s := setup(t, options{})
	sendAt := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
	body := fmt.Sprintf(`{"media_url":"https://cdn.example.com/a.jpg","send_at":%q,"recipients":["+12025550141"]}`,
		sendAt.Format(time.RFC3339))
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", body)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	s.waitCampaign(t, r.body["campaign_id"].(string), "completed")
	b := s.sim.Batches()
	require.Len(t, b, 1)
	require.False(t, b[0].CreatedAt.Before(sendAt), "sent at %v, scheduled for %v", b[0].CreatedAt, sendAt)

	// send_at without an offset is refused.
	r = s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"media_url":"https://cdn.example.com/a.jpg","send_at":"2030-01-01T10:00:00","recipients":["+12025550141"]}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, "send_at", r.body["error"].(map[string]any)["fields"].([]any)[0].(map[string]any)["field"])
}

func TestCampaignIdempotencyKey(t *testing.T) {
	s := setup(t, options{noWorker: true})
	body := `{"media_url":"https://cdn.example.com/a.jpg","recipients":["+12025550151","+12025550152"]}`
	first := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", body, "Idempotency-Key", "camp-1")
	require.Equal(t, http.StatusAccepted, first.status)
	again := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", body, "Idempotency-Key", "camp-1")
	require.Equal(t, http.StatusAccepted, again.status)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.body["campaign_id"], again.body["campaign_id"])

	other := strings.Replace(body, "0152", "0153", 1)
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", other, "Idempotency-Key", "camp-1")
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, "idempotency_key_reused", r.body["error"].(map[string]any)["code"])

	// The same key on a single send is a different key.
	sr := s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody, "Idempotency-Key", "camp-1")
	require.Equal(t, http.StatusAccepted, sr.status, "%v", sr.body)

	keys, err := s.rdb.Keys(t.Context(), "mmsgate:campaign:{*}").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1, "one campaign stored")
}

func TestCampaignLeavesOutSuppressed(t *testing.T) {
	s := setup(t, options{})
	r := s.do(t, http.MethodPut, "/api/mms/suppressions/%2B12025550162", "", "")
	require.Contains(t, []int{200, 201}, r.status, "%v", r.body)

	r = s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"media_url":"https://cdn.example.com/a.jpg","recipients":["+12025550161","202-555-0162"]}`)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	require.Equal(t, 1, num(r.body["recipients"].(map[string]any)["suppressed"]))
	require.Equal(t, []any{"+12025550162"}, r.body["suppressed"])
	s.waitCampaign(t, r.body["campaign_id"].(string), "completed")
	count, _ := sentTo(s.sim.Batches(), "")
	require.Equal(t, map[string]int{"+12025550161": 1}, count)

	// Every valid recipient suppressed: nothing to send.
	r = s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json",
		`{"media_url":"https://cdn.example.com/a.jpg","recipients":["+12025550162","x"]}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%v", r.body)
	require.Contains(t, fmt.Sprint(r.body), "suppression list")
}

// TestCampaignManyRecipients accepts the largest campaign allowed and checks
// that it is split into batches of the configured size, one job each.
func TestCampaignManyRecipients(t *testing.T) {
	s := setup(t, options{noWorker: true})
	numbers := make([]string, 100_000)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+1%03d555%04d", 201+i/10000, i%10000)
	}
	raw, err := json.Marshal(map[string]any{"media_url": "https://cdn.example.com/a.jpg", "recipients": numbers})
	require.NoError(t, err)
	r := s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", string(raw))
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	counts := r.body["recipients"].(map[string]any)
	require.Equal(t, 100_000, num(counts["listed"]))
	require.Equal(t, 100_000-num(counts["invalid"]), num(counts["accepted"]))
	require.Equal(t, (num(counts["accepted"])+999)/1000, num(r.body["jobs"]))

	one := append(slices.Clone(numbers), "+12025550100")
	raw, err = json.Marshal(map[string]any{"media_url": "https://cdn.example.com/a.jpg", "recipients": one})
	require.NoError(t, err)
	r = s.do(t, http.MethodPost, "/api/mms/campaigns", "application/json", string(raw))
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, "recipients", r.body["error"].(map[string]any)["fields"].([]any)[0].(map[string]any)["field"])
}

// TestCampaignIDAnyCase: a campaign ID is read in any case, as a job ID is.
func TestCampaignIDAnyCase(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	id := s.postCampaign(t, "", "+12025550101")
	r := s.do(t, http.MethodGet, "/api/mms/campaigns/"+strings.ToUpper(id), "", "")
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.Equal(t, id, r.body["campaign_id"])
	r = s.do(t, http.MethodGet, "/api/mms/campaigns/"+strings.ToUpper(id)+"/jobs", "", "")
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
}
