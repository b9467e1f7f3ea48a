package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/api"
	"github.com/mmsgate/mmsgate/internal/api/apidoc"
)

// TestOpenAPIExamples fetches the OpenAPI document from a running API and
// holds it to what that API does:
//
//   - every example in the document matches its schema;
//   - every request example is sent to its operation and must be accepted
//     (2xx), with an answer that matches the documented response;
//   - then every operation without a request body is called on what those
//     requests created (the jobs, campaign and suppression named by their
//     Location headers), and must answer as documented.
//
// No worker runs, so nothing is sent to Sinch and no callback is posted;
// callback URLs are accepted because client callbacks are on, and checked
// only for their form.
func TestOpenAPIExamples(t *testing.T) {
	t.Parallel()
	s := setup(t, options{noWorker: true, clientCallbacks: true, reports: true})

	resp, err := http.Get(s.url + "/openapi.yaml") // no API key
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Equal(t, api.OpenAPIContentType, resp.Header.Get("Content-Type"))
	doc, err := apidoc.Parse(raw)
	require.NoError(t, err, "the served document")
	v := &docChecker{doc: doc}

	// Every example matches its schema.
	n := v.checkExamples(t)
	require.Greater(t, n, 20, "too few examples found: is the walk broken?")

	ops, err := apidoc.Operations(doc)
	require.NoError(t, err)
	// Each documented path template that a Location header named, with
	// the paths it named, in the order of the examples.
	known := map[string][]string{}
	sent := 0
	for _, o := range ops {
		if o.Op["requestBody"] == nil {
			continue
		}
		// The media check fetches its URL from the Internet, which tests
		// must not reach; internal/api's TestOpenAPIMediaCheckExamples sends
		// these examples to the handler with a checker that fetches nothing.
		if o.Path == "/api/mms/media/check" {
			continue
		}
		body := v.deref(t, o.Op["requestBody"])
		content := body["content"].(map[string]any)
		for _, mt := range slices.Sorted(maps.Keys(content)) {
			media := content[mt].(map[string]any)
			examples, err := apidoc.Examples(doc, media)
			require.NoError(t, err, "%s %s", o, mt)
			for _, name := range slices.Sorted(maps.Keys(examples)) {
				ex := examples[name]
				what := fmt.Sprintf("%s %s example %s", o, mt, name)
				reqBody, ctype := v.encode(t, what, mt, media, ex)
				path := fillPath(t, o, firstOf(known), true)
				if mt != "application/json" {
					path += exampleQuery(o)
				}
				var hdr []string
				if hasHeader(o, "X-Sinch-Webhook-Signature") {
					hdr = sign(webhookSecret, reqBody) // as Sinch signs; no API key
				}
				r := s.do(t, o.Method, path, ctype, reqBody, hdr...)
				require.True(t, r.status >= 200 && r.status < 300,
					"%s was refused: %d %v\nbody: %s", what, r.status, r.body, reqBody)
				v.checkAnswer(t, what, o, r)
				sent++
				if loc := r.header.Get("Location"); loc != "" {
					tmpl := v.templateOf(t, loc)
					require.NotEmpty(t, tmpl, "%s: Location %s is no documented path", what, loc)
					known[tmpl] = append(known[tmpl], loc)
				}
			}
		}
	}
	require.Greater(t, sent, 5, "too few request examples sent")

	// The rest: reads first, then other calls, then deletes, so that what
	// the examples created is there to be read. Reads read everything the
	// examples created, so that each kind of job and campaign is compared
	// with its schema; the others take the first.
	order := map[string]int{http.MethodGet: 0, http.MethodPost: 1, http.MethodPut: 1, http.MethodDelete: 2}
	rest := slices.DeleteFunc(slices.Clone(ops), func(o apidoc.Operation) bool { return o.Op["requestBody"] != nil })
	slices.SortStableFunc(rest, func(a, b apidoc.Operation) int { return order[a.Method] - order[b.Method] })
	for _, o := range rest {
		fills := []map[string]string{firstOf(known)}
		if o.Method == http.MethodGet {
			fills = eachOf(known)
		}
		done := map[string]bool{}
		for _, fill := range fills {
			path := fillPath(t, o, fill, false)
			if done[path] {
				continue
			}
			done[path] = true
			r := s.do(t, o.Method, path, "", "")
			what := fmt.Sprintf("%s (%s)", o, path)
			if o.Method == http.MethodGet || o.Method == http.MethodDelete {
				require.True(t, r.status >= 200 && r.status < 300, "%s: %d %v", what, r.status, r.body)
			}
			v.checkAnswer(t, what, o, r)
		}
	}
}

// firstOf takes the first path of each template.
func firstOf(known map[string][]string) map[string]string {
	out := make(map[string]string, len(known))
	for tmpl, paths := range known {
		out[tmpl] = paths[0]
	}
	return out
}

// eachOf returns one filling for each path known, of any template (and
// the first of every other template), or one filling if none is known.
func eachOf(known map[string][]string) []map[string]string {
	out := []map[string]string{firstOf(known)}
	for _, tmpl := range slices.Sorted(maps.Keys(known)) {
		for _, p := range known[tmpl][1:] {
			fill := firstOf(known)
			fill[tmpl] = p
			out = append(out, fill)
		}
	}
	return out
}

// docChecker reads an OpenAPI document and checks values against its
// schemas. It knows the parts of JSON Schema the document uses; for an
// object schema that lists properties but says nothing of others, any
// other property is an error, so that a field added to an answer without
// being described is found.
type docChecker struct{ doc map[string]any }

func (v *docChecker) deref(t *testing.T, n any) map[string]any {
	t.Helper()
	m, err := apidoc.Deref(v.doc, n)
	require.NoError(t, err)
	return m
}

func hasHeader(o apidoc.Operation, name string) bool {
	for _, p := range o.Params {
		if p["in"] == "header" && p["name"] == name {
			return true
		}
	}
	return false
}

// checkExamples checks every example in the document against its schema
// and returns how many it checked. An object with both "schema" and
// examples is a parameter, header or media type; one with "example" but no
// schema is a schema itself.
func (v *docChecker) checkExamples(t *testing.T) int {
	t.Helper()
	count := 0
	apidoc.Walk(v.doc, func(at string, m map[string]any) {
		schema, hasSchema := m["schema"]
		if !hasSchema {
			schema = m
		}
		_, hasExample := m["example"]
		_, hasExamples := m["examples"]
		if !hasExample && !(hasExamples && hasSchema) {
			return
		}
		examples, err := apidoc.Examples(v.doc, m)
		require.NoError(t, err, at)
		for _, name := range slices.Sorted(maps.Keys(examples)) {
			if errs := v.validate(t, schema, examples[name], "$"); len(errs) > 0 {
				t.Errorf("%s: %s does not match its schema:\n  %s", at, name, strings.Join(errs, "\n  "))
			}
			count++
		}
	})
	return count
}

// encode writes an example as a body of media type mt.
func (v *docChecker) encode(t *testing.T, what, mt string, media map[string]any, ex any) (body, ctype string) {
	t.Helper()
	switch mt {
	case "application/json":
		b, err := json.Marshal(ex)
		require.NoError(t, err, what)
		return string(b), mt
	case "text/csv":
		s, ok := ex.(string)
		require.True(t, ok, "%s: a CSV example must be a string", what)
		return s, mt
	case "multipart/form-data":
		fields, ok := ex.(map[string]any)
		require.True(t, ok, "%s: a form example must be an object", what)
		schema := v.deref(t, media["schema"])
		props, _ := schema["properties"].(map[string]any)
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			val := fmt.Sprint(fields[name])
			if p := v.deref(t, props[name]); p != nil && p["format"] == "binary" {
				fw, err := w.CreateFormFile(name, name+".csv")
				require.NoError(t, err)
				_, _ = fw.Write([]byte(val))
				continue
			}
			require.NoError(t, w.WriteField(name, val))
		}
		require.NoError(t, w.Close())
		return buf.String(), w.FormDataContentType()
	}
	t.Fatalf("%s: no way to send an example of %s; teach this test", what, mt)
	return "", ""
}

// exampleQuery is the query made of the operation's query parameters that
// have examples, as sent with a body that is not JSON.
func exampleQuery(o apidoc.Operation) string {
	q := url.Values{}
	for _, p := range o.Params {
		if p["in"] == "query" && p["example"] != nil {
			q.Set(p["name"].(string), fmt.Sprint(p["example"]))
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// fillPath fills the operation's path parameters. A path below one that a
// Location header named (a job, a campaign, a suppression) takes its
// values from it; a parameter named secret is the report endpoint's; any
// other takes its documented example (only for requests with a body, which
// create what later calls use).
func fillPath(t *testing.T, o apidoc.Operation, known map[string]string, useExamples bool) string {
	t.Helper()
	path := o.Path
	for _, tmpl := range slices.Sorted(maps.Keys(known)) {
		if rest, ok := strings.CutPrefix(path, tmpl); ok && (rest == "" || rest[0] == '/') {
			path = known[tmpl] + rest
			break
		}
	}
	for _, p := range o.Params {
		name, _ := p["name"].(string)
		if p["in"] != "path" || !strings.Contains(path, "{"+name+"}") {
			continue
		}
		var val string
		switch {
		case name == "secret":
			val = reportSecret
		case useExamples && p["example"] != nil:
			val = fmt.Sprint(p["example"])
		default:
			t.Fatalf("%s: nothing to fill {%s} with: no example request created one", o, name)
		}
		// A + in a path segment is sent as %2B, as the API asks.
		path = strings.ReplaceAll(path, "{"+name+"}", strings.ReplaceAll(url.PathEscape(val), "+", "%2B"))
	}
	require.NotRegexp(t, apidoc.PathParam, path, "%s: a path parameter left unfilled", o)
	return path
}

// templateOf returns the documented path template a path matches.
func (v *docChecker) templateOf(t *testing.T, path string) string {
	t.Helper()
	segs := strings.Split(path, "/")
	for p := range v.doc["paths"].(map[string]any) {
		tsegs := strings.Split(p, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		match := true
		for i, ts := range tsegs {
			if ts != segs[i] && !(apidoc.PathParam.MatchString(ts) && segs[i] != "") {
				match = false
				break
			}
		}
		if match {
			return p
		}
	}
	return ""
}

// checkAnswer checks that the operation documents the answer's status, its
// required headers and its content type, and that a JSON body matches the
// documented schema.
func (v *docChecker) checkAnswer(t *testing.T, what string, o apidoc.Operation, r response) {
	t.Helper()
	doc, err := o.Response(v.doc, r.status)
	require.NoError(t, err, "%s answered %d: %v", what, r.status, r.body)

	hdrs, _ := doc["headers"].(map[string]any)
	for name, h := range hdrs {
		h := v.deref(t, h)
		got := r.header.Get(name)
		if got == "" {
			require.NotEqual(t, true, h["required"], "%s: header %s missing", what, name)
			continue
		}
		var val any = got
		if s := v.deref(t, h["schema"]); s != nil && (s["type"] == "integer" || s["type"] == "number") {
			f, err := strconv.ParseFloat(got, 64)
			require.NoError(t, err, "%s: header %s: %q", what, name, got)
			val = f
		}
		if errs := v.validate(t, h["schema"], val, name); len(errs) > 0 {
			t.Errorf("%s: header %s: %s", what, name, strings.Join(errs, "; "))
		}
	}

	content, _ := doc["content"].(map[string]any)
	if len(content) == 0 {
		return
	}
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	require.NoError(t, err, "%s: Content-Type %q", what, r.header.Get("Content-Type"))
	m, ok := content[mt].(map[string]any)
	require.True(t, ok, "%s: answered %s, documented %v", what, mt, slices.Collect(maps.Keys(content)))
	if mt != "application/json" {
		return
	}
	require.NotNil(t, r.body, "%s: no JSON body", what)
	if errs := v.validate(t, m["schema"], r.body, "$"); len(errs) > 0 {
		t.Errorf("%s: the answer does not match its documented schema:\n  %s\nanswer: %v",
			what, strings.Join(errs, "\n  "), r.body)
	}
}

// validate checks val against schema and lists what is wrong, each with its
// path in val.
func (v *docChecker) validate(t *testing.T, schema, val any, at string) []string {
	t.Helper()
	s := v.deref(t, schema)
	if len(s) == 0 {
		return nil // any value
	}
	if val == nil {
		if s["nullable"] == true {
			return nil
		}
		return []string{at + ": null, which the schema does not allow"}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }

	for _, sub := range apidoc.List(s["allOf"]) {
		errs = append(errs, v.validate(t, sub, val, at)...)
	}
	if alts := apidoc.List(s["oneOf"]); len(alts) > 0 {
		matched := 0
		var first []string
		for _, alt := range alts {
			if e := v.validate(t, alt, val, at); len(e) == 0 {
				matched++
			} else if first == nil {
				first = e
			}
		}
		if matched != 1 {
			bad("matches %d of the %d schemas of oneOf", matched, len(alts))
			errs = append(errs, first...)
		}
	}
	inEnum := func(e any) bool { return sameJSON(e, val) }
	if enum := apidoc.List(s["enum"]); len(enum) > 0 && !slices.ContainsFunc(enum, inEnum) {
		bad("%v is not one of %v", val, enum)
	}

	typ, _ := s["type"].(string)
	if typ == "" && s["properties"] != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		obj, ok := val.(map[string]any)
		if !ok {
			bad("%T where an object is expected", val)
			break
		}
		for _, r := range apidoc.List(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				bad("required property %s is missing", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		extra := s["additionalProperties"]
		for k, pv := range obj {
			if ps, ok := props[k]; ok {
				errs = append(errs, v.validate(t, ps, pv, at+"."+k)...)
				continue
			}
			switch e := extra.(type) {
			case bool:
				if !e {
					bad("property %s is not allowed", k)
				}
			case map[string]any:
				errs = append(errs, v.validate(t, e, pv, at+"."+k)...)
			default:
				if props != nil {
					bad("property %s is not described", k)
				}
			}
		}
		if n, ok := numeric(s["minProperties"]); ok && float64(len(obj)) < n {
			bad("has %d properties, fewer than %v", len(obj), n)
		}
	case "array":
		arr, ok := val.([]any)
		if !ok {
			bad("%T where an array is expected", val)
			break
		}
		if n, ok := numeric(s["minItems"]); ok && float64(len(arr)) < n {
			bad("has %d items, fewer than %v", len(arr), n)
		}
		if n, ok := numeric(s["maxItems"]); ok && float64(len(arr)) > n {
			bad("has %d items, more than %v", len(arr), n)
		}
		for i, el := range arr {
			errs = append(errs, v.validate(t, s["items"], el, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		str, ok := val.(string)
		if !ok {
			bad("%T where a string is expected", val)
			break
		}
		n := float64(utf8.RuneCountInString(str))
		if m, ok := numeric(s["minLength"]); ok && n < m {
			bad("%q is shorter than %v", str, m)
		}
		if m, ok := numeric(s["maxLength"]); ok && n > m {
			bad("%q is longer than %v", str, m)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			bad("%q does not match %s", str, p)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				bad("%q is not an RFC 3339 time", str)
			}
		}
	case "integer", "number":
		f, ok := numeric(val)
		if !ok {
			bad("%T where a number is expected", val)
			break
		}
		if typ == "integer" && f != math.Trunc(f) {
			bad("%v is not an integer", val)
		}
		if m, ok := numeric(s["minimum"]); ok && f < m {
			bad("%v is below %v", val, m)
		}
		if m, ok := numeric(s["maximum"]); ok && f > m {
			bad("%v is above %v", val, m)
		}
	case "boolean":
		if _, ok := val.(bool); !ok {
			bad("%T where true or false is expected", val)
		}
	case "":
	default:
		bad("the schema has an unknown type %q", typ)
	}
	return errs
}

func numeric(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
