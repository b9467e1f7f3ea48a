package sinchsim_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

var (
	ulidPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
	timePattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

func TestCreateRejects(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	const (
		invalidJSON = "syntax_invalid_json"
		badFormat   = "syntax_invalid_parameter_format"
		constraint  = "syntax_constraint_violation"
	)

	recipients := func(n int) []any {
		to := make([]any, n)
		for i := range to {
			to[i] = fmt.Sprintf("+1202555%04d", i)
		}
		return to
	}
	set := func(key string, v any) func(map[string]any) {
		return func(m map[string]any) { m[key] = v }
	}
	del := func(key string) func(map[string]any) {
		return func(m map[string]any) { delete(m, key) }
	}
	setBody := func(key string, v any) func(map[string]any) {
		return func(m map[string]any) { m["body"].(map[string]any)[key] = v }
	}
	long := strings.Repeat

	tests := []struct {
		name string
		raw  string                 // sent as is when set
		edit func(m map[string]any) // applied to validRequest otherwise
		code string
		text string // part of the text, if set
	}{
		{name: "broken json", raw: `{"to": [`, code: invalidJSON},
		{name: "array", raw: `[]`, code: invalidJSON},
		{name: "null", raw: `null`, code: invalidJSON},
		{name: "trailing garbage", raw: `{} x`, code: invalidJSON},
		{name: "to is a string", edit: set("to", "+12025550123"), code: invalidJSON, text: "to"},
		{name: "no type, object body", edit: del("type"), code: invalidJSON},
		{name: "mt_text, object body", edit: set("type", "mt_text"), code: invalidJSON},
		{name: "media body is a string", edit: set("body", "hello"), code: invalidJSON},
		{name: "url is a number", edit: setBody("url", 5), code: invalidJSON},
		{
			name: "no type, text body",
			edit: func(m map[string]any) { delete(m, "type"); m["body"] = "hi" },
			code: constraint,
		},
		{name: "mt_binary", edit: set("type", "mt_binary"), code: constraint},
		{name: "unknown type", edit: set("type", "mms"), code: constraint, text: "mms"},
		{name: "no body", edit: del("body"), code: constraint, text: "body"},
		{name: "no to", edit: del("to"), code: constraint, text: "to"},
		{name: "empty to", edit: set("to", []any{}), code: constraint},
		{name: "1001 recipients", edit: set("to", recipients(1001)), code: constraint, text: "1000"},
		{name: "short number", edit: set("to", []any{"+12025550123", "123456"}), code: badFormat, text: "to[1]"},
		{name: "16 digits", edit: set("to", []any{"1234567890123456"}), code: badFormat, text: "to[0]"},
		{name: "letters", edit: set("to", []any{"+1202555CALL"}), code: badFormat},
		{name: "empty number", edit: set("to", []any{""}), code: badFormat},
		{name: "group id", edit: set("to", []any{"01FC66621ABCDE119Z8PMV1QPQ"}), code: badFormat},
		{name: "double prefix", edit: set("to", []any{"+00+12025550123"}), code: badFormat},
		{name: "no from", edit: del("from"), code: constraint, text: "from"},
		{name: "text only", edit: set("body", map[string]any{"message": "hi"}), code: constraint, text: "url"},
		{name: "relative url", edit: setBody("url", "/mms/a.jpg"), code: constraint, text: "url"},
		{name: "ftp url", edit: setBody("url", "ftp://cdn.example.com/a.jpg"), code: constraint},
		{name: "url too long", edit: setBody("url", "https://cdn.example.com/"+long("a", 2025)), code: constraint},
		{name: "message too long", edit: setBody("message", long("é", 2001)), code: constraint, text: "message"},
		{name: "subject too long", edit: setBody("subject", long("s", 81)), code: constraint, text: "subject"},
		{name: "long client_reference", edit: set("client_reference", long("r", 129)), code: constraint, text: "128"},
		{name: "unknown delivery_report", edit: set("delivery_report", "always"), code: constraint},
		{name: "empty delivery_report", edit: set("delivery_report", ""), code: constraint},
		{name: "relative callback_url", edit: set("callback_url", "/dr"), code: constraint},
		{name: "long callback_url", edit: set("callback_url", "https://h.example/"+long("c", 2031)), code: constraint},
		{name: "bad send_at", edit: set("send_at", "tomorrow"), code: badFormat, text: "send_at"},
		{name: "bad expire_at", edit: set("expire_at", "2030-13-01T00:00:00Z"), code: badFormat, text: "expire_at"},
		{
			name: "expiry over 3 days",
			edit: func(m map[string]any) {
				m["send_at"] = "2030-01-01T00:00:00Z"
				m["expire_at"] = "2030-01-04T00:00:00.001Z"
			},
			code: constraint, text: "3 days",
		},
		{
			name: "expire_at before send_at",
			edit: func(m map[string]any) {
				m["send_at"] = "2030-01-02T00:00:00Z"
				m["expire_at"] = "2030-01-01T00:00:00Z"
			},
			code: constraint,
		},
		{
			name: "expire_at equal to send_at",
			edit: func(m map[string]any) {
				m["send_at"] = "2030-01-01T00:00:00Z"
				m["expire_at"] = "2030-01-01T00:00:00Z"
			},
			code: constraint,
		},
		{name: "expire_at before default send_at", edit: set("expire_at", "2001-01-01T00:00:00Z"), code: constraint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var body any = tt.raw
			if tt.raw == "" {
				req := validRequest()
				tt.edit(req)
				body = req
			}

			resp := e.post(t, body)
			require.Equal(t, http.StatusBadRequest, resp.status, "body: %s", resp.body)
			require.Equal(t, "application/json", resp.header.Get("Content-Type"))

			code, text := resp.errorBody(t)
			require.Equal(t, tt.code, code, "text: %s", text)
			require.NotEmpty(t, text)
			require.Contains(t, text, tt.text)
			require.NotContains(t, text, "202555", "error text must not echo phone numbers")
		})
	}

	require.Empty(t, e.sim.Batches())
}

func TestCreateAccepts(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	tests := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"plain", func(map[string]any) {}},
		{"spaces, dashes, brackets", func(m map[string]any) { m["to"] = []any{"+1 (202) 555-0123"} }},
		{"00 prefix", func(m map[string]any) { m["to"] = []any{"0012025550123"} }},
		{"no prefix", func(m map[string]any) { m["to"] = []any{"12025550123"} }},
		{"7 digits", func(m map[string]any) { m["to"] = []any{"+1234567"} }},
		{"15 digits", func(m map[string]any) { m["to"] = []any{"123456789012345"} }},
		{"1000 recipients", func(m map[string]any) {
			to := make([]any, 1000)
			for i := range to {
				to[i] = fmt.Sprintf("1202555%04d", i)
			}
			m["to"] = to
		}},
		{"unknown fields", func(m map[string]any) {
			m["flash_message"] = true
			m["future_field"] = map[string]any{"x": 1}
			m["body"].(map[string]any)["extra"] = "y"
		}},
		{"limits exactly", func(m map[string]any) {
			m["body"] = map[string]any{
				"url":     "https://cdn.example.com/" + strings.Repeat("a", 2048-len("https://cdn.example.com/")),
				"message": strings.Repeat("é", 2000),
				"subject": strings.Repeat("s", 80),
			}
			m["client_reference"] = strings.Repeat("r", 128)
		}},
		{"expiry exactly 3 days", func(m map[string]any) {
			m["send_at"] = "2030-01-01T00:00:00Z"
			m["expire_at"] = "2030-01-04T00:00:00Z"
		}},
		{"send_at in the past", func(m map[string]any) { m["send_at"] = "2001-01-01T00:00:00Z" }},
		{"http url", func(m map[string]any) { m["body"].(map[string]any)["url"] = "http://cdn.example.com/a.gif" }},
		{"per_recipient_final", func(m map[string]any) { m["delivery_report"] = "per_recipient_final" }},
		{"empty client_reference", func(m map[string]any) { m["client_reference"] = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			req := validRequest()
			tt.change(req)

			resp := e.post(t, req)
			require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
		})
	}
}

func TestCreateResponseShape(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 1, 10, 12, 0, 0, 123456789, time.UTC)
	e := setup(t, sinchsim.Config{Now: newClock(now).Now})

	req := map[string]any{
		"type": "mt_media",
		"from": "+12025550100",
		"to":   []any{"+12025550123", "+12025550124"},
		"body": map[string]any{
			"url":     "https://cdn.example.com/mms/abc123.jpg",
			"message": "Hi ${name}",
			"subject": "Order update",
		},
		"parameters":        map[string]any{"name": map[string]any{"+12025550123": "Ann", "default": "there"}},
		"delivery_report":   "per_recipient_final",
		"send_at":           "2025-01-10T13:00:00+01:00",
		"expire_at":         "2025-01-11T12:00:00.5Z",
		"callback_url":      "https://hooks.example.com/dr",
		"client_reference":  "job-7f3c2a",
		"feedback_enabled":  true,
		"strict_validation": true,
	}
	resp := e.post(t, req)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)
	require.Equal(t, "application/json", resp.header.Get("Content-Type"))

	var got map[string]any
	require.NoError(t, json.Unmarshal(resp.body, &got))

	wantKeys := []string{
		"id", "to", "from", "canceled", "body", "parameters", "type",
		"created_at", "modified_at", "delivery_report", "send_at", "expire_at",
		"callback_url", "client_reference", "feedback_enabled", "strict_validation",
	}
	require.ElementsMatch(t, wantKeys, slices.Collect(maps.Keys(got)))

	require.Regexp(t, ulidPattern, got["id"])
	for _, k := range []string{"created_at", "modified_at", "send_at", "expire_at"} {
		require.Regexp(t, timePattern, got[k], k)
	}
	require.Equal(t, "2025-01-10T12:00:00.123Z", got["created_at"])
	require.Equal(t, "2025-01-10T12:00:00.123Z", got["modified_at"])
	require.Equal(t, "2025-01-10T12:00:00.000Z", got["send_at"], "offset converted to UTC")
	require.Equal(t, "2025-01-11T12:00:00.500Z", got["expire_at"])

	require.Equal(t, []any{"+12025550123", "+12025550124"}, got["to"])
	require.Equal(t, "+12025550100", got["from"])
	require.Equal(t, false, got["canceled"])
	require.Equal(t, req["body"], got["body"])
	require.Equal(t, req["parameters"], got["parameters"])
	require.Equal(t, "mt_media", got["type"])
	require.Equal(t, "per_recipient_final", got["delivery_report"])
	require.Equal(t, "https://hooks.example.com/dr", got["callback_url"])
	require.Equal(t, "job-7f3c2a", got["client_reference"])
	require.Equal(t, true, got["feedback_enabled"])
	require.Equal(t, true, got["strict_validation"])

	// The stored copy matches the answer.
	stored := e.sim.Batches()
	require.Len(t, stored, 1)
	require.Equal(t, got["id"], stored[0].ID)
	require.Equal(t, now.Truncate(time.Millisecond), stored[0].CreatedAt)
	require.Equal(t, resp.batch(t), stored[0])
}

func TestCreateDefaults(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 3, 1, 8, 30, 0, 0, time.UTC)
	e := setup(t, sinchsim.Config{Now: newClock(now).Now, DefaultOriginator: "+12025550199"})

	req := validRequest()
	delete(req, "from")
	resp := e.post(t, req)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)

	var got map[string]any
	require.NoError(t, json.Unmarshal(resp.body, &got))
	require.Equal(t, "+12025550199", got["from"])
	require.Equal(t, "none", got["delivery_report"])
	require.Equal(t, "2025-03-01T08:30:00.000Z", got["send_at"])
	require.Equal(t, "2025-03-04T08:30:00.000Z", got["expire_at"])
	require.Equal(t, false, got["feedback_enabled"])
	require.Equal(t, false, got["strict_validation"])
	for _, k := range []string{"parameters", "callback_url", "client_reference"} {
		require.NotContains(t, got, k, "unset fields are left out")
	}
	require.NotContains(t, got["body"], "subject")
}

func TestCreateTimesWithoutOffsetAreUTC(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	req := validRequest()
	req["send_at"] = "2030-06-01T10:00:00"
	resp := e.post(t, req)
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)

	b := resp.batch(t)
	require.Equal(t, time.Date(2030, 6, 1, 10, 0, 0, 0, time.UTC), b.SendAt)
	require.Equal(t, time.Date(2030, 6, 4, 10, 0, 0, 0, time.UTC), b.ExpireAt)
}

func TestMaxClientReferenceConfigurable(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{MaxClientReference: 2048})

	resp := e.post(t, withRef(strings.Repeat("r", 2048)))
	require.Equal(t, http.StatusCreated, resp.status, "body: %s", resp.body)

	resp = e.post(t, withRef(strings.Repeat("r", 2049)))
	require.Equal(t, http.StatusBadRequest, resp.status)
	code, _ := resp.errorBody(t)
	require.Equal(t, "syntax_constraint_violation", code)
}

func TestGetBatch(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	created := e.post(t, withRef("job-1"))
	require.Equal(t, http.StatusCreated, created.status)
	want := created.batch(t)

	resp := e.get(t, "/batches/"+want.ID)
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, string(created.body), string(resp.body))

	resp = e.get(t, "/batches/01HF4WG1TAVS351YYD7Q84K8HA")
	require.Equal(t, http.StatusNotFound, resp.status)
	require.Empty(t, resp.body)
}

func TestListBatches(t *testing.T) {
	t.Parallel()

	clk := newClock(time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC))
	e := setup(t, sinchsim.Config{Now: clk.Now})

	// Seven batches a minute apart: refs a, b, a, b, a, c, a.
	var ids []string
	for _, ref := range []string{"a", "b", "a", "b", "a", "c", "a"} {
		resp := e.post(t, withRef(ref))
		require.Equal(t, http.StatusCreated, resp.status)
		ids = append(ids, resp.batch(t).ID)
		clk.Add(time.Minute)
	}

	// pick returns the ids of the batches with the given creation indexes.
	pick := func(idx ...int) []string {
		out := make([]string, len(idx))
		for i, n := range idx {
			out[i] = ids[n]
		}
		return out
	}

	list := func(t *testing.T, query url.Values) (page, pageSize, count int, ids []string) {
		t.Helper()

		resp := e.get(t, "/batches?"+query.Encode())
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)

		var l struct {
			Page     int              `json:"page"`
			PageSize int              `json:"page_size"`
			Count    int              `json:"count"`
			Batches  []sinchsim.Batch `json:"batches"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &l))
		for _, b := range l.Batches {
			ids = append(ids, b.ID)
		}
		return l.Page, l.PageSize, l.Count, ids
	}

	tests := []struct {
		name      string
		query     url.Values
		wantPage  int
		wantCount int
		wantIDs   []string
	}{
		{"all, newest first", nil, 0, 7, pick(6, 5, 4, 3, 2, 1, 0)},
		{"by client_reference", url.Values{"client_reference": {"a"}}, 0, 4, pick(6, 4, 2, 0)},
		{"unknown reference", url.Values{"client_reference": {"zzz"}}, 0, 0, nil},
		{"first page", url.Values{"client_reference": {"a"}, "page_size": {"3"}}, 0, 4, pick(6, 4, 2)},
		{"second page", url.Values{"client_reference": {"a"}, "page_size": {"3"}, "page": {"1"}}, 1, 4, pick(0)},
		{"past the end", url.Values{"page_size": {"3"}, "page": {"3"}}, 3, 7, nil},
		{"huge page", url.Values{"page": {"9223372036854775807"}}, 9223372036854775807, 7, nil},
		{
			"start and end",
			url.Values{"start_date": {"2025-05-01T00:02:00Z"}, "end_date": {"2025-05-01T00:04:00Z"}},
			0, 2, pick(3, 2),
		},
		{"from filter", url.Values{"from": {"+19999999999,+12025550100"}}, 0, 7, nil},
		{"other sender", url.Values{"from": {"+19999999999"}}, 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			page, pageSize, count, got := list(t, tt.query)
			require.Equal(t, tt.wantPage, page)
			require.Equal(t, tt.wantCount, count)
			require.Len(t, got, pageSize, "page_size is the number of batches returned")
			if tt.wantIDs != nil || count == 0 {
				require.Equal(t, tt.wantIDs, got)
			}
		})
	}
}

func TestListDefaultPageSize(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	for range 35 {
		require.Equal(t, http.StatusCreated, e.post(t, validRequest()).status)
	}

	resp := e.get(t, "/batches")
	require.Equal(t, http.StatusOK, resp.status)

	var l struct {
		PageSize int               `json:"page_size"`
		Count    int               `json:"count"`
		Batches  []json.RawMessage `json:"batches"`
	}
	require.NoError(t, json.Unmarshal(resp.body, &l))
	require.Equal(t, 35, l.Count)
	require.Equal(t, 30, l.PageSize)
	require.Len(t, l.Batches, 30)
}

func TestListTimeWindows(t *testing.T) {
	t.Parallel()

	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	clk := newClock(start)
	e := setup(t, sinchsim.Config{Now: clk.Now})

	old := e.post(t, withRef("old")).batch(t) // will be 15 days old
	clk.Add(13 * 24 * time.Hour)
	mid := e.post(t, withRef("mid")).batch(t) // will be 2 days old
	clk.Add(2 * 24 * time.Hour)
	recent := e.post(t, withRef("recent")).batch(t)

	count := func(query string) int {
		resp := e.get(t, "/batches"+query)
		require.Equal(t, http.StatusOK, resp.status, "body: %s", resp.body)

		var l struct{ Count int }
		require.NoError(t, json.Unmarshal(resp.body, &l))
		return l.Count
	}

	require.Equal(t, 1, count(""), "default start is now - 24h")
	require.Equal(t, 2, count("?start_date="+url.QueryEscape(start.Format(time.RFC3339))), "old batch is past 14 days")
	require.Equal(t, 2, count("?start_date=2000-01-01"), "date-only start accepted, still capped at 14 days")
	require.Equal(t, 1, count("?start_date=2000-01-01&client_reference=mid"))

	// Direct look-ups are not limited by the list window.
	for _, b := range []sinchsim.Batch{old, mid, recent} {
		require.Equal(t, http.StatusOK, e.get(t, "/batches/"+b.ID).status)
	}
}

func TestListRejectsBadQuery(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	for _, q := range []string{
		"page=-1", "page=x", "page=1.5",
		"page_size=0", "page_size=101", "page_size=ten",
		"start_date=yesterday", "end_date=2025-02-30T00:00:00Z",
	} {
		t.Run(q, func(t *testing.T) {
			t.Parallel()

			resp := e.get(t, "/batches?"+q)
			require.Equal(t, http.StatusBadRequest, resp.status)
			code, _ := resp.errorBody(t)
			require.Equal(t, "syntax_invalid_parameter_format", code)
		})
	}
}

func TestConcurrentCreates(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})

	const n = 40
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i] = e.post(t, withRef(fmt.Sprintf("job-%d", i%10))).status
		})
	}
	wg.Wait()

	for _, s := range statuses {
		require.Equal(t, http.StatusCreated, s)
	}

	batches := e.sim.Batches()
	require.Len(t, batches, n)
	seen := make(map[string]bool)
	for _, b := range batches {
		require.Regexp(t, ulidPattern, b.ID)
		require.False(t, seen[b.ID], "duplicate id %s", b.ID)
		seen[b.ID] = true
	}
	require.Equal(t, n, e.sim.Posts())
	require.Equal(t, 4, e.sim.CountByClientReference("job-3"))
}

func TestBatchesReturnsCopies(t *testing.T) {
	t.Parallel()

	e := setup(t, sinchsim.Config{})
	req := validRequest()
	req["parameters"] = map[string]any{"name": map[string]any{"default": "x"}}
	require.Equal(t, http.StatusCreated, e.post(t, req).status)

	first := e.sim.Batches()
	first[0].To[0] = "changed"
	first[0].Parameters["name"]["default"] = "changed"

	again := e.sim.Batches()
	require.Equal(t, "+12025550123", again[0].To[0])
	require.Equal(t, "x", again[0].Parameters["name"]["default"])
}
