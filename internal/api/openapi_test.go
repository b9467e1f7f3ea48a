package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/api/apidoc"
	"github.com/mmsgate/mmsgate/internal/callback"
	"github.com/mmsgate/mmsgate/internal/campaign"
	"github.com/mmsgate/mmsgate/internal/config"
	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/suppress"
)

// These tests hold internal/api/openapi.yaml to the code: every route New
// registers is described and nothing else is, the document is well formed,
// the security it declares is what the server enforces, and the schemas
// name the fields of the Go types the handlers decode and answer with.
// internal/app's TestOpenAPIExamples sends the document's examples to a
// running API.

const (
	docTestKey    = "openapi-test-key-0123456789"
	docTestSecret = "openapi-report-secret-0123"
)

// loadDoc parses the embedded document (see apidoc.Parse: every mapping
// has string keys).
func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	doc, err := apidoc.Parse(openAPIDoc)
	require.NoError(t, err, "openapi.yaml")
	return doc
}

// deref returns the object n stands for, following $refs.
func deref(t *testing.T, doc map[string]any, n any) map[string]any {
	t.Helper()
	m, err := apidoc.Deref(doc, n)
	require.NoError(t, err)
	return m
}

func operations(t *testing.T, doc map[string]any) []apidoc.Operation {
	t.Helper()
	ops, err := apidoc.Operations(doc)
	require.NoError(t, err)
	return ops
}

// secured reports whether the operation needs an API key: its own
// security, or else the document's, has no empty requirement.
func secured(doc map[string]any, o apidoc.Operation) bool {
	sec, ok := o.Op["security"]
	if !ok {
		sec = doc["security"]
	}
	reqs := apidoc.List(sec)
	if len(reqs) == 0 {
		return false
	}
	for _, r := range reqs {
		if m, _ := r.(map[string]any); len(m) == 0 {
			return false
		}
	}
	return true
}

// testServer is the API as New builds it with the delivery-report endpoint
// and the queue UI on. Redis is a private in-memory one (for /readyz); the
// queue UI is given an address nothing listens on and is never called.
func testServer(t *testing.T, deps Deps) *echo.Echo {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	deps.Redis, deps.Log = rdb, zerolog.Nop()
	e := New(Config{
		APIKeys:      []string{docTestKey},
		MaxBodyBytes: 1 << 20,
		RedisTimeout: time.Second,
		Reports:      &ReportsConfig{Path: defaultReportPath(t), URLSecret: docTestSecret},
		Ops: &OpsConfig{User: "operator", Password: "operator-password",
			Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}},
	}, deps)
	t.Cleanup(func() { _ = e.Server.Shutdown(context.Background()) }) // closes the queue UI's clients
	return e
}

// defaultReportPath is SINCH_REPORT_PATH's default, which the document
// uses for the report endpoint.
func defaultReportPath(t *testing.T) string {
	t.Helper()
	f, ok := reflect.TypeFor[config.API]().FieldByName("ReportPath")
	require.True(t, ok, "config.API has no ReportPath")
	p := f.Tag.Get("default")
	require.NotEmpty(t, p)
	return p
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	e := testServer(t, Deps{})

	registered := map[string]bool{}
	sawOps := false
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // Echo's own 404 handler of a group, not an endpoint
		}
		// /ops is the asynqmon queue UI: for operators only, behind basic
		// auth with its own credentials, served only when OPS_USERNAME and
		// OPS_PASSWORD are set, and asynqmon's own API rather than ours. It
		// is not part of the client API and the document leaves it out.
		if r.Path == "/ops" || strings.HasPrefix(r.Path, "/ops/") {
			sawOps = true
			continue
		}
		require.NotContains(t, r.Path, "*", "a wildcard route cannot be described: %s", r.Path)
		registered[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	require.True(t, sawOps, "the queue UI was not mounted: the /ops exclusion above is stale")

	// Every GET also answers HEAD (see the get helper in New); the document
	// says so once instead of describing each HEAD.
	for k := range registered {
		if p, ok := strings.CutPrefix(k, http.MethodHead+" "); ok {
			require.True(t, registered[http.MethodGet+" "+p], "HEAD without GET: %s", p)
			delete(registered, k)
		}
	}

	documented := map[string]bool{}
	for _, o := range operations(t, doc) {
		documented[o.String()] = true
	}
	for k := range registered {
		require.True(t, documented[k], "route %s is served but not described in openapi.yaml", k)
	}
	for k := range documented {
		require.True(t, registered[k], "openapi.yaml describes %s, which the server does not serve", k)
	}
}

var statusKey = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]XX|default)$`)

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)

	require.Regexp(t, `^3\.[01]\.\d+$`, doc["openapi"])
	info, _ := doc["info"].(map[string]any)
	require.NotEmpty(t, info["title"])
	require.NotEmpty(t, info["version"])

	// Every $ref resolves, stands alone (OpenAPI 3.0 ignores anything beside
	// it), and every component is used.
	used := map[string]bool{}
	apidoc.Walk(doc, func(at string, v map[string]any) {
		if ref, ok := v["$ref"].(string); ok {
			_, err := apidoc.Pointer(doc, ref)
			require.NoError(t, err, "%s", at)
			require.Len(t, v, 1, "%s: keys beside $ref are ignored", at)
			used[ref] = true
		}
		_, one := v["example"]
		_, many := v["examples"]
		require.False(t, one && many, "%s: example and examples exclude each other", at)
	})
	components, _ := doc["components"].(map[string]any)
	schemes, _ := components["securitySchemes"].(map[string]any)
	for kind, group := range components {
		if kind == "securitySchemes" {
			continue
		}
		for name := range group.(map[string]any) {
			ref := "#/components/" + kind + "/" + name
			require.True(t, used[ref], "%s is never used", ref)
		}
	}

	checkSecurity := func(at string, sec any) {
		list, ok := sec.([]any)
		require.True(t, ok, "%s: security must be a list", at)
		for _, req := range list {
			for name := range req.(map[string]any) {
				require.Contains(t, schemes, name, "%s: unknown security scheme", at)
			}
		}
	}
	checkSecurity("#/security", doc["security"])

	declaredTags := map[string]bool{}
	for _, tg := range doc["tags"].([]any) {
		declaredTags[tg.(map[string]any)["name"].(string)] = true
	}

	// checkOp checks what every operation needs, callbacks' included.
	checkOp := func(at string, op map[string]any) {
		responses, ok := op["responses"].(map[string]any)
		require.True(t, ok && len(responses) > 0, "%s has no responses", at)
		for code, r := range responses {
			require.Regexp(t, statusKey, code, "%s: response key", at)
			resp := deref(t, doc, r)
			require.NotEmpty(t, resp["description"], "%s %s: no description", at, code)
		}
		if sec, ok := op["security"]; ok {
			checkSecurity(at, sec)
		}
	}

	opIDs := map[string]string{}
	for _, o := range operations(t, doc) {
		at := o.String()
		checkOp(at, o.Op)

		id, _ := o.Op["operationId"].(string)
		require.NotEmpty(t, id, "%s: no operationId", at)
		require.NotContains(t, opIDs, id, "%s: operationId %s also used by %s", at, id, opIDs[id])
		opIDs[id] = at
		require.NotEmpty(t, o.Op["summary"], "%s: no summary", at)
		tags, _ := o.Op["tags"].([]any)
		require.NotEmpty(t, tags, "%s: no tags", at)
		for _, tg := range tags {
			require.True(t, declaredTags[tg.(string)], "%s: undeclared tag %v", at, tg)
		}

		// The path's {names} are exactly its path parameters.
		inPath := map[string]bool{}
		for _, m := range apidoc.PathParam.FindAllStringSubmatch(o.Path, -1) {
			inPath[m[1]] = true
		}
		declared := map[string]bool{}
		for _, p := range o.Params {
			require.NotEmpty(t, p["name"], "%s: a parameter without a name", at)
			require.Contains(t, []any{"path", "query", "header", "cookie"}, p["in"], "%s: parameter %v", at, p["name"])
			require.NotNil(t, p["schema"], "%s: parameter %v has no schema", at, p["name"])
			if p["in"] == "path" {
				require.Equal(t, true, p["required"], "%s: path parameter %v must be required", at, p["name"])
				declared[p["name"].(string)] = true
			}
		}
		require.Equal(t, inPath, declared, "%s: path parameters", at)

		// Every answer carries X-Request-ID, and says what it is.
		for code, r := range o.Op["responses"].(map[string]any) {
			resp := deref(t, doc, r)
			hdrs, _ := resp["headers"].(map[string]any)
			require.Contains(t, hdrs, "X-Request-ID", "%s %s: X-Request-ID not documented", at, code)
			if content, ok := resp["content"].(map[string]any); ok {
				for mt, m := range content {
					require.NotNil(t, m.(map[string]any)["schema"], "%s %s %s: no schema", at, code, mt)
				}
			}
		}
		if body, ok := o.Op["requestBody"]; ok {
			content, _ := deref(t, doc, body)["content"].(map[string]any)
			require.NotEmpty(t, content, "%s: a request body without content", at)
			for mt, m := range content {
				mm := m.(map[string]any)
				require.NotNil(t, mm["schema"], "%s %s: no schema", at, mt)
				if exs, ok := mm["examples"].(map[string]any); ok {
					for name, ex := range exs {
						require.Contains(t, deref(t, doc, ex), "value", "%s %s: example %s has no value", at, mt, name)
					}
				}
			}
		}

		// Callbacks are operations too.
		cbs, _ := o.Op["callbacks"].(map[string]any)
		for name, cb := range cbs {
			for expr, item := range deref(t, doc, cb) {
				pathItem, ok := item.(map[string]any)
				require.True(t, ok, "%s callback %s %s: not a path item", at, name, expr)
				cbOps, err := apidoc.ItemOperations(doc, expr, pathItem)
				require.NoError(t, err, "%s callback %s", at, name)
				for _, cbo := range cbOps {
					checkOp(at+" callback "+name+" "+cbo.String(), cbo.Op)
				}
			}
		}
	}
}

// TestOpenAPISecurityMatchesServer sends every documented operation
// without an API key: a secured one must be refused with 401, an open one
// must not be; and whatever the status, it must be one the operation
// documents, with the headers it calls required.
func TestOpenAPISecurityMatchesServer(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	e := testServer(t, Deps{})

	for _, o := range operations(t, doc) {
		path := o.Path
		for _, p := range o.Params {
			if p["in"] != "path" {
				continue
			}
			v := fmt.Sprint(p["example"])
			if p["example"] == nil {
				v = "01m90vvf4cs60n54z4w0zxa3vz"
			}
			path = strings.ReplaceAll(path, "{"+p["name"].(string)+"}", url.PathEscape(v))
		}
		req := httptest.NewRequest(o.Method, path, nil)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		if secured(doc, o) {
			require.Equal(t, http.StatusUnauthorized, rec.Code, "%s without a key", o)
			require.Equal(t, `Bearer realm="mmsgate"`, rec.Header().Get("WWW-Authenticate"), "%s", o)
			var body struct{ Error Error }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), "%s", o)
			require.Equal(t, "unauthorized", body.Error.Code, "%s", o)
		} else {
			require.NotEqual(t, http.StatusUnauthorized, rec.Code, "%s is documented without security", o)
			require.Less(t, rec.Code, 500, "%s: %s", o, rec.Body)
		}
		resp := documentedResponse(t, doc, o, rec.Code)
		requireHeaders(t, doc, o, resp, rec.Header())
	}
}

// documentedResponse returns the operation's response for status, failing
// when it documents none.
func documentedResponse(t *testing.T, doc map[string]any, o apidoc.Operation, status int) map[string]any {
	t.Helper()
	resp, err := o.Response(doc, status)
	require.NoError(t, err, "%s answered %d", o, status)
	return resp
}

func requireHeaders(t *testing.T, doc map[string]any, o apidoc.Operation, resp map[string]any, got http.Header) {
	t.Helper()
	hdrs, _ := resp["headers"].(map[string]any)
	for name, h := range hdrs {
		if deref(t, doc, h)["required"] == true {
			require.NotEmpty(t, got.Get(name), "%s: documented header %s missing", o, name)
		}
	}
}

// stubMedia answers every check with a pass, without fetching anything.
type stubMedia struct{ urls []string }

func (m *stubMedia) Check(_ context.Context, u string) media.Result {
	m.urls = append(m.urls, u)
	return media.Result{OK: true, Warnings: []string{}, ContentType: "image/jpeg", ContentLength: 1000,
		FinalURL: u, Status: 200, CheckedAt: time.Now().UTC()}
}

// TestOpenAPIMediaCheckExamples sends the media check's examples to the
// handler, with a checker that fetches nothing: internal/app cannot send
// them, since a real check would go to the Internet.
func TestOpenAPIMediaCheckExamples(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	checker := &stubMedia{}
	e := testServer(t, Deps{Media: checker})

	var o apidoc.Operation
	for _, op := range operations(t, doc) {
		if op.Method == http.MethodPost && op.Path == "/api/mms/media/check" {
			o = op
		}
	}
	require.NotNil(t, o.Op, "POST /api/mms/media/check is not described")
	content := deref(t, doc, o.Op["requestBody"])["content"].(map[string]any)
	mt := content["application/json"].(map[string]any)
	examples, err := apidoc.Examples(doc, mt)
	require.NoError(t, err, "the media check's request examples")
	require.NotEmpty(t, examples, "the media check has no request example")
	for _, name := range slices.Sorted(maps.Keys(examples)) {
		b, err := json.Marshal(examples[name])
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, o.Path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", docTestKey)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, "example %s %s: %s", name, b, rec.Body)
		requireHeaders(t, doc, o, documentedResponse(t, doc, o, rec.Code), rec.Header())
	}
	require.Len(t, checker.urls, len(examples))
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := testServer(t, Deps{})

	get := func(method string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/openapi.yaml", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	rec := get(http.MethodGet) // no API key
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, OpenAPIContentType, rec.Header().Get("Content-Type"))
	require.Equal(t, string(openAPIDoc), rec.Body.String())
	require.Contains(t, rec.Header().Get("Cache-Control"), "max-age=")
	require.NotContains(t, rec.Header().Get("Cache-Control"), "no-store")
	require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	etag := rec.Header().Get("ETag")
	require.Regexp(t, `^"[0-9a-f]+"$`, etag)

	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		rec = get(http.MethodGet, "If-None-Match", inm)
		require.Equal(t, http.StatusNotModified, rec.Code, inm)
		require.Empty(t, rec.Body.String())
		require.Equal(t, etag, rec.Header().Get("ETag"))
	}
	require.Equal(t, http.StatusOK, get(http.MethodGet, "If-None-Match", `"other"`).Code)

	rec = get(http.MethodHead)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, OpenAPIContentType, rec.Header().Get("Content-Type"))

	// Through a real server, HEAD has no body.
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	resp, err := http.Head(srv.URL + "/openapi.yaml")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, b)
}

// jsonFields lists the JSON names of a struct's fields, those of embedded
// structs included, and those always present (no omitempty or omitzero).
func jsonFields(t reflect.Type) (all, always []string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && !hasTag {
			a, r := jsonFields(f.Type)
			all, always = append(all, a...), append(always, r...)
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			always = append(always, name)
		}
	}
	slices.Sort(all)
	slices.Sort(always)
	return all, always
}

func schemaFields(t *testing.T, doc map[string]any, name string) (props, required []string) {
	t.Helper()
	s, err := apidoc.Pointer(doc, "#/components/schemas/"+name)
	require.NoError(t, err, "no schema %s", name)
	m := s.(map[string]any)
	p, _ := m["properties"].(map[string]any)
	props = slices.Sorted(maps.Keys(p))
	for _, r := range apidoc.List(m["required"]) {
		required = append(required, r.(string))
	}
	slices.Sort(required)
	return props, required
}

// TestOpenAPISchemasMatchTypes: each schema has exactly the fields of the
// Go type behind it. For answers, the fields always present are exactly
// those it requires; for requests, unknown fields are refused.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)

	requests := map[string]reflect.Type{
		"SendRequest":              reflect.TypeFor[mms.SendRequest](),
		"CampaignRequest":          reflect.TypeFor[mms.CampaignRequest](),
		"CampaignRecipient":        reflect.TypeFor[mms.CampaignRecipient](),
		"SuppressionImportRequest": reflect.TypeFor[importRequest](),
	}
	for name, typ := range requests {
		props, _ := schemaFields(t, doc, name)
		fields, _ := jsonFields(typ)
		require.Equal(t, fields, props, "schema %s against %s", name, typ)
		s, _ := apidoc.Pointer(doc, "#/components/schemas/"+name)
		require.Equal(t, false, s.(map[string]any)["additionalProperties"],
			"%s: the server refuses unknown fields; say so", name)
	}

	answers := map[string]reflect.Type{
		"Accepted":                reflect.TypeFor[accepted](),
		"Job":                     reflect.TypeFor[jobView](),
		"Delivery":                reflect.TypeFor[delivery](),
		"JobEvent":                reflect.TypeFor[mms.Event](),
		"JobError":                reflect.TypeFor[mms.JobError](),
		"CallbackCounts":          reflect.TypeFor[mms.CallbackCounts](),
		"CampaignAccepted":        reflect.TypeFor[campaignAccepted](),
		"CampaignRecipientCounts": reflect.TypeFor[campaign.Counts](),
		"RejectedRecipient":       reflect.TypeFor[mms.Rejected](),
		"Campaign":                reflect.TypeFor[campaignView](),
		"CampaignJobCounts":       reflect.TypeOf(campaignView{}.Jobs),
		"ErrorCount":              reflect.TypeFor[campaign.ErrorCount](),
		"CampaignJob":             reflect.TypeFor[campaignJob](),
		"CampaignCancelResult": reflect.TypeFor[struct {
			CampaignID string `json:"campaign_id"`
			Status     string `json:"status"`
			*campaign.CancelSummary
		}](), // as cancelCampaign answers
		"SuppressionEntry":        reflect.TypeFor[suppress.Entry](),
		"SuppressionImportResult": reflect.TypeFor[importResult](),
		"InvalidNumber":           reflect.TypeFor[invalidNumber](),
		"MediaCheckResult":        reflect.TypeFor[media.Result](),
		"Error":                   reflect.TypeFor[Error](),
		"FieldError":              reflect.TypeFor[mms.FieldError](),
		"CallbackEvent":           reflect.TypeFor[callback.Body](),
		"CallbackJob":             reflect.TypeFor[callback.JobBrief](),
	}
	for name, typ := range answers {
		props, required := schemaFields(t, doc, name)
		fields, always := jsonFields(typ)
		require.Equal(t, fields, props, "schema %s against %s", name, typ)
		require.Equal(t, always, required, "schema %s: required fields against those %s always has", name, typ)
	}
}

// TestOpenAPICampaignFields: the fields a CSV campaign takes in its query,
// or a form campaign in its form, are those documented, and every JSON
// field but the recipients and the defaults (which take another form
// there) is one.
func TestOpenAPICampaignFields(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	var o apidoc.Operation
	for _, op := range operations(t, doc) {
		if op.Method == http.MethodPost && op.Path == "/api/mms/campaigns" {
			o = op
		}
	}
	require.NotNil(t, o.Op, "POST /api/mms/campaigns is not described")

	var query []string
	for _, p := range o.Params {
		if p["in"] != "query" {
			continue
		}
		name := p["name"].(string)
		query = append(query, name)
		var r mms.CampaignRequest
		err := r.ReadCampaignFields(url.Values{name: {"1"}})
		if err != nil {
			require.NotContains(t, err.Error(), "is not a known field", "query parameter %s", name)
		}
	}
	slices.Sort(query)

	fields, _ := jsonFields(reflect.TypeFor[mms.CampaignRequest]())
	fields = slices.DeleteFunc(fields, func(f string) bool { return f == "recipients" || f == "parameters" })
	require.Equal(t, fields, query, "the query parameters of a text/csv campaign")

	var r mms.CampaignRequest
	require.Error(t, r.ReadCampaignFields(url.Values{"no_such_field": {"1"}}), "unknown query fields must be refused")
	require.NoError(t, r.ReadCampaignFields(url.Values{"parameters.first_name": {"Ada"}}))

	form, _ := schemaFields(t, doc, "CampaignForm")
	require.Equal(t, slices.Sorted(slices.Values(append(slices.Clone(query), "recipients"))), form,
		"the fields of a multipart/form-data campaign")
}
