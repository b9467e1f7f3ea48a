package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"

	"github.com/mmsgate/mmsgate/internal/suppress"
)

const suppressions = "/api/mms/suppressions"

// stored reads the suppression list straight from Redis: number -> reason.
func (s *stack) stored(t *testing.T) map[string]string {
	t.Helper()
	all, err := s.rdb.HGetAll(context.Background(), suppress.Key).Result()
	require.NoError(t, err)
	out := make(map[string]string, len(all))
	for n, v := range all {
		var rec struct {
			Reason    string    `json:"reason"`
			CreatedAt time.Time `json:"created_at"`
		}
		require.NoError(t, json.Unmarshal([]byte(v), &rec), v)
		require.False(t, rec.CreatedAt.IsZero(), v)
		out[n] = rec.Reason
	}
	return out
}

// apiError returns the error object of an answer, checking its shape.
func apiError(t *testing.T, r response) map[string]any {
	t.Helper()
	e, ok := r.body["error"].(map[string]any)
	require.True(t, ok, "JSON error body: %v", r.body)
	require.NotEmpty(t, e["code"])
	require.NotEmpty(t, e["message"])
	return e
}

// fieldNames lists the fields an error names, each with a message.
func fieldNames(t *testing.T, e map[string]any) []string {
	t.Helper()
	fields, _ := e["fields"].([]any)
	names := make([]string, len(fields))
	for i, f := range fields {
		m := f.(map[string]any)
		require.NotEmpty(t, m["message"], "field %v", m["field"])
		names[i] = m["field"].(string)
	}
	return names
}

func TestSuppressPutGetDelete(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	before := time.Now().UTC().Add(-time.Second)
	r := s.do(t, http.MethodPut, suppressions+"/%2B12025550123", "application/json", `{"reason":"replied STOP"}`)
	require.Equal(t, http.StatusCreated, r.status, "%v", r.body)
	require.Equal(t, "+12025550123", r.body["number"])
	require.Equal(t, "replied STOP", r.body["reason"])
	require.Equal(t, suppressions+"/%2B12025550123", r.header.Get("Location"))
	created, err := time.Parse(time.RFC3339Nano, r.body["created_at"].(string))
	require.NoError(t, err)
	require.WithinRange(t, created, before, time.Now().Add(time.Second))
	entry := r.body

	// The number may be written in any form the send endpoint takes.
	for _, path := range []string{
		"/%2B12025550123",
		"/2025550123",                 // no country code: DEFAULT_REGION
		"/12025550123",                // no +
		"/+1%20202%20555%200123",      // a raw + and escaped spaces
		"/%2B1%20(202)%20555-0123",    // brackets and a dash
		"/%2B1.202.555.0123",          // dots
		"/%2B1%20202%20555%200123%20", // a trailing space
	} {
		r = s.do(t, http.MethodGet, suppressions+path, "", "")
		require.Equal(t, http.StatusOK, r.status, path)
		require.Equal(t, entry, r.body, path)
	}

	// A second PUT changes nothing and says so with 200.
	r = s.do(t, http.MethodPut, suppressions+"/(202)%20555-0123", "application/json", `{"reason":"other"}`)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, entry, r.body, "the first entry stands, reason and time")
	require.Empty(t, r.header.Get("Location"))
	require.Equal(t, map[string]string{"+12025550123": "replied STOP"}, s.stored(t))

	r = s.do(t, http.MethodHead, suppressions+"/%2B12025550123", "", "")
	require.Equal(t, http.StatusOK, r.status)

	r = s.do(t, http.MethodDelete, suppressions+"/%2B12025550123", "", "")
	require.Equal(t, http.StatusNoContent, r.status)
	require.Nil(t, r.body)
	require.Empty(t, s.stored(t))

	r = s.do(t, http.MethodDelete, suppressions+"/%2B12025550123", "", "")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_found", apiError(t, r)["code"])
	r = s.do(t, http.MethodGet, suppressions+"/%2B12025550123", "", "")
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_found", apiError(t, r)["code"])
	r = s.do(t, http.MethodHead, suppressions+"/%2B12025550123", "", "")
	require.Equal(t, http.StatusNotFound, r.status)

	// No body at all (and no Content-Type) is a suppression without reason.
	r = s.do(t, http.MethodPut, suppressions+"/%2B447911123456", "", "")
	require.Equal(t, http.StatusCreated, r.status, "%v", r.body)
	require.Equal(t, "+447911123456", r.body["number"])
	require.NotContains(t, r.body, "reason")
	r = s.do(t, http.MethodPut, suppressions+"/%2B14155552671", "application/json", `{"reason":null}`)
	require.Equal(t, http.StatusCreated, r.status, "%v", r.body)
	require.NotContains(t, r.body, "reason")
	require.Equal(t, map[string]string{"+447911123456": "", "+14155552671": ""}, s.stored(t))

	// Only route patterns reach the logs, never the numbers.
	logs := s.logs.String()
	require.Contains(t, logs, `"route":"/api/mms/suppressions/:number"`)
	for _, secret := range []string{"2025550123", "7911123456", "4155552671", "replied STOP"} {
		require.NotContains(t, logs, secret)
	}
}

func TestSuppressPutRefusesBadBodies(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	path := suppressions + "/%2B12025550123"
	tests := []struct {
		name, contentType, body string
		status                  int
		code                    string
		fields                  []string
	}{
		{"not json", "text/plain", "opted out", 415, "unsupported_media_type", nil},
		{"malformed", "application/json", `{"reason":`, 400, "invalid_json", []string{"body"}},
		{"unknown field", "application/json", `{"reasons":"x"}`, 400, "invalid_json", []string{"reasons"}},
		{"wrong type", "application/json", `{"reason":5}`, 400, "invalid_json", []string{"reason"}},
		{"array", "application/json", `["x"]`, 400, "invalid_json", []string{"body"}},
		{"long reason", "application/json", `{"reason":"` + strings.Repeat("a", 201) + `"}`, 422,
			"validation_failed", []string{"reason"}},
		{"control character", "application/json", `{"reason":"a\u0007b"}`, 422, "validation_failed",
			[]string{"reason"}},
		{"newline", "application/json", `{"reason":"a\nb"}`, 422, "validation_failed", []string{"reason"}},
		{"lone surrogate", "application/json", `{"reason":"\ud800"}`, 422, "validation_failed", []string{"reason"}},
		{"too large", "application/json", `{"reason":"` + strings.Repeat("a", 70<<10) + `"}`, 413,
			"body_too_large", nil},
	}
	for _, tt := range tests {
		r := s.do(t, http.MethodPut, path, tt.contentType, tt.body)
		require.Equal(t, tt.status, r.status, "%s: %v", tt.name, r.body)
		e := apiError(t, r)
		require.Equal(t, tt.code, e["code"], tt.name)
		if tt.fields != nil {
			require.Equal(t, tt.fields, fieldNames(t, e), tt.name)
		}
	}

	// Every problem is reported at once.
	r := s.do(t, http.MethodPut, suppressions+"/call-me", "application/json",
		`{"reason":"`+strings.Repeat("a", 300)+`"}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, []string{"number", "reason"}, fieldNames(t, apiError(t, r)))

	// A reason of exactly 200 characters is fine.
	r = s.do(t, http.MethodPut, path, "application/json", `{"reason":"`+strings.Repeat("é", 200)+`"}`)
	require.Equal(t, http.StatusCreated, r.status, "%v", r.body)
	require.Equal(t, map[string]string{"+12025550123": strings.Repeat("é", 200)}, s.stored(t),
		"nothing but the valid request was stored")
}

func TestSuppressBadNumberInPath(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	for _, number := range []string{
		"abc",
		"call%20me",
		"%2B1234",                   // too short for its country
		"%2B1%20202%20555%20012345", // too long
		"12",
		"%2B12025550123%2F1", // an escaped slash
		"%252B12025550123",   // %2B escaped again: decoded once only
		"%2B%2B12025550123",  // two +
		"%2B1202555012x",     // a letter
		"%2B12025550123%0A",  // a newline
		"%2B1-202--555-0123", // doubled separator
		"%2B" + strings.Repeat("1", 40),
	} {
		for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
			r := s.do(t, method, suppressions+"/"+number, "", "")
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s %s: %v", method, number, r.body)
			e := apiError(t, r)
			require.Equal(t, "validation_failed", e["code"])
			require.Equal(t, []string{"number"}, fieldNames(t, e), "%s %s", method, number)
		}
	}
	// A further path segment is an unknown route, not a number.
	for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
		r := s.do(t, method, suppressions+"/+14155552671/x", "", "")
		require.Equal(t, http.StatusNotFound, r.status, "%s: %v", method, r.body)
		require.Equal(t, "not_found", apiError(t, r)["code"])
	}
	require.Empty(t, s.stored(t))
}

func TestSuppressNeedsAuth(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})
	require.NoError(t, s.rdb.HSet(context.Background(), suppress.Key, "+12025550123",
		`{"created_at":"2026-01-01T00:00:00Z"}`).Err())

	calls := []struct{ method, path, contentType, body string }{
		{http.MethodPut, suppressions + "/%2B14155552671", "application/json", `{"reason":"x"}`},
		{http.MethodGet, suppressions + "/%2B12025550123", "", ""},
		{http.MethodDelete, suppressions + "/%2B12025550123", "", ""},
		{http.MethodPost, suppressions, "application/json", `{"numbers":["+14155552671"]}`},
		{http.MethodPost, suppressions, "text/csv", "+14155552671\n"},
	}
	for _, key := range []string{"", "wrong-key-0123456789abcdef"} {
		for _, c := range calls {
			r := s.do(t, c.method, c.path, c.contentType, c.body, "X-API-Key", key)
			require.Equal(t, http.StatusUnauthorized, r.status, "%s %s key %q", c.method, c.path, key)
			require.Equal(t, "unauthorized", apiError(t, r)["code"])
			require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
			require.NotContains(t, r.body, "number")
		}
	}
	require.Equal(t, map[string]string{"+12025550123": ""}, s.stored(t), "nothing added, nothing deleted")

	// The bearer form works as for every other route.
	r := s.do(t, http.MethodGet, suppressions+"/%2B12025550123", "", "", "X-API-Key", "",
		"Authorization", "Bearer "+rotatedKey)
	require.Equal(t, http.StatusOK, r.status)
}

func TestSuppressBulkImportJSON(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	r := s.do(t, http.MethodPut, suppressions+"/%2B14155552671", "application/json", `{"reason":"earlier"}`)
	require.Equal(t, http.StatusCreated, r.status)

	body := `{"numbers":["+1 202 555 0123","202-555-0124","(202) 555-0123","call me","+14155552671","",` +
		`"+1 202 555 01234","12025550125","2025550124"],"reason":"import 1"}`
	r = s.do(t, http.MethodPost, suppressions, "application/json", body)
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.EqualValues(t, 9, r.body["received"])
	require.EqualValues(t, 3, r.body["imported"])
	require.EqualValues(t, 1, r.body["already_suppressed"])
	require.EqualValues(t, 2, r.body["duplicates"])
	require.EqualValues(t, 3, r.body["invalid_count"])
	invalid := r.body["invalid"].([]any)
	require.Len(t, invalid, 3)
	for i, want := range []struct {
		index int
		value string
	}{{3, "call me"}, {5, ""}, {6, "+1 202 555 01234"}} {
		inv := invalid[i].(map[string]any)
		require.EqualValues(t, want.index, inv["index"])
		require.Equal(t, want.value, inv["value"])
		require.NotEmpty(t, inv["message"])
		require.NotContains(t, inv, "line")
	}
	require.Equal(t, "is empty", invalid[1].(map[string]any)["message"])

	require.Equal(t, map[string]string{
		"+12025550123": "import 1",
		"+12025550124": "import 1",
		"+12025550125": "import 1",
		"+14155552671": "earlier", // left as it was
	}, s.stored(t))
	r = s.do(t, http.MethodGet, suppressions+"/%2B12025550125", "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "import 1", r.body["reason"])

	// The same import again adds nothing.
	r = s.do(t, http.MethodPost, suppressions, "application/json", body)
	require.Equal(t, http.StatusOK, r.status)
	require.EqualValues(t, 0, r.body["imported"])
	require.EqualValues(t, 4, r.body["already_suppressed"])
	require.EqualValues(t, 2, r.body["duplicates"])

	// No reason is fine; every valid number imported, an empty invalid list.
	r = s.do(t, http.MethodPost, suppressions, "application/json", `{"numbers":["+447911123456"]}`)
	require.Equal(t, http.StatusOK, r.status)
	require.EqualValues(t, 1, r.body["imported"])
	require.Equal(t, []any{}, r.body["invalid"])
	require.Equal(t, "", s.stored(t)["+447911123456"])
	require.Contains(t, s.logs.String(), `"message":"suppressions imported"`)
}

func TestSuppressBulkImportCSV(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	r := s.do(t, http.MethodPut, suppressions+"/%2B14155552671", "", "")
	require.Equal(t, http.StatusCreated, r.status)

	csv := "\ufeffPhone\r\n" + // 1: a header, after a byte order mark
		"+1 202 555 0123\r\n" + // 2
		"\r\n" + // 3: blank
		"202-555-0124\r\n" + // 4
		"\"(202) 555-0125\"\r\n" + // 5: quoted
		"+12025550123\r\n" + // 6: a duplicate of line 2
		"+12025550126,Ada\r\n" + // 7: two columns
		"not a number\r\n" + // 8
		"+12025550127;Bob\r\n" + // 9: another separator
		"   \r\n" + // 10: blank
		"4155552671\r\n" + // 11: already suppressed
		"number\n" + // 12: a header is only skipped on the first line
		"+12025550128,\n" + // 13: an empty second column is still one too many
		"+12025550129" // 14: no final newline
	r = s.do(t, http.MethodPost, suppressions+"?reason=csv%20list", "text/csv; charset=utf-8", csv)
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.EqualValues(t, 11, r.body["received"])
	require.EqualValues(t, 4, r.body["imported"])
	require.EqualValues(t, 1, r.body["already_suppressed"])
	require.EqualValues(t, 1, r.body["duplicates"])
	require.EqualValues(t, 5, r.body["invalid_count"])

	invalid := r.body["invalid"].([]any)
	require.Len(t, invalid, 5)
	lines := make([]float64, len(invalid))
	for i, v := range invalid {
		inv := v.(map[string]any)
		lines[i] = inv["line"].(float64)
		require.NotContains(t, inv, "index")
	}
	require.Equal(t, []float64{7, 8, 9, 12, 13}, lines)
	two := invalid[0].(map[string]any)
	require.Equal(t, "+12025550126,Ada", two["value"])
	require.Equal(t, "has 2 columns; give exactly one number per line", two["message"])
	require.Contains(t, invalid[2].(map[string]any)["message"], "more than one column")
	require.Equal(t, "+12025550128,", invalid[4].(map[string]any)["value"])

	require.Equal(t, map[string]string{
		"+12025550123": "csv list",
		"+12025550124": "csv list",
		"+12025550125": "csv list",
		"+12025550129": "csv list",
		"+14155552671": "",
	}, s.stored(t), "a row with two columns is refused whole, not cut down to its first")

	// The reason of a CSV import obeys the same rules; a JSON import takes
	// it in the body only.
	r = s.do(t, http.MethodPost, suppressions+"?reason=a%0Ab", "text/csv", "+12025550130\n")
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, []string{"reason"}, fieldNames(t, apiError(t, r)))
	r = s.do(t, http.MethodPost, suppressions+"?reason=x", "application/json", `{"numbers":["+12025550130"]}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, []string{"reason"}, fieldNames(t, apiError(t, r)))

	// Broken CSV quoting is a 400 naming the line, and imports nothing.
	r = s.do(t, http.MethodPost, suppressions, "text/csv", "+12025550130\n+1202\"5550131\n")
	require.Equal(t, http.StatusBadRequest, r.status)
	e := apiError(t, r)
	require.Equal(t, "invalid_csv", e["code"])
	require.Contains(t, e["fields"].([]any)[0].(map[string]any)["message"], "line 2")

	// Other types and charsets are refused.
	r = s.do(t, http.MethodPost, suppressions, "text/plain", "+12025550130\n")
	require.Equal(t, http.StatusUnsupportedMediaType, r.status)
	require.Equal(t, "unsupported_media_type", apiError(t, r)["code"])
	r = s.do(t, http.MethodPost, suppressions, "text/csv; charset=utf-16", "+12025550130\n")
	require.Equal(t, http.StatusUnsupportedMediaType, r.status)
	r = s.do(t, http.MethodPost, suppressions, "", "+12025550130\n")
	require.Equal(t, http.StatusUnsupportedMediaType, r.status)

	require.NotContains(t, s.stored(t), "+12025550130")
	require.NotContains(t, s.stored(t), "+12025550131")
}

func TestSuppressBulkNoneValid(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	tests := []struct {
		name, contentType, body string
		status                  int
		code                    string
		fields                  []string
	}{
		{"json, all invalid", "application/json", `{"numbers":["x","12","+1 202 555 0123 4"]}`, 422,
			"validation_failed", []string{"numbers[0]", "numbers[1]", "numbers[2]"}},
		{"csv, all invalid", "text/csv", "number\nabc\n\n+1202555012,Ada\n", 422, "validation_failed",
			[]string{"line 2", "line 4"}},
		{"json, empty list", "application/json", `{"numbers":[]}`, 422, "validation_failed", []string{"numbers"}},
		{"json, no list", "application/json", `{"reason":"x"}`, 422, "validation_failed", []string{"numbers"}},
		{"json, null list", "application/json", `{"numbers":null}`, 422, "validation_failed", []string{"numbers"}},
		{"csv, header only", "text/csv", "number\r\n", 422, "validation_failed", []string{"body"}},
		{"csv, empty", "text/csv", "", 422, "validation_failed", []string{"body"}},
		{"json, bad reason too", "application/json", `{"numbers":[],"reason":"` + strings.Repeat("r", 201) + `"}`,
			422, "validation_failed", []string{"numbers", "reason"}},
		{"json, a number not a string", "application/json", `{"numbers":["+12025550123",12025550124]}`, 400,
			"invalid_json", []string{"numbers"}},
		{"json, unknown field", "application/json", `{"numbers":["+12025550123"],"source":"x"}`, 400,
			"invalid_json", []string{"source"}},
		{"json, not an object", "application/json", `["+12025550123"]`, 400, "invalid_json", []string{"body"}},
	}
	for _, tt := range tests {
		r := s.do(t, http.MethodPost, suppressions, tt.contentType, tt.body)
		require.Equal(t, tt.status, r.status, "%s: %v", tt.name, r.body)
		e := apiError(t, r)
		require.Equal(t, tt.code, e["code"], tt.name)
		require.Equal(t, tt.fields, fieldNames(t, e), tt.name)
	}
	r := s.do(t, http.MethodPost, suppressions, "application/json", `{"numbers":["x","y"]}`)
	require.Equal(t, "none of the 2 numbers is valid; nothing was imported", apiError(t, r)["message"])

	require.Empty(t, s.stored(t))
}

func TestSuppressBulkLimits(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true})

	// 20,000 numbers: a body well over MAX_BODY_BYTES (64 KiB here), which
	// the bulk route's own limit admits.
	var b strings.Builder
	b.WriteString("number\n")
	for i := range 20_000 {
		fmt.Fprintf(&b, "+1 202 %03d %04d\n", 200+i/10_000, i%10_000)
	}
	require.Greater(t, b.Len(), 64<<10)
	r := s.do(t, http.MethodPost, suppressions, "text/csv", b.String())
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.EqualValues(t, 20_000, r.body["imported"])
	require.EqualValues(t, 0, r.body["invalid_count"])
	n, err := s.rdb.HLen(context.Background(), suppress.Key).Result()
	require.NoError(t, err)
	require.EqualValues(t, 20_000, n)

	// The bulk route has a limit too: BULK_MAX_BODY_BYTES, 16 MiB by default.
	r = s.do(t, http.MethodPost, suppressions, "text/csv", strings.Repeat("+12025550123\n", (16<<20)/13+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
	require.Equal(t, "the body is larger than 16777216 bytes", apiError(t, r)["message"])

	// The same body anywhere else meets the global limit.
	r = s.do(t, http.MethodPut, suppressions+"/%2B12025550123", "application/json",
		`{"reason":"`+strings.Repeat("a", 70<<10)+`"}`)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status)

	// At most 100,000 numbers, invalid ones included. Cheap invalid ones
	// make the test fast; the count is what is limited.
	many := func(n int) string {
		nums := make([]string, n)
		for i := range nums {
			nums[i] = `"x"`
		}
		nums[n-1] = `"+447911123456"`
		return `{"numbers":[` + strings.Join(nums, ",") + `]}`
	}
	r = s.do(t, http.MethodPost, suppressions, "application/json", many(100_001))
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	e := apiError(t, r)
	require.Equal(t, []string{"numbers"}, fieldNames(t, e))
	require.Contains(t, e["fields"].([]any)[0].(map[string]any)["message"], "more than 100000")
	require.NotContains(t, s.stored(t), "+447911123456")

	r = s.do(t, http.MethodPost, suppressions, "text/csv", "number\n"+strings.Repeat("1\n", 100_001))
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.Equal(t, []string{"body"}, fieldNames(t, apiError(t, r)))

	// Exactly 100,000 is fine, and the invalid list stops at 1000.
	r = s.do(t, http.MethodPost, suppressions, "application/json", many(100_000))
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	require.EqualValues(t, 1, r.body["imported"])
	require.EqualValues(t, 99_999, r.body["invalid_count"])
	invalid := r.body["invalid"].([]any)
	require.Len(t, invalid, 1000)
	require.EqualValues(t, 999, invalid[999].(map[string]any)["index"])
	require.Contains(t, s.stored(t), "+447911123456")

	// A long invalid value is not echoed whole; nor is any in a 422.
	long := strings.Repeat("9", 100)
	r = s.do(t, http.MethodPost, suppressions, "application/json", `{"numbers":["`+long+`","+12025550199"]}`)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, strings.Repeat("9", 64)+"…", r.body["invalid"].([]any)[0].(map[string]any)["value"])
	r = s.do(t, http.MethodPost, suppressions, "application/json", `{"numbers":["`+long+`"]}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	require.NotContains(t, fmt.Sprint(r.body), long[:20])
}

// TestSendLeavesOutSuppressed: a send to a number on the list leaves it
// out and says so; a send to no one else is refused and enqueues nothing.
func TestSendLeavesOutSuppressed(t *testing.T) {
	s := setup(t, options{})
	r := s.do(t, http.MethodPut, "/api/mms/suppressions/%2B12025550123", "", "")
	require.Equal(t, http.StatusCreated, r.status, "%v", r.body)

	r = s.do(t, http.MethodPost, "/api/mms/send", "application/json", goodBody)
	require.Equal(t, http.StatusAccepted, r.status, "%v", r.body)
	require.Equal(t, []any{"+12025550123"}, r.body["suppressed"])
	id := r.body["job_id"].(string)
	job := s.waitFor(t, id, mms.StatusSent)
	require.Equal(t, []any{"+14155552671"}, job["recipients"])
	require.Equal(t, []any{"+12025550123"}, job["suppressed"])
	require.Equal(t, 1, s.sim.CountByClientReference(id), "sent once")
	require.Equal(t, []string{"+14155552671"}, s.sim.Batches()[0].To)

	r = s.do(t, http.MethodPost, "/api/mms/send", "application/json",
		`{"to":"202-555-0123","media_url":"https://cdn.example.com/a.jpg"}`)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%v", r.body)
	e := apiError(t, r)
	require.Equal(t, "suppressed", e["code"])
	require.Equal(t, []string{"to"}, fieldNames(t, e))
	keys, err := s.rdb.Keys(t.Context(), "mmsgate:job:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1, "only the first job was stored")
}
