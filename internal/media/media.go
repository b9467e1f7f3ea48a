// Package media checks a media URL the way Sinch will fetch it, before a
// batch is paid for: the URL answers 2xx within a few redirects, with a
// Content-Type Sinch sends and a Content-Length under the limit. The HTTP
// client it uses connects only to public addresses (see AllowList), checked
// on the resolved address of every hop, so a check can never be turned
// against the network mmsgate runs in.
package media

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// Reasons a check fails; Result.Reason holds one of them.
const (
	// ReasonBadURL: not an absolute http(s) URL without credentials, or a
	// redirect to such a URL.
	ReasonBadURL = "media_bad_url"
	// ReasonForbiddenAddress: the host, or a redirect's, is not a public
	// address and not on the allow-list.
	ReasonForbiddenAddress = "media_forbidden_address"
	// ReasonUnreachable: no HTTP answer (connection refused or reset, host
	// not found, a bad TLS certificate).
	ReasonUnreachable = "media_unreachable"
	// ReasonTimeout: no answer within the check's time.
	ReasonTimeout = "media_timeout"
	// ReasonTooManyRedirects: more than MaxRedirects redirects.
	ReasonTooManyRedirects = "media_too_many_redirects"
	// ReasonHTTPStatus: the final answer is not 2xx.
	ReasonHTTPStatus = "media_http_status"
	// ReasonContentType: no Content-Type, or one Sinch does not send.
	ReasonContentType = "media_content_type"
	// ReasonNoContentLength: no Content-Length, as in a chunked answer,
	// which Sinch refuses.
	ReasonNoContentLength = "media_no_content_length"
	// ReasonEmpty: a Content-Length of 0.
	ReasonEmpty = "media_empty"
	// ReasonTooLarge: a Content-Length over the hard limit.
	ReasonTooLarge = "media_too_large"
)

// WarnLarge is the warning of a file over the warning threshold: carriers
// may refuse or shrink it.
const WarnLarge = "media_large"

// Defaults of Config's zero values.
const (
	// DefaultMaxBytes is the hard limit. Sinch publishes none for MMS; 5
	// MiB leaves room above the ~1 MB carriers deliver reliably (which only
	// warns) while refusing files no MMS carries, such as long videos.
	DefaultMaxBytes = 5 << 20
	// DefaultWarnBytes is Sinch's advice for reliable carrier delivery.
	DefaultWarnBytes = 1_000_000
	DefaultTimeout   = 5 * time.Second
	DefaultCacheTTL  = 10 * time.Minute
	// MaxRedirects is how many redirects a check follows.
	MaxRedirects = 3
)

// allowedTypes are the Content-Types Sinch sends as MMS media.
var allowedTypes = []string{
	"image/jpeg", "image/png", "image/gif",
	"video/mp4", "video/quicktime",
	"text/vcard", "text/x-vcard",
	"application/pdf",
}

// Result is the outcome of one check, and what was seen.
type Result struct {
	OK bool `json:"ok"`
	// Reason is one of the Reason constants when OK is false, else empty.
	Reason string `json:"reason"`
	// Message says in words what was seen: status, type, length.
	Message string `json:"message"`
	// Transient is true when the media server seems merely down (a network
	// error, a timeout, 408, 429, 5xx): the check is worth repeating later.
	// Every other failure is permanent.
	Transient bool `json:"transient"`
	// Warnings are codes of problems that do not fail the check, such as
	// WarnLarge.
	Warnings []string `json:"warnings"`

	// ContentType is the final answer's Content-Type as sent.
	ContentType string `json:"content_type"`
	// ContentLength is the final answer's Content-Length; -1 when none was
	// given or no answer came.
	ContentLength int64 `json:"content_length"`
	// FinalURL is the URL of the last hop tried.
	FinalURL string `json:"final_url"`
	// Status is the final answer's HTTP status; 0 when none came.
	Status int `json:"status"`

	// CheckedAt is when the check ran; Cached is true when the result came
	// from the cache.
	CheckedAt time.Time `json:"checked_at"`
	Cached    bool      `json:"cached"`
}

// Config sets up a Checker. Zero values take the defaults above.
type Config struct {
	// MaxBytes is the largest Content-Length that passes.
	MaxBytes int64
	// WarnBytes is the Content-Length above which a check passes with
	// WarnLarge.
	WarnBytes int64
	// Timeout bounds a whole check, redirects and the fallback to GET
	// included.
	Timeout time.Duration
	// Allow lists the non-public addresses checks may still connect to.
	Allow AllowList
	// Cache keeps results per URL; nil keeps none. CacheTTL is how long a
	// result is kept.
	Cache    Cache
	CacheTTL time.Duration
	// Resolver looks up host names; nil is net.DefaultResolver.
	Resolver Resolver
	// Dial connects to an address already checked, an IP and port; nil is
	// a net.Dialer that checks the address once more as it connects.
	Dial DialFunc
	// Log reports cache errors; nil reports nothing.
	Log *zerolog.Logger
}

// Checker checks media URLs. It is safe for concurrent use.
type Checker struct {
	cfg    Config
	client *http.Client
	log    zerolog.Logger

	mu       sync.Mutex
	inflight map[string]*call
}

// call is one check under way, which other checks of the URL wait for.
type call struct {
	done chan struct{}
	res  Result
}

// New returns a Checker.
func New(cfg Config) *Checker {
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultMaxBytes)
	cfg.WarnBytes = cmp.Or(cfg.WarnBytes, DefaultWarnBytes)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.CacheTTL = cmp.Or(cfg.CacheTTL, DefaultCacheTTL)
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	transport := NewTransport(cfg.Allow, cfg.Resolver, cfg.Dial, cfg.Timeout)
	// A connection is checked when it is dialed; none is kept for another
	// check.
	transport.DisableKeepAlives = true
	// The length must be the file's own; compression would hide it.
	transport.DisableCompression = true
	log := zerolog.Nop()
	if cfg.Log != nil {
		log = *cfg.Log
	}
	return &Checker{
		cfg:      cfg,
		client:   &http.Client{Transport: transport},
		log:      log,
		inflight: make(map[string]*call),
	}
}

// URLError is what is wrong with a URL as written.
type URLError struct{ Message string }

func (e *URLError) Error() string { return e.Message }

// ValidateURL checks that s is a URL a check can fetch: absolute http or
// https, with a host, no credentials, no spaces or control characters, at
// most mms.MaxMediaURL bytes. It does not look at the host's address; the
// check does, as it connects.
func ValidateURL(s string) error {
	bad := func(format string, args ...any) error { return &URLError{Message: fmt.Sprintf(format, args...)} }
	if s == "" {
		return bad("is required")
	}
	if len(s) > mms.MaxMediaURL {
		return bad("must be at most %d bytes, got %d", mms.MaxMediaURL, len(s))
	}
	if strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	}) {
		return bad("must not contain spaces or control characters; encode them")
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return bad("must be an absolute http or https URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return bad("must name a host")
	}
	if u.User != nil {
		return bad("must not carry credentials")
	}
	// A name whose last label starts with a digit is no DNS name but another
	// spelling of an IPv4 address (127.1, 0x7f000001), which resolvers read
	// differently: refuse it rather than look it up.
	if host := strings.TrimSuffix(u.Hostname(), "."); !strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			last := host[strings.LastIndex(host, ".")+1:]
			if last == "" || (last[0] >= '0' && last[0] <= '9') {
				return bad("host %q is neither an IP address in standard form nor a DNS name", u.Hostname())
			}
		}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("has an invalid port %q", p)
		}
	}
	return nil
}

// Check checks the media at rawURL as Sinch will fetch it. It never
// returns an error: every problem is a failed Result. A passing result or
// a permanent failure comes from the cache when there is one; checks of
// the same URL at the same time in this process share one fetch.
func (c *Checker) Check(ctx context.Context, rawURL string) Result {
	if err := ValidateURL(rawURL); err != nil {
		return Result{Reason: ReasonBadURL, Message: "the URL " + err.Error(), FinalURL: rawURL,
			ContentLength: -1, CheckedAt: time.Now().UTC(), Warnings: []string{}}
	}
	if r, ok := c.cached(ctx, rawURL); ok {
		return r
	}

	c.mu.Lock()
	cl, running := c.inflight[rawURL]
	if !running {
		cl = &call{done: make(chan struct{})}
		c.inflight[rawURL] = cl
		// The fetch does not end with the first caller's context: others
		// may wait for it. The check's own timeout bounds it.
		go c.run(context.WithoutCancel(ctx), rawURL, cl)
	}
	c.mu.Unlock()

	select {
	case <-cl.done:
		return cl.res
	case <-ctx.Done():
		return Result{Reason: ReasonTimeout, Transient: true, Message: "the check was canceled before it finished",
			FinalURL: rawURL, ContentLength: -1, CheckedAt: time.Now().UTC(), Warnings: []string{}}
	}
}

func (c *Checker) run(ctx context.Context, rawURL string, cl *call) {
	res := c.fetchAndJudge(ctx, rawURL)
	if !res.Transient && c.cfg.Cache != nil {
		if err := c.cfg.Cache.Set(ctx, rawURL, res, c.cfg.CacheTTL); err != nil {
			c.log.Warn().Err(err).Msg("media check result not cached")
		}
	}
	cl.res = res
	c.mu.Lock()
	delete(c.inflight, rawURL)
	c.mu.Unlock()
	close(cl.done)
}

func (c *Checker) cached(ctx context.Context, rawURL string) (Result, bool) {
	if c.cfg.Cache == nil {
		return Result{}, false
	}
	r, ok, err := c.cfg.Cache.Get(ctx, rawURL)
	if err != nil {
		c.log.Warn().Err(err).Msg("media check cache not read; checking")
		return Result{}, false
	}
	if !ok {
		return Result{}, false
	}
	r.Cached = true
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	return r, true
}

// headFallback lists the answers to HEAD after which a check asks again
// with GET, as Sinch fetches: servers that do not implement HEAD (405,
// 501), and URLs signed for GET only, as presigned storage URLs are (403).
var headFallback = map[int]bool{
	http.StatusForbidden:        true,
	http.StatusMethodNotAllowed: true,
	http.StatusNotImplemented:   true,
}

// fetchAndJudge makes the requests of one check and judges the answer.
func (c *Checker) fetchAndJudge(parent context.Context, rawURL string) Result {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
	defer cancel()
	start := time.Now().UTC()

	resp, last, err := c.fetch(ctx, http.MethodHead, rawURL)
	if err == nil && headFallback[resp.StatusCode] {
		_ = resp.Body.Close()
		resp, last, err = c.fetch(ctx, http.MethodGet, rawURL)
	}
	var res Result
	if err != nil {
		res = c.failure(err, parent)
	} else {
		// Only the headers count: the body of a GET is never read.
		_ = resp.Body.Close()
		res = c.judge(resp)
	}
	res.FinalURL = last
	res.CheckedAt = start
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	return res
}

var errTooManyRedirects = errors.New("too many redirects")

// fetch sends one request, following at most MaxRedirects redirects, each
// checked as the first URL was. It returns the URL of the last hop tried.
func (c *Checker) fetch(ctx context.Context, method, rawURL string) (*http.Response, string, error) {
	last := rawURL
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, last, &URLError{Message: "the URL must be an absolute http or https URL"}
	}
	req.Header.Set("User-Agent", "mmsgate-media-check/1")
	req.Header.Set("Accept", "*/*")
	client := *c.client
	client.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		last = next.URL.String()
		if len(via) > MaxRedirects {
			return errTooManyRedirects
		}
		if err := ValidateURL(last); err != nil {
			return &URLError{Message: fmt.Sprintf("redirect %d goes to a URL that %v", len(via), err)}
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, last, err
	}
	return resp, last, nil
}

// failure turns an error of fetch into a result.
func (c *Checker) failure(err error, parent context.Context) Result {
	r := Result{ContentLength: -1}
	fail := func(reason string, transient bool, format string, args ...any) Result {
		r.Reason, r.Transient, r.Message = reason, transient, fmt.Sprintf(format, args...)
		return r
	}
	var (
		addrErr *AddressError
		urlErr  *URLError
		dnsErr  *net.DNSError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &addrErr):
		return fail(ReasonForbiddenAddress, false, "refused to connect: %v", addrErr)
	case errors.Is(err, errTooManyRedirects):
		return fail(ReasonTooManyRedirects, false, "more than %d redirects", MaxRedirects)
	case errors.As(err, &urlErr):
		return fail(ReasonBadURL, false, "%v", urlErr)
	case parent.Err() != nil:
		return fail(ReasonTimeout, true, "the check was canceled before it finished")
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return fail(ReasonTimeout, true, "no answer within %s", c.cfg.Timeout)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fail(ReasonUnreachable, false, "host %s not found", dnsErr.Name)
	case isCertificateError(err):
		return fail(ReasonUnreachable, false, "the media server's TLS certificate is not valid: %v", innermost(err))
	case strings.Contains(innermost(err).Error(), "Content-Length"):
		// net/http refuses an answer whose length is malformed or given
		// twice over: the server's fault, and it will not mend by itself.
		return fail(ReasonNoContentLength, false, "the media server sent an invalid Content-Length: %v",
			innermost(err))
	}
	return fail(ReasonUnreachable, true, "could not reach the media server: %v", innermost(err))
}

func isCertificateError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid)
}

// innermost drops the *url.Error around err, whose text repeats the URL.
func innermost(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// judge checks the final answer's status and headers.
func (c *Checker) judge(resp *http.Response) Result {
	r := Result{
		Status:        resp.StatusCode,
		ContentType:   resp.Header.Get("Content-Type"),
		ContentLength: resp.ContentLength,
	}
	if r.ContentLength < 0 {
		r.ContentLength = -1
	}
	fail := func(reason string, transient bool, format string, args ...any) Result {
		r.Reason, r.Transient, r.Message = reason, transient, fmt.Sprintf(format, args...)
		return r
	}
	status := strings.TrimSpace(strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		code := resp.StatusCode
		transient := code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
		return fail(ReasonHTTPStatus, transient, "the media server answered %s", status)
	}
	if r.ContentType == "" {
		return fail(ReasonContentType, false, "the answer (%s) has no Content-Type; allowed: %s",
			status, strings.Join(allowedTypes, ", "))
	}
	mt, _, err := mime.ParseMediaType(r.ContentType)
	if err != nil || !allowedType(mt) {
		return fail(ReasonContentType, false, "Content-Type %q is not one Sinch sends as MMS media; allowed: %s",
			r.ContentType, strings.Join(allowedTypes, ", "))
	}
	if r.ContentLength < 0 {
		how := "no Content-Length"
		for _, te := range resp.TransferEncoding {
			if strings.EqualFold(te, "chunked") {
				how = "no Content-Length (the answer is chunked)"
			}
		}
		return fail(ReasonNoContentLength, false, "the answer (%s, %s) has %s; Sinch refuses media without one",
			status, mt, how)
	}
	if r.ContentLength == 0 {
		return fail(ReasonEmpty, false, "the answer (%s, %s) has Content-Length 0", status, mt)
	}
	if r.ContentLength > c.cfg.MaxBytes {
		return fail(ReasonTooLarge, false, "%s of %d bytes is over the limit of %d bytes",
			mt, r.ContentLength, c.cfg.MaxBytes)
	}
	r.OK = true
	r.Message = fmt.Sprintf("%s, %s of %d bytes", status, mt, r.ContentLength)
	if r.ContentLength > c.cfg.WarnBytes {
		r.Warnings = []string{WarnLarge}
		r.Message += fmt.Sprintf("; over %d bytes, carriers may refuse or shrink it", c.cfg.WarnBytes)
	}
	return r
}

func allowedType(mt string) bool {
	for _, t := range allowedTypes {
		if strings.EqualFold(mt, t) {
			return true
		}
	}
	return false
}
