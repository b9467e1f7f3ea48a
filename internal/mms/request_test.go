package mms_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
)

var rules = mms.Rules{DefaultFrom: "+12025550100", DefaultRegion: "US"}

func valid() mms.SendRequest {
	return mms.SendRequest{
		To:       mms.Recipients{"+1 (202) 555-0123"},
		MediaURL: "https://cdn.example.com/mms/pic.jpg",
		Message:  "Your order has shipped",
	}
}

func TestValidateAcceptsAndNormalises(t *testing.T) {
	t.Parallel()

	req := valid()
	req.To = mms.Recipients{"(202) 555-0123", "+1 415-555-2671", "0061 412 345 678"}
	req.Subject = "Order update"
	req.Reference = "order-42"
	req.Parameters = map[string]map[string]string{
		"name": {"202-555-0123": "Ada", "default": "friend"},
	}
	req.Message = "Hi ${name}"

	msg, prio, err := req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, mms.PriorityNormal, prio)
	require.Equal(t, []string{"+12025550123", "+14155552671", "+61412345678"}, msg.To)
	require.Equal(t, "+12025550100", msg.From, "default sender applies")
	require.Equal(t, map[string]map[string]string{"name": {"+12025550123": "Ada", "default": "friend"}}, msg.Parameters)
}

func TestValidateAcceptsRealWorldForms(t *testing.T) {
	t.Parallel()

	numbers := map[string]string{
		"+33 6 12 34 56 78":    "+33612345678",
		"+31 6 12345678":       "+31612345678",
		"+61 2 9876 5432":      "+61298765432",
		"+353 1 234 5678":      "+35312345678",
		"+44 (0) 20 7946 0958": "+442079460958",
		"0044 20 7946 0958":    "+442079460958",
		"202.555.0123":         "+12025550123",
	}
	for raw, want := range numbers {
		got, err := mms.NormalizeNumber(raw, "US")
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	for _, u := range []string{
		"https://bücher.de/a.jpg",
		"https://my_bucket.s3.amazonaws.com/a.jpg",
		"https://8.8.8.8/a.jpg",
		"https://[2606:4700::1111]/a.jpg",
		"https://cdn.example.com./a.jpg",
	} {
		req := valid()
		req.MediaURL = u
		_, _, err := req.Validate(rules)
		require.NoError(t, err, u)
	}
}

func TestValidateSenderForms(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct{ from, want string }{
		{"", "+12025550100"},
		{"+1 202 555 0199", "+12025550199"},
		{"12345", "12345"},
	} {
		req := valid()
		req.From = tt.from
		msg, _, err := req.Validate(rules)
		require.NoError(t, err, tt.from)
		require.Equal(t, tt.want, msg.From)
	}

	// No request sender and no default: the field is left out and Sinch's
	// default originator, if any, applies.
	msg, _, err := valid().Validate(mms.Rules{DefaultRegion: "US"})
	require.NoError(t, err)
	require.Empty(t, msg.From)
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()

	long := func(n int) string { return strings.Repeat("a", n) }
	many := make(mms.Recipients, 1001)
	for i := range many {
		many[i] = "+12025550123"
	}

	tests := []struct {
		name  string
		edit  func(*mms.SendRequest)
		field string
		text  string
	}{
		{"no recipients", func(r *mms.SendRequest) { r.To = nil }, "to", "is required"},
		{"too many recipients", func(r *mms.SendRequest) { r.To = many }, "to", "at most 1000"},
		{"letters in number", func(r *mms.SendRequest) { r.To = mms.Recipients{"+1 202 CALL NOW"} },
			"to", "only digits"},
		{"bad second number", func(r *mms.SendRequest) { r.To = mms.Recipients{"+12025550123", "12345"} },
			"to[1]", "not a valid phone number"},
		{"duplicate number", func(r *mms.SendRequest) { r.To = mms.Recipients{"+12025550123", "(202) 555-0123"} },
			"to[1]", "repeats to[0]"},
		{"extension", func(r *mms.SendRequest) { r.To = mms.Recipients{"+1 202 555 0123 x12"} }, "to", "only digits"},
		{"empty number", func(r *mms.SendRequest) { r.To = mms.Recipients{" "} }, "to", "is empty"},
		{"no media", func(r *mms.SendRequest) { r.MediaURL = "" }, "media_url", "is required"},
		{"relative media", func(r *mms.SendRequest) { r.MediaURL = "/pic.jpg" }, "media_url", "absolute"},
		{"ftp media", func(r *mms.SendRequest) { r.MediaURL = "ftp://example.com/a.jpg" },
			"media_url", "http or https"},
		{"media with credentials", func(r *mms.SendRequest) { r.MediaURL = "https://u:p@example.com/a.jpg" },
			"media_url", "credentials"},
		{"media too long", func(r *mms.SendRequest) { r.MediaURL = "https://example.com/" + long(2040) }, "media_url",
			"at most 2048"},
		{"subject too long", func(r *mms.SendRequest) { r.Subject = long(81) }, "subject", "at most 80"},
		{"message too long", func(r *mms.SendRequest) { r.Message = long(2001) }, "message", "at most 2000"},
		{"reference too long", func(r *mms.SendRequest) { r.Reference = long(129) }, "reference", "at most 128"},
		{"control in reference", func(r *mms.SendRequest) { r.Reference = "a\nb" }, "reference", "control"},
		{"bad priority", func(r *mms.SendRequest) { r.Priority = "urgent" }, "priority", "high, normal, bulk"},
		{"bad sender", func(r *mms.SendRequest) { r.From = "ACME" }, "from", "short code"},
		{"bad parameter name", func(r *mms.SendRequest) {
			r.Parameters = map[string]map[string]string{"a b": {"default": "x"}}
		}, "parameters.a b", "name must be"},
		{"parameter for a stranger", func(r *mms.SendRequest) {
			r.Parameters = map[string]map[string]string{"name": {"+14155552671": "x"}}
		}, "parameters.name.+14155552671", "not in \"to\""},
		{"placeholder without value", func(r *mms.SendRequest) { r.Message = "Hi ${name}" }, "message", "${name}"},
		{"empty placeholder", func(r *mms.SendRequest) { r.Message = "Hi ${}" }, "message", "${}"},
		{"control in message", func(r *mms.SendRequest) { r.Message = "a\x00b" }, "message", "control"},
		{"parameters keys collide", func(r *mms.SendRequest) {
			r.Parameters = mms.Parameters{"name": {"+12025550123": "Ada", "(202) 555-0123": "Bob"}}
		}, "parameters.name.+12025550123", "same number"},
		{"double plus", func(r *mms.SendRequest) { r.To = mms.Recipients{"++12025550123"} }, "to", "not written like"},
		{"dangling dashes", func(r *mms.SendRequest) { r.To = mms.Recipients{"-2025550123-"} },
			"to", "not written like"},
		{"nested brackets", func(r *mms.SendRequest) { r.To = mms.Recipients{"((2025550123))"} },
			"to", "not written like"},
		{"unbalanced bracket", func(r *mms.SendRequest) { r.To = mms.Recipients{"+1 (202) 555-0123)"} }, "to",
			"not written like"},
		{"digit by digit", func(r *mms.SendRequest) { r.To = mms.Recipients{"2.0.2.5.5.5.0.1.2.3"} }, "to",
			"not written like"},
		{"double separator", func(r *mms.SendRequest) { r.To = mms.Recipients{"202--555-0123"} },
			"to", "not written like"},
		{"fullwidth digits", func(r *mms.SendRequest) { r.To = mms.Recipients{"２０２５５５０１２３"} }, "to", "only digits"},
		{"space in media url", func(r *mms.SendRequest) { r.MediaURL = "https://x.io/a b.jpg" }, "media_url", "spaces"},
		{"bad port", func(r *mms.SendRequest) { r.MediaURL = "https://x.io:99999/a.jpg" }, "media_url", "port"},
		{"loopback media", func(r *mms.SendRequest) { r.MediaURL = "http://127.0.0.1/a.jpg" }, "media_url", "public"},
		{"metadata media", func(r *mms.SendRequest) { r.MediaURL = "http://169.254.169.254/x" }, "media_url", "public"},
		{"ipv6 loopback media", func(r *mms.SendRequest) { r.MediaURL = "http://[::1]/a.jpg" }, "media_url", "public"},
		{"private media", func(r *mms.SendRequest) { r.MediaURL = "https://10.1.2.3/a.jpg" }, "media_url", "public"},
		{"localhost media", func(r *mms.SendRequest) { r.MediaURL = "http://localhost:6379/" }, "media_url", "public"},
		{"bad host", func(r *mms.SendRequest) { r.MediaURL = "https://-/a.jpg" }, "media_url", "DNS name"},
		{"dots host", func(r *mms.SendRequest) { r.MediaURL = "https://.../a.jpg" }, "media_url", "DNS name"},
		{"ipv4-compatible", func(r *mms.SendRequest) { r.MediaURL = "http://[::127.0.0.1]/a.jpg" },
			"media_url", "public"},
		{"ipv4-translated", func(r *mms.SendRequest) { r.MediaURL = "http://[::ffff:0:a9fe:a9fe]/a" },
			"media_url", "public"},
		{"v6 documentation", func(r *mms.SendRequest) { r.MediaURL = "http://[3fff::1]/a" },
			"media_url", "public"},
		{"site-local", func(r *mms.SendRequest) { r.MediaURL = "http://[fec0::1]/a" },
			"media_url", "public"},
		{"v6 benchmarking", func(r *mms.SendRequest) { r.MediaURL = "http://[2001:2::1]/a" },
			"media_url", "public"},
		{"outside 2000::/3", func(r *mms.SendRequest) { r.MediaURL = "http://[4000::1]/a" },
			"media_url", "public"},
		{"6to4 relay", func(r *mms.SendRequest) { r.MediaURL = "http://192.88.99.1/a" },
			"media_url", "public"},
		{"home.arpa", func(r *mms.SendRequest) { r.MediaURL = "https://x.home.arpa/a" },
			"media_url", "public"},
		{"onion", func(r *mms.SendRequest) { r.MediaURL = "https://x.onion/a" },
			"media_url", "public"},
		{"tab around number", func(r *mms.SendRequest) { r.To = mms.Recipients{"\t+12025550123"} }, "to",
			"only digits"},
		{"blank sender", func(r *mms.SendRequest) { r.From = "   " }, "from", "blank"},
		{"lone surrogate in message", func(r *mms.SendRequest) { r.Message = "a\ufffdb" }, "message",
			"invalid escapes"},
		{"short ipv4", func(r *mms.SendRequest) { r.MediaURL = "http://127.1/a.jpg" }, "media_url", "public"},
		{"octal ipv4", func(r *mms.SendRequest) { r.MediaURL = "http://0177.0.0.1/a.jpg" }, "media_url", "public"},
		{"hex ipv4", func(r *mms.SendRequest) { r.MediaURL = "http://0x7f.0.0.1/a.jpg" }, "media_url", "public"},
		{"padded ipv4", func(r *mms.SendRequest) { r.MediaURL = "http://127.0.0.01/a.jpg" }, "media_url", "public"},
		{"trailing dot ip", func(r *mms.SendRequest) { r.MediaURL = "http://169.254.169.254./latest/" },
			"media_url", "public"},
		{"numeric tld", func(r *mms.SendRequest) { r.MediaURL = "https://cdn.example.123/a" }, "media_url", "public"},
		{"nat64", func(r *mms.SendRequest) { r.MediaURL = "http://[64:ff9b::a9fe:a9fe]/" }, "media_url", "public"},
		{"6to4", func(r *mms.SendRequest) { r.MediaURL = "http://[2002:7f00:1::]/" }, "media_url", "public"},
		{"reserved", func(r *mms.SendRequest) { r.MediaURL = "http://240.0.0.1/a" }, "media_url", "public"},
		{"documentation", func(r *mms.SendRequest) { r.MediaURL = "http://192.0.2.1/a" }, "media_url", "public"},
		{"benchmarking", func(r *mms.SendRequest) { r.MediaURL = "http://198.18.0.1/a" }, "media_url", "public"},
		{"no-break space in url", func(r *mms.SendRequest) { r.MediaURL = "https://x.io/a\u00a0b.jpg" },
			"media_url", "spaces"},
		{"zero-width space in url", func(r *mms.SendRequest) { r.MediaURL = "https://x.io/a\u200bb.jpg" },
			"media_url", "spaces"},
		{"control in parameter", func(r *mms.SendRequest) {
			r.Parameters = mms.Parameters{"name": {"default": "x\x1b[31m"}}
		}, "parameters.name.default", "control"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			req := valid()
			tt.edit(&req)
			_, _, err := req.Validate(rules)
			require.Error(t, err)
			require.True(t, errors.Is(err, mms.ErrInvalid))

			var verr *mms.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, tt.field, verr.Fields[0].Field)
			require.Contains(t, verr.Fields[0].Message, tt.text)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()

	req := mms.SendRequest{Subject: strings.Repeat("s", 90), Priority: "x"}
	_, _, err := req.Validate(rules)
	var verr *mms.ValidationError
	require.ErrorAs(t, err, &verr)

	var fields []string
	for _, f := range verr.Fields {
		fields = append(fields, f.Field)
	}
	require.Equal(t, []string{"to", "media_url", "subject", "priority"}, fields)
}

func TestDecodeStrict(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name, body, field, text string
	}{
		{"empty", ``, "body", "empty"},
		{"syntax", `{"to": }`, "body", "not valid JSON"},
		{"truncated", `{"to": "+12025550123"`, "body", "ends before"},
		{"unknown field", `{"to":"+12025550123","colour":"red"}`, "colour", "not a known field"},
		{"wrong type", `{"subject": 5}`, "subject", "must be a string"},
		{"to as number", `{"to": 12025550123}`, "to", "must be a string"},
		{"to array of numbers", `{"to": [12025550123]}`, "to[0]", "must be a string"},
		{"to array with null", `{"to": ["+12025550123", null]}`, "to[1]", "must be a string, not null"},
		{"parameters as array", `{"parameters": []}`, "parameters", "must be an object"},
		{"two objects", `{"to":"+12025550123"} {}`, "body", "nothing after"},
		{"array body", `[]`, "body", "must be a JSON object"},
		{"null body", `null`, "body", "must be a JSON object"},
		{"invalid utf-8", "{\"message\":\"\xff\"}", "body", "not valid UTF-8"},
		{"case-insensitive name", `{"TO":"+12025550123"}`, "TO", "did you mean \"to\""},
		{"duplicate key", `{"to":"+12025550123","to":"+14155552671"}`, "to", "more than once"},
		{"parameter value type", `{"parameters":{"name":{"default":1}}}`,
			"parameters.name.default", "must be a string"},
		{"parameter inner type", `{"parameters":{"name":"x"}}`, "parameters.name", "must be an object"},
		{"parameter null value", `{"parameters":{"name":{"default":null}}}`,
			"parameters.name.default", "must be a string"},
		{"parameter repeated recipient", `{"parameters":{"n":{"default":"a","default":"b"}}}`, "parameters.n.default",
			"more than once"},
		{"parameter repeated name", `{"parameters":{"n":{"default":"a"},"n":{"default":"b"}}}`, "parameters.n",
			"more than once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			var req mms.SendRequest
			err := mms.DecodeStrict(strings.NewReader(tt.body), &req)
			var verr *mms.ValidationError
			require.ErrorAs(t, err, &verr)
			require.Equal(t, tt.field, verr.Fields[0].Field)
			require.Contains(t, verr.Fields[0].Message, tt.text)
		})
	}

	var req mms.SendRequest
	body := `{"to":"+12025550123","media_url":"https://x.io/a.png"}`
	require.NoError(t, mms.DecodeStrict(strings.NewReader(body), &req))
	require.Equal(t, mms.Recipients{"+12025550123"}, req.To)
}

func TestValidateExpiry(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r := mms.Rules{DefaultRegion: "US", DefaultExpiry: 24 * time.Hour, MaxExpiry: 48 * time.Hour,
		Now: func() time.Time { return now }}

	msg, _, err := valid().Validate(r)
	require.NoError(t, err)
	require.Equal(t, now.Add(24*time.Hour), msg.ExpireAt, "the default applies")

	req := valid()
	req.ExpireAt = "2026-12-05T18:30:00+01:00"
	msg, _, err = req.Validate(r)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 12, 5, 17, 30, 0, 0, time.UTC), msg.ExpireAt)

	for value, text := range map[string]string{
		"2026-12-05T18:30:00":       "with an offset",
		"tomorrow":                  "with an offset",
		"2026-12-04T12:00:30Z":      "at least a minute",
		"2026-12-01T12:00:00Z":      "at least a minute",
		"2026-12-06T12:00:01Z":      "at most 48h",
		"2026-12-05T12:00:00+25:00": "with an offset",
	} {
		req.ExpireAt = value
		_, _, err := req.Validate(r)
		var verr *mms.ValidationError
		require.ErrorAs(t, err, &verr, value)
		require.Equal(t, "expire_at", verr.Fields[0].Field, value)
		require.Contains(t, verr.Fields[0].Message, text, value)
	}
}

func TestValidateSchedule(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r := mms.Rules{DefaultRegion: "US", DefaultExpiry: 24 * time.Hour, MaxExpiry: 48 * time.Hour,
		MaxSchedule: 72 * time.Hour, Now: func() time.Time { return now }}

	req := valid()
	req.SendAt = "2026-12-05T09:00:00-05:00"
	msg, _, err := req.Validate(r)
	require.NoError(t, err)
	sendAt := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	require.Equal(t, sendAt, msg.SendAt)
	require.Equal(t, sendAt.Add(24*time.Hour), msg.ExpireAt, "expiry counts from the send time")

	req.ExpireAt = "2026-12-05T13:00:00Z"
	_, _, err = req.Validate(r)
	require.ErrorContains(t, err, "expire_at: must be at least a minute in the future (after send_at")

	for value, text := range map[string]string{
		"2026-12-05T09:00:00":  "with an offset",
		"2026-12-04T11:59:00Z": "in the future",
		"2026-12-07T12:00:01Z": "at most 72h",
	} {
		req := valid()
		req.SendAt = value
		_, _, err := req.Validate(r)
		var verr *mms.ValidationError
		require.ErrorAs(t, err, &verr, value)
		require.Equal(t, "send_at", verr.Fields[0].Field, value)
		require.Contains(t, verr.Fields[0].Message, text, value)
	}
}
