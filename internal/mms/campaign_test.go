package mms_test

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
)

const media = "https://cdn.example.com/a.jpg"

// fieldOf returns the first field a validation error names.
func fieldOf(t *testing.T, err error) mms.FieldError {
	t.Helper()
	var verr *mms.ValidationError
	require.ErrorAs(t, err, &verr)
	require.NotEmpty(t, verr.Fields)
	require.ErrorIs(t, err, mms.ErrInvalid)
	return verr.Fields[0]
}

// fieldsOf lists every field a validation error names.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	var verr *mms.ValidationError
	require.ErrorAs(t, err, &verr)
	var out []string
	for _, f := range verr.Fields {
		out = append(out, f.Field)
	}
	return out
}

func decodeCampaign(body string) (*mms.CampaignRequest, error) {
	req := &mms.CampaignRequest{}
	return req, mms.DecodeStrict(strings.NewReader(body), req)
}

// numbers returns n distinct valid US numbers, +12025550000 on.
func numbers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("+1202555%04d", i)
	}
	return out
}

func plainRecipients(nums ...string) mms.CampaignRecipients {
	out := make(mms.CampaignRecipients, len(nums))
	for i, n := range nums {
		out[i].To = n
	}
	return out
}

func TestCampaignDecodeMixedRecipients(t *testing.T) {
	t.Parallel()

	req, err := decodeCampaign(`{"media_url":"` + media + `","recipients":[
		"+12025550101",
		{"to":"202-555-0102","parameters":{"name":"Ann","city":"Paris"}},
		{"to":"+12025550103"},
		{"parameters":{"name":"Bo"},"to":"+12025550104"},
		"  (202) 555-0105  "
	]}`)
	require.NoError(t, err)
	require.Equal(t, mms.CampaignRecipients{
		{To: "+12025550101"},
		{To: "202-555-0102", Parameters: map[string]string{"name": "Ann", "city": "Paris"}},
		{To: "+12025550103"},
		{To: "+12025550104", Parameters: map[string]string{"name": "Bo"}},
		{To: "  (202) 555-0105  "},
	}, req.Recipients)

	// Only strings: the quick path gives the same.
	req, err = decodeCampaign(`{"recipients":["+12025550101","x"]}`)
	require.NoError(t, err)
	require.Equal(t, plainRecipients("+12025550101", "x"), req.Recipients)
}

func TestCampaignDecodeRefusesWrongShapes(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct{ body, field, msg string }{
		{`{"recipients":5}`, "recipients", "array"},
		{`{"recipients":"+12025550101"}`, "recipients", "array"},
		{`{"recipients":{"to":"+12025550101"}}`, "recipients", "array"},
		{`{"recipients":["+12025550101",5]}`, "recipients[1]", "not number"},
		{`{"recipients":["+12025550101",[]]}`, "recipients[1]", "not array"},
		{`{"recipients":[true]}`, "recipients[0]", "not bool"},
		{`{"recipients":["+12025550101",null]}`, "recipients[1]", "not null"},
		{`{"recipients":[{"to":"+12025550101"},null]}`, "recipients[1]", "not null"},
		{`{"recipients":[{"to":5}]}`, "recipients[0].to", "string"},
		{`{"recipients":["+12025550101",{"to":"+12025550102","name":"Ann"}]}`, "recipients[1].name",
			"not a known field"},
		{`{"recipients":[{"To":"+12025550101"}]}`, "recipients[0].To", "not a known field"},
		{`{"recipients":[{"to":"+12025550101","to":"+12025550102"}]}`, "recipients[0].to", "more than once"},
		{`{"recipients":[{"to":"+12025550101","parameters":"Ann"}]}`, "recipients[0].parameters", "object"},
		{`{"recipients":[{"to":"+12025550101","parameters":{"name":5}}]}`, "recipients[0].parameters.name", "string"},
		{`{"recipients":[{"to":"+12025550101","parameters":{"name":null}}]}`, "recipients[0].parameters.name",
			"string"},
		{`{"recipients":[{"to":"+12025550101","parameters":{"name":"A","name":"B"}}]}`,
			"recipients[0].parameters.name", "more than once"},
		{`{"recipients":[],"rate_limit":"fast"}`, "rate_limit", "number"},
		{`{"recipients":[],"name":5}`, "name", "string"},
		{`{"recipients":[],"parameters":["a"]}`, "parameters", "object"},
		{`{"recipients":[],"recipient":["+12025550101"]}`, "recipient", "not a known field"},
		{`{"recipients":[],"Name":"x"}`, "Name", "did you mean \"name\""},
		{`{"recipients":[],"name":"a","name":"b"}`, "name", "more than once"},
		{`{"recipients":[],"CSVColumns":["a"]}`, "CSVColumns", "not a known field"},
	} {
		_, err := decodeCampaign(tc.body)
		require.Error(t, err, tc.body)
		f := fieldOf(t, err)
		require.Equal(t, tc.field, f.Field, "%s: %v", tc.body, err)
		require.Contains(t, f.Message, tc.msg, tc.body)
	}
}

func TestCampaignValidateCountsAndLists(t *testing.T) {
	t.Parallel()

	req := &mms.CampaignRequest{MediaURL: media, Recipients: plainRecipients(
		"+12025550101",    // 0
		"12",              // 1 invalid
		"202-555-0102",    // 2
		"(202) 555-0101",  // 3 repeats 0
		"",                // 4 invalid
		"+1 202 555 0102", // 5 repeats 2
		"+12025550103",    // 6
		"+12025550101",    // 7 repeats 0
	)}
	plan, err := req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, []string{"+12025550101", "+12025550102", "+12025550103"}, plan.Recipients)
	require.Equal(t, 8, plan.Listed)
	require.Equal(t, 2, plan.InvalidCount)
	require.Equal(t, 3, plan.Duplicates)
	require.Len(t, plan.Invalid, 2)
	require.Equal(t, 1, *plan.Invalid[0].Index)
	require.Equal(t, "12", plan.Invalid[0].Value)
	require.NotEmpty(t, plan.Invalid[0].Message)
	require.Zero(t, plan.Invalid[0].Line)
	require.Equal(t, 4, *plan.Invalid[1].Index)
	require.Equal(t, mms.PriorityBulk, plan.Priority, "campaigns default to bulk")
	require.Equal(t, "+12025550100", plan.Content.From)
	require.Nil(t, plan.Values)
	require.Nil(t, plan.Defaults)
	require.Empty(t, plan.Content.To)
	require.Equal(t, plan.Listed, len(plan.Recipients)+plan.InvalidCount+plan.Duplicates)
}

func TestCampaignValidateListsAtMostMaxListed(t *testing.T) {
	t.Parallel()

	recips := make(mms.CampaignRecipients, 0, 1600)
	for i := range 1500 {
		recips = append(recips, mms.CampaignRecipient{To: fmt.Sprintf("bad-%d", i)})
	}
	for _, n := range numbers(100) {
		recips = append(recips, mms.CampaignRecipient{To: n})
	}
	req := &mms.CampaignRequest{MediaURL: media, Recipients: recips}
	plan, err := req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, 1500, plan.InvalidCount, "the count is complete")
	require.Len(t, plan.Invalid, mms.MaxListed, "the list is capped")
	for i, r := range plan.Invalid {
		require.Equal(t, i, *r.Index, "the first ones, in order")
		require.Equal(t, fmt.Sprintf("bad-%d", i), r.Value)
	}
	require.Len(t, plan.Recipients, 100)

	// Every recipient refused: the plan still comes back, to be listed.
	req = &mms.CampaignRequest{MediaURL: media, Recipients: plainRecipients("1", "2")}
	plan, err = req.Validate(rules)
	require.ErrorIs(t, err, mms.ErrNoRecipients)
	require.NotNil(t, plan)
	require.Equal(t, 2, plan.InvalidCount)
	require.Len(t, plan.Invalid, 2)
}

func TestCampaignValidateRecipientCountLimit(t *testing.T) {
	t.Parallel()

	nums := numbers(10_000)
	recips := make(mms.CampaignRecipients, 0, mms.MaxCampaignRecipients+1)
	for i := range mms.MaxCampaignRecipients {
		recips = append(recips, mms.CampaignRecipient{To: nums[i%len(nums)]})
	}
	req := &mms.CampaignRequest{MediaURL: media, Recipients: recips}
	plan, err := req.Validate(rules)
	require.NoError(t, err, "exactly the limit is allowed")
	require.Equal(t, mms.MaxCampaignRecipients, plan.Listed)
	require.Len(t, plan.Recipients, 10_000)
	require.Equal(t, mms.MaxCampaignRecipients-10_000, plan.Duplicates, "repeats count against the limit too")

	req.Recipients = append(recips, mms.CampaignRecipient{To: "+12025550101"})
	plan, err = req.Validate(rules)
	require.Nil(t, plan)
	f := fieldOf(t, err)
	require.Equal(t, "recipients", f.Field)
	require.Contains(t, f.Message, "100001")

	req.Recipients = nil
	_, err = req.Validate(rules)
	require.Equal(t, "recipients", fieldOf(t, err).Field)
}

func TestCampaignValidateCampaignFields(t *testing.T) {
	t.Parallel()

	good := func() *mms.CampaignRequest {
		return &mms.CampaignRequest{MediaURL: media, Recipients: plainRecipients("+12025550101")}
	}
	for _, tc := range []struct {
		name  string
		edit  func(r *mms.CampaignRequest)
		field string
	}{
		{"negative rate", func(r *mms.CampaignRequest) { r.RateLimit = -1 }, "rate_limit"},
		{"NaN rate", func(r *mms.CampaignRequest) { r.RateLimit = math.NaN() }, "rate_limit"},
		{"infinite rate", func(r *mms.CampaignRequest) { r.RateLimit = math.Inf(1) }, "rate_limit"},
		{"vanishing rate", func(r *mms.CampaignRequest) { r.RateLimit = 1e-300 }, "rate_limit"},
		{"rate below one per 100 s", func(r *mms.CampaignRequest) { r.RateLimit = 0.009 }, "rate_limit"},
		{"huge rate", func(r *mms.CampaignRequest) { r.RateLimit = 1e9 }, "rate_limit"},
		{"long name", func(r *mms.CampaignRequest) { r.Name = strings.Repeat("é", mms.MaxCampaignName+1) }, "name"},
		{"control in name", func(r *mms.CampaignRequest) { r.Name = "a\nb" }, "name"},
		{"bad priority", func(r *mms.CampaignRequest) { r.Priority = "urgent" }, "priority"},
		{"no media", func(r *mms.CampaignRequest) { r.MediaURL = "" }, "media_url"},
		{"bad default name", func(r *mms.CampaignRequest) { r.Parameters = map[string]string{"bad name": "x"} },
			"parameters.bad name"},
		{"long default", func(r *mms.CampaignRequest) {
			r.Parameters = map[string]string{"n": strings.Repeat("x", mms.MaxParamValue+1)}
		}, "parameters.n"},
		{"bad placeholder", func(r *mms.CampaignRequest) { r.Message = "Hi ${first name}" }, "message"},
		{"empty placeholder", func(r *mms.CampaignRequest) { r.Message = "Hi ${}" }, "message"},
		{"send_at past", func(r *mms.CampaignRequest) { r.SendAt = "2020-01-01T00:00:00Z" }, "send_at"},
	} {
		r := good()
		tc.edit(r)
		plan, err := r.Validate(rules)
		require.Nil(t, plan, tc.name)
		require.Equal(t, tc.field, fieldOf(t, err).Field, "%s: %v", tc.name, err)
	}

	// Every problem is reported, not just the first.
	r := good()
	r.RateLimit, r.Name, r.MediaURL = -2, strings.Repeat("n", 201), ""
	_, err := r.Validate(rules)
	require.ElementsMatch(t, []string{"rate_limit", "name", "media_url"}, fieldsOf(t, err))

	// The limits themselves are allowed.
	r = good()
	r.Name = strings.Repeat("é", mms.MaxCampaignName)
	r.RateLimit = 0.5
	plan, err := r.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, 0.5, plan.RateLimit)
	require.Equal(t, r.Name, plan.Name)
	r.RateLimit = 0
	plan, err = r.Validate(rules)
	require.NoError(t, err, "no rate limit is no cap")
	require.Zero(t, plan.RateLimit)
}

func TestCampaignValidatePlaceholdersNeedValues(t *testing.T) {
	t.Parallel()

	recips := mms.CampaignRecipients{
		{To: "+12025550101", Parameters: map[string]string{"name": "Ann", "code": "A1"}},
		{To: "+12025550102", Parameters: map[string]string{"code": "B2"}}, // no name
		{To: "+12025550103", Parameters: map[string]string{"name": "Cy"}}, // no code
		{To: "+12025550104", Parameters: map[string]string{"name": "Di", "code": "D4", "bad key": "x"}},
		{To: "+12025550105", Parameters: map[string]string{"name": "Ed", "code": "E\x01"}},
	}
	req := &mms.CampaignRequest{MediaURL: media, Message: "Hi ${name}, your code is ${code}. ${name}!",
		Recipients: recips}
	plan, err := req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, []string{"+12025550101"}, plan.Recipients)
	require.Equal(t, 4, plan.InvalidCount)
	msgs := map[int]string{}
	for _, r := range plan.Invalid {
		msgs[*r.Index] = r.Message
	}
	require.Contains(t, msgs[1], "${name}")
	require.Contains(t, msgs[2], "${code}")
	require.Contains(t, msgs[3], "parameters.bad key")
	require.Contains(t, msgs[4], "parameters.code")

	// With a default, a recipient without the value is fine.
	req.Parameters = map[string]string{"name": "friend"}
	plan, err = req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, []string{"+12025550101", "+12025550102"}, plan.Recipients)
	require.Equal(t, map[string]string{"name": "friend"}, plan.Defaults)

	// No recipient has it and no default: nobody is left.
	req = &mms.CampaignRequest{MediaURL: media, Message: "Hi ${name}", Recipients: plainRecipients("+12025550101")}
	_, err = req.Validate(rules)
	require.ErrorIs(t, err, mms.ErrNoRecipients)
}

func TestCampaignBatch(t *testing.T) {
	t.Parallel()

	req := &mms.CampaignRequest{
		MediaURL: media, Message: "Hi ${name}", Subject: "Sale", From: "+14155552671",
		Parameters: map[string]string{"name": "friend"},
		Recipients: mms.CampaignRecipients{
			{To: "+12025550101", Parameters: map[string]string{"name": "Ann", "city": "Paris"}},
			{To: "+12025550102"},
			{To: "+12025550103", Parameters: map[string]string{"name": "Bo"}},
			{To: "+12025550101", Parameters: map[string]string{"name": "Ann again"}}, // repeat
			{To: "+12025550104", Parameters: map[string]string{"city": "Rome"}},
			{To: "+12025550105"},
		},
	}
	plan, err := req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, []string{"+12025550101", "+12025550102", "+12025550103", "+12025550104", "+12025550105"},
		plan.Recipients)

	b := plan.Batch(0, 2)
	require.Equal(t, []string{"+12025550101", "+12025550102"}, b.To)
	require.Equal(t, map[string]map[string]string{
		"name": {"+12025550101": "Ann", "default": "friend"},
		"city": {"+12025550101": "Paris"},
	}, b.Parameters)
	require.Equal(t, media, b.MediaURL)
	require.Equal(t, "Hi ${name}", b.Text)
	require.Equal(t, "Sale", b.Subject)
	require.Equal(t, "+14155552671", b.From)
	require.Equal(t, plan.Content.ExpireAt, b.ExpireAt)
	require.False(t, b.ExpireAt.IsZero())

	b = plan.Batch(2, 4)
	require.Equal(t, []string{"+12025550103", "+12025550104"}, b.To)
	require.Equal(t, map[string]map[string]string{
		"name": {"+12025550103": "Bo", "default": "friend"},
		"city": {"+12025550104": "Rome"},
	}, b.Parameters, "the repeat's values were dropped with it")

	// A batch where nobody has a value for a name without a default does
	// not carry that name at all: Sinch would get an empty object.
	b = plan.Batch(4, 5)
	require.Equal(t, []string{"+12025550105"}, b.To)
	require.Equal(t, map[string]map[string]string{"name": {"default": "friend"}}, b.Parameters)

	// Batches do not share their maps.
	b1, b2 := plan.Batch(0, 2), plan.Batch(0, 2)
	b1.Parameters["name"]["default"] = "changed"
	require.Equal(t, "friend", b2.Parameters["name"]["default"])
	require.Equal(t, "friend", plan.Defaults["name"])

	// A campaign without values has none in its batches.
	plain := &mms.CampaignRequest{MediaURL: media, Recipients: plainRecipients("+12025550101", "+12025550102")}
	plan, err = plain.Validate(rules)
	require.NoError(t, err)
	require.Nil(t, plan.Batch(0, 2).Parameters)
	require.Equal(t, []string{"+12025550102"}, plan.Batch(1, 2).To)
}

// A refused recipient's parameter names must not reach the batches of the
// others: a name that is not even valid would go to Sinch in every batch.
func TestCampaignBatchIgnoresRefusedRecipientsValues(t *testing.T) {
	t.Parallel()

	req := &mms.CampaignRequest{MediaURL: media, Recipients: mms.CampaignRecipients{
		{To: "+12025550101", Parameters: map[string]string{"bad name!": "x"}}, // refused
		{To: "12", Parameters: map[string]string{"nick": "N"}},                // refused
		{To: "+12025550102"},
		{To: "+12025550103"},
	}}
	plan, err := req.Validate(rules)
	require.NoError(t, err)
	require.Equal(t, 2, plan.InvalidCount)
	require.Equal(t, []string{"+12025550102", "+12025550103"}, plan.Recipients)
	require.Nil(t, plan.Batch(0, 2).Parameters)
}

func TestReadRecipientsCSV(t *testing.T) {
	t.Parallel()

	read := func(t *testing.T, csv string) (*mms.CampaignRequest, error) {
		t.Helper()
		r := &mms.CampaignRequest{MediaURL: media}
		return r, r.ReadRecipientsCSV(strings.NewReader(csv))
	}

	t.Run("numbers only", func(t *testing.T) {
		r, err := read(t, "+12025550101\n 202-555-0102 \r\n\n\n+12025550103")
		require.NoError(t, err)
		require.Equal(t, plainRecipients("+12025550101", "202-555-0102", "+12025550103"), r.Recipients)
		require.Nil(t, r.CSVColumns)
	})

	t.Run("header with parameters", func(t *testing.T) {
		r, err := read(t, " Phone , first ,last\r\n+12025550101,Ann, Lee \n202 555 0102,,Bo\n")
		require.NoError(t, err)
		require.Equal(t, []string{"first", "last"}, r.CSVColumns)
		require.Equal(t, mms.CampaignRecipients{
			{To: "+12025550101", Parameters: map[string]string{"first": "Ann", "last": " Lee "}},
			{To: "202 555 0102", Parameters: map[string]string{"first": "", "last": "Bo"}},
		}, r.Recipients)
		for _, h := range []string{"to", "TO", "number", "phone_number", "msisdn", "mobile", "recipient"} {
			r, err := read(t, h+"\n+12025550101\n")
			require.NoError(t, err, h)
			require.Equal(t, plainRecipients("+12025550101"), r.Recipients, h)
		}
	})

	t.Run("byte order mark", func(t *testing.T) {
		for _, csv := range []string{
			"\uFEFFphone,name\n+12025550101,Ann\n",
			"\uFEFF\"phone\",\"name\"\n\"+12025550101\",\"Ann\"\n",
		} {
			r, err := read(t, csv)
			require.NoError(t, err, "%q", csv)
			require.Equal(t, []string{"name"}, r.CSVColumns, "%q", csv)
			require.Equal(t, mms.CampaignRecipients{
				{To: "+12025550101", Parameters: map[string]string{"name": "Ann"}}}, r.Recipients)
		}
		r, err := read(t, "\uFEFF+12025550101\n+12025550102\n")
		require.NoError(t, err)
		require.Equal(t, plainRecipients("+12025550101", "+12025550102"), r.Recipients)
	})

	t.Run("header after blank lines", func(t *testing.T) {
		r, err := read(t, "\n\nphone,name\n+12025550101,Ann\n")
		require.NoError(t, err)
		require.Equal(t, []string{"name"}, r.CSVColumns)
		require.Len(t, r.Recipients, 1)
	})

	t.Run("blank and space-only lines", func(t *testing.T) {
		r, err := read(t, "phone,name\n\n+12025550101,Ann\n   \n\t\n+12025550102,Bo\n  ")
		require.NoError(t, err)
		require.Len(t, r.Recipients, 2)
	})

	t.Run("quoted fields", func(t *testing.T) {
		r, err := read(t, "to,note\n\"+1 202 555 0101\",\"Smith, \"\"Jo\"\"\nsecond line\"\nbad,x\n")
		require.NoError(t, err)
		require.Equal(t, "Smith, \"Jo\"\nsecond line", r.Recipients[0].Parameters["note"])
		plan, err := r.Validate(rules)
		require.NoError(t, err)
		require.Len(t, plan.Invalid, 1)
		require.Equal(t, 4, plan.Invalid[0].Line, "the line the bad row starts on, after a two-line field")
		require.Nil(t, plan.Invalid[0].Index)
	})

	t.Run("lines of refused rows", func(t *testing.T) {
		r, err := read(t, "phone\n+12025550101\n\nnope\n+12025550101\n\n\n12\n")
		require.NoError(t, err)
		plan, err := r.Validate(rules)
		require.NoError(t, err)
		require.Equal(t, 1, plan.Duplicates)
		require.Len(t, plan.Invalid, 2)
		require.Equal(t, 4, plan.Invalid[0].Line)
		require.Equal(t, "nope", plan.Invalid[0].Value)
		require.Equal(t, 8, plan.Invalid[1].Line)
	})

	t.Run("wrong column counts", func(t *testing.T) {
		for _, tc := range []struct{ csv, msg string }{
			{"+12025550101\n+12025550102,x\n", "line 2: has 2 columns, expected 1"},
			{"phone,a,b\n+12025550101,1,2\n\n+12025550102,1\n", "line 4: has 2 columns, expected 3"},
			{"phone,a\n+12025550101,1,2\n", "line 2: has 3 columns, expected 2"},
			{"phone,a\n+12025550101,\"x\"y\n", "line 2"},
			{"phone,a\n\"+12025550101,x\n", "line 2"},
			{"phone,bad name\n+12025550101,x\n", "line 1: column 2"},
			{"\n\nphone,a,bad name\n+12025550101,x,y\n", "line 3: column 3"},
			{"phone,a,a\n+12025550101,x,y\n", `column "a" appears twice`},
			{"phone,a,\n+12025550101,x,y\n", "column 3"},
		} {
			_, err := read(t, tc.csv)
			f := fieldOf(t, err)
			require.Equal(t, "recipients", f.Field, "%q", tc.csv)
			require.Contains(t, f.Message, tc.msg, "%q", tc.csv)
		}
	})

	t.Run("not UTF-8", func(t *testing.T) {
		_, err := read(t, "phone,name\n+12025550101,Ann\n+12025550102,Ren\xe9\n")
		f := fieldOf(t, err)
		require.Equal(t, "recipients", f.Field)
		require.Contains(t, f.Message, "line 3")
		require.Contains(t, f.Message, "UTF-8")
	})

	t.Run("header only", func(t *testing.T) {
		r, err := read(t, "phone,name\n")
		require.NoError(t, err)
		require.Empty(t, r.Recipients)
		_, err = r.Validate(rules)
		require.Equal(t, "recipients", fieldOf(t, err).Field)
	})

	t.Run("row limit", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("phone,n\n")
		for i := range mms.MaxCampaignRecipients {
			fmt.Fprintf(&b, "+1202555%04d,%d\n", i%10_000, i)
		}
		r, err := read(t, b.String())
		require.NoError(t, err, "exactly the limit is allowed")
		require.Len(t, r.Recipients, mms.MaxCampaignRecipients)
		require.Equal(t, "99999", r.Recipients[mms.MaxCampaignRecipients-1].Parameters["n"])

		b.WriteString("\n\n") // blank lines do not count
		r, err = read(t, b.String())
		require.NoError(t, err)
		require.Len(t, r.Recipients, mms.MaxCampaignRecipients)

		// One line more reads, but Validate refuses it, as it does the same
		// in JSON: 422, with the count.
		b.WriteString("+12025550101,x\n")
		r, err = read(t, b.String())
		require.NoError(t, err)
		require.Len(t, r.Recipients, mms.MaxCampaignRecipients, "the extra line is not kept")
		r.MediaURL = "https://cdn.example.com/a.jpg"
		_, err = r.Validate(rules)
		f := fieldOf(t, err)
		require.Equal(t, "recipients", f.Field)
		require.Contains(t, f.Message, "has 100001 entries")
	})
}

func TestReadCampaignFields(t *testing.T) {
	t.Parallel()

	r := &mms.CampaignRequest{}
	err := r.ReadCampaignFields(url.Values{
		"name": {"Spring"}, "media_url": {media}, "message": {"Hi ${first}"}, "subject": {"S"},
		"from": {"+14155552671"}, "priority": {"normal"}, "rate_limit": {"12.5"},
		"send_at": {"2030-01-01T10:00:00Z"}, "expire_at": {"2030-01-02T10:00:00Z"}, "reference": {"ref-1"},
		"parameters.first": {"friend"}, "parameters.last": {""},
	})
	require.NoError(t, err)
	require.Equal(t, mms.CampaignRequest{
		Name: "Spring", MediaURL: media, Message: "Hi ${first}", Subject: "S", From: "+14155552671",
		Priority: mms.PriorityNormal, RateLimit: 12.5, SendAt: "2030-01-01T10:00:00Z",
		ExpireAt: "2030-01-02T10:00:00Z", Reference: "ref-1",
		Parameters: map[string]string{"first": "friend", "last": ""},
	}, *r)

	for _, tc := range []struct {
		v     url.Values
		field string
		msg   string
	}{
		{url.Values{"colour": {"red"}}, "colour", "not a known field"},
		{url.Values{"parameters": {"x"}}, "parameters", "not a known field"},
		{url.Values{"recipients": {"+12025550101"}}, "recipients", "not a known field"},
		{url.Values{"Name": {"x"}}, "Name", "not a known field"},
		{url.Values{"name": {"a", "b"}}, "name", "more than once"},
		{url.Values{"parameters.x": {"a", "b"}}, "parameters.x", "more than once"},
		{url.Values{"rate_limit": {"fast"}}, "rate_limit", "number"},
		{url.Values{"rate_limit": {""}}, "rate_limit", "number"},
		{url.Values{"rate_limit": {"1e999"}}, "rate_limit", "number"},
		{url.Values{"message": {"Ren\xe9"}}, "message", "UTF-8"},
	} {
		r := &mms.CampaignRequest{}
		err := r.ReadCampaignFields(tc.v)
		f := fieldOf(t, err)
		require.Equal(t, tc.field, f.Field, "%v", tc.v)
		require.Contains(t, f.Message, tc.msg, "%v", tc.v)
	}

	// What the reader takes, Validate still checks.
	for _, tc := range []struct {
		v     url.Values
		field string
	}{
		{url.Values{"rate_limit": {"NaN"}}, "rate_limit"},
		{url.Values{"rate_limit": {"-Inf"}}, "rate_limit"},
		{url.Values{"rate_limit": {"-3"}}, "rate_limit"},
		{url.Values{"parameters.": {"x"}}, "parameters."},
		{url.Values{"parameters.bad name": {"x"}}, "parameters.bad name"},
		{url.Values{"priority": {"urgent"}}, "priority"},
	} {
		r := &mms.CampaignRequest{MediaURL: media, Recipients: plainRecipients("+12025550101")}
		require.NoError(t, r.ReadCampaignFields(tc.v), "%v", tc.v)
		_, err := r.Validate(rules)
		require.Equal(t, []string{tc.field}, fieldsOf(t, err), "%v", tc.v)
	}
}

// The whole path of a CSV campaign: fields, then the CSV, then Validate.
func TestCampaignCSVEndToEnd(t *testing.T) {
	t.Parallel()

	now := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	rl := rules
	rl.Now = func() time.Time { return now }
	r := &mms.CampaignRequest{}
	require.NoError(t, r.ReadCampaignFields(url.Values{"media_url": {media}, "message": {"Hi ${first}"},
		"send_at": {"2030-01-01T11:00:00+01:00"}, "parameters.first": {"you"}}))
	require.NoError(t, r.ReadRecipientsCSV(strings.NewReader(
		"\uFEFFnumber,first\n+12025550101,Ann\n+12025550102,\n202.555.0101,Dup\n")))
	plan, err := r.Validate(rl)
	require.NoError(t, err)
	require.Equal(t, []string{"+12025550101", "+12025550102"}, plan.Recipients)
	require.Equal(t, 1, plan.Duplicates)
	require.True(t, plan.Content.SendAt.Equal(time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)))
	require.Equal(t, map[string]map[string]string{
		"first": {"+12025550101": "Ann", "+12025550102": "", "default": "you"},
	}, plan.Batch(0, 2).Parameters, "an empty cell is a value: the default does not replace it")
	require.False(t, errors.Is(err, mms.ErrNoRecipients))
}

// TestCampaignParameterNamesCapped: each parameter name costs a value per
// recipient, so a campaign may use only a few; a request using many is
// refused before any of that is built.
func TestCampaignParameterNamesCapped(t *testing.T) {
	recs := make(mms.CampaignRecipients, 2000)
	for i := range recs {
		recs[i] = mms.CampaignRecipient{To: fmt.Sprintf("+1202555%04d", i),
			Parameters: map[string]string{fmt.Sprintf("p%d", i): "v"}}
	}
	r := &mms.CampaignRequest{MediaURL: "https://cdn.example.com/a.jpg", Recipients: recs}
	_, err := r.Validate(rules)
	var verr *mms.ValidationError
	require.ErrorAs(t, err, &verr)
	require.Equal(t, "recipients", verr.Fields[0].Field)
	require.Contains(t, verr.Fields[0].Message, "parameter names")

	header := "phone"
	for i := range mms.MaxCampaignParams + 1 {
		header += fmt.Sprintf(",c%d", i)
	}
	err = (&mms.CampaignRequest{}).ReadRecipientsCSV(strings.NewReader(header + "\n"))
	require.ErrorAs(t, err, &verr)
	require.Contains(t, verr.Fields[0].Message, "parameter columns")
}
