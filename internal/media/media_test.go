package media_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/media"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// dialer records every connection a Checker asks for, and makes it only to
// a loopback address: a test that asks for any other fails, and nothing
// leaves the machine.
type dialer struct {
	t     *testing.T
	mu    sync.Mutex
	addrs []string
}

func (d *dialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, address)
	d.mu.Unlock()
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().IsLoopback() {
		d.t.Errorf("the checker dialed %s; tests connect only to loopback", address)
		return nil, errors.New("test dialer: not loopback")
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *dialer) attempts() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// resolver answers from a fixed table, never from DNS.
type resolver map[string][]netip.Addr

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if ips, ok := r[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// newChecker returns a Checker that may connect to 127.0.0.1 (unless allow
// says otherwise), with a recording dialer and a short timeout.
func newChecker(t *testing.T, tune func(*media.Config), allow ...string) (*media.Checker, *dialer) {
	t.Helper()
	if allow == nil {
		allow = []string{"127.0.0.1"}
	}
	al, err := media.ParseAllowList(allow)
	require.NoError(t, err)
	d := &dialer{t: t}
	cfg := media.Config{
		Timeout:  2 * time.Second,
		Allow:    al,
		Dial:     d.dial,
		Resolver: resolver{},
	}
	if tune != nil {
		tune(&cfg)
	}
	return media.New(cfg), d
}

// serve starts a media server on 127.0.0.1 and counts its requests.
func serve(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	require.True(t, strings.HasPrefix(srv.URL, "http://127.0.0.1:"), "media server on %s", srv.URL)
	return srv, &n
}

// file answers as a static file server would: type and length, and the
// body only to GET.
func file(contentType string, length int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(make([]byte, min(length, 4096)))
		}
	}
}

// checkServed checks path /f of a media server that answers with h, with
// the default test checker.
func checkServed(t *testing.T, h http.HandlerFunc) media.Result {
	t.Helper()
	srv, _ := serve(t, h)
	c, _ := newChecker(t, nil)
	return check(t, c, srv.URL+"/f")
}

func check(t *testing.T, c *media.Checker, u string) media.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Check(ctx, u)
}

func requireFail(t *testing.T, r media.Result, reason string, transient bool) {
	t.Helper()
	require.False(t, r.OK, "result %+v", r)
	require.Equal(t, reason, r.Reason, "message: %s", r.Message)
	require.Equal(t, transient, r.Transient, "transient: %+v", r)
	require.NotEmpty(t, r.Message)
}

func TestCheckPasses(t *testing.T) {
	t.Parallel()
	srv, n := serve(t, file("image/jpeg", 12345))
	c, d := newChecker(t, nil)

	r := check(t, c, srv.URL+"/cat.jpg")
	require.True(t, r.OK, "%+v", r)
	require.Empty(t, r.Reason)
	require.False(t, r.Transient)
	require.Equal(t, []string{}, r.Warnings)
	require.Equal(t, "image/jpeg", r.ContentType)
	require.EqualValues(t, 12345, r.ContentLength)
	require.Equal(t, 200, r.Status)
	require.Equal(t, srv.URL+"/cat.jpg", r.FinalURL)
	require.False(t, r.Cached)
	require.Contains(t, r.Message, "image/jpeg")
	require.Contains(t, r.Message, "12345")
	require.EqualValues(t, 1, n.Load(), "one HEAD, no GET")
	require.Len(t, d.attempts(), 1)
}

func TestCheckContentTypes(t *testing.T) {
	t.Parallel()
	ok := []string{
		"image/jpeg", "image/png", "image/gif", "video/mp4", "video/quicktime", "text/vcard",
		"text/x-vcard", "application/pdf", "IMAGE/PNG", "text/vcard; charset=utf-8", "Image/JPEG ; q=1",
	}
	bad := []string{"text/html", "text/html; charset=utf-8", "application/octet-stream", "image/webp",
		"image/jpg", "video/webm", "not a type", "image/jpeg,image/png"}
	for _, ct := range ok {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			r := checkServed(t, file(ct, 100))
			require.True(t, r.OK, "%+v", r)
			require.Equal(t, ct, r.ContentType)
		})
	}
	for _, ct := range bad {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			r := checkServed(t, file(ct, 100))
			requireFail(t, r, media.ReasonContentType, false)
			require.Contains(t, r.Message, ct)
			require.Equal(t, ct, r.ContentType)
		})
	}
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		r := checkServed(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Content-Type"] = nil // no sniffing by net/http either
			w.Header().Set("Content-Length", "100")
		})
		requireFail(t, r, media.ReasonContentType, false)
		require.Contains(t, r.Message, "no Content-Type")
	})
}

func TestCheckStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		transient bool
	}{
		{404, false}, {410, false}, {401, false}, {400, false}, {204, false},
		{500, true}, {502, true}, {503, true}, {504, true}, {429, true}, {408, true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			r := checkServed(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "image/jpeg")
				w.WriteHeader(tt.status)
			})
			if tt.status == 204 {
				// A 2xx without a body: no length, and nothing to send.
				require.False(t, r.OK)
				return
			}
			requireFail(t, r, media.ReasonHTTPStatus, tt.transient)
			require.Equal(t, tt.status, r.Status)
			require.Contains(t, r.Message, strconv.Itoa(tt.status))
		})
	}
}

// redirects serves /r/N, which redirects to /r/N-1, down to /r/0, the file.
func redirects(t *testing.T) (*httptest.Server, *atomic.Int64) {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if n > 0 {
			http.Redirect(w, r, "/r/"+strconv.Itoa(n-1), http.StatusFound)
			return
		}
		file("image/png", 500)(w, r)
	})
}

func TestCheckRedirects(t *testing.T) {
	t.Parallel()

	t.Run("three are followed", func(t *testing.T) {
		t.Parallel()
		srv, n := redirects(t)
		c, d := newChecker(t, nil)
		r := check(t, c, srv.URL+"/r/3")
		require.True(t, r.OK, "%+v", r)
		require.Equal(t, srv.URL+"/r/0", r.FinalURL)
		require.EqualValues(t, 4, n.Load())
		require.Len(t, d.attempts(), 4, "every hop dialed, and checked, anew")
	})
	t.Run("four are too many", func(t *testing.T) {
		t.Parallel()
		srv, n := redirects(t)
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/r/4")
		requireFail(t, r, media.ReasonTooManyRedirects, false)
		require.EqualValues(t, 4, n.Load(), "the fourth redirect is not followed")
	})
	t.Run("a loop", func(t *testing.T) {
		t.Parallel()
		srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusMovedPermanently)
		})
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/loop")
		requireFail(t, r, media.ReasonTooManyRedirects, false)
		require.EqualValues(t, 4, n.Load())
	})
	t.Run("to another scheme", func(t *testing.T) {
		t.Parallel()
		r := checkServed(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "ftp://127.0.0.1/f.jpg", http.StatusFound)
		})
		requireFail(t, r, media.ReasonBadURL, false)
		require.Equal(t, "ftp://127.0.0.1/f.jpg", r.FinalURL)
	})
	t.Run("307 keeps HEAD", func(t *testing.T) {
		t.Parallel()
		var methods sync.Map
		srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
			methods.Store(r.URL.Path, r.Method)
			if r.URL.Path == "/a" {
				http.Redirect(w, r, "/b", http.StatusTemporaryRedirect)
				return
			}
			file("video/mp4", 9000)(w, r)
		})
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/a")
		require.True(t, r.OK, "%+v", r)
		m, _ := methods.Load("/b")
		require.Equal(t, http.MethodHead, m)
	})
}

func TestCheckLength(t *testing.T) {
	t.Parallel()
	tune := func(cfg *media.Config) { cfg.MaxBytes, cfg.WarnBytes = 2000, 1000 }

	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, file("video/mp4", 2001))
		c, _ := newChecker(t, tune)
		r := check(t, c, srv.URL+"/big.mp4")
		requireFail(t, r, media.ReasonTooLarge, false)
		require.EqualValues(t, 2001, r.ContentLength)
		require.Contains(t, r.Message, "2001")
		require.Contains(t, r.Message, "2000")
	})
	t.Run("at the limit, with a warning", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, file("video/mp4", 2000))
		c, _ := newChecker(t, tune)
		r := check(t, c, srv.URL+"/big.mp4")
		require.True(t, r.OK, "%+v", r)
		require.Equal(t, []string{media.WarnLarge}, r.Warnings)
		require.Empty(t, r.Reason)
	})
	t.Run("at the warning threshold, none", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, file("video/mp4", 1000))
		c, _ := newChecker(t, tune)
		r := check(t, c, srv.URL+"/f.mp4")
		require.True(t, r.OK, "%+v", r)
		require.Empty(t, r.Warnings)
	})
	t.Run("defaults: 5 MiB limit, 1 MB warning", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/"), 10, 64)
			file("image/jpeg", n)(w, r)
		})
		c, _ := newChecker(t, nil)
		require.Empty(t, check(t, c, srv.URL+"/1000000").Warnings)
		require.Equal(t, []string{media.WarnLarge}, check(t, c, srv.URL+"/1000001").Warnings)
		require.True(t, check(t, c, srv.URL+"/5242880").OK)
		requireFail(t, check(t, c, srv.URL+"/5242881"), media.ReasonTooLarge, false)
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, file("image/gif", 0))
		c, _ := newChecker(t, nil)
		requireFail(t, check(t, c, srv.URL+"/f.gif"), media.ReasonEmpty, false)
	})
	t.Run("HEAD without a length", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "image/jpeg")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush() // headers out before net/http could count a length
		})
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/f.jpg")
		requireFail(t, r, media.ReasonNoContentLength, false)
		require.EqualValues(t, -1, r.ContentLength)
	})
	t.Run("chunked GET without a length", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "image/jpeg")
			w.WriteHeader(http.StatusOK)
			for range 3 {
				_, _ = w.Write(make([]byte, 1000))
				w.(http.Flusher).Flush()
			}
		})
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/f.jpg")
		requireFail(t, r, media.ReasonNoContentLength, false)
		require.Contains(t, r.Message, "chunked")
		require.Equal(t, 200, r.Status)
	})
}

// TestCheckFallsBackToGET: a server that refuses HEAD is asked with GET,
// and the check ends with the headers, long before the body could.
func TestCheckFallsBackToGET(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusForbidden} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			var methods []string
			var mu sync.Mutex
			bodyCut := make(chan bool, 1)
			srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				methods = append(methods, r.Method)
				mu.Unlock()
				if r.Method != http.MethodGet {
					w.WriteHeader(status)
					return
				}
				w.Header().Set("Content-Type", "image/jpeg")
				w.Header().Set("Content-Length", "4000000")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(make([]byte, 1024))
				w.(http.Flusher).Flush()
				// The rest of the body would come slowly: the check must
				// not wait for it.
				select {
				case <-r.Context().Done():
					bodyCut <- true
				case <-time.After(5 * time.Second):
					bodyCut <- false
				}
			})
			c, _ := newChecker(t, nil)
			start := time.Now()
			r := check(t, c, srv.URL+"/f.jpg")
			require.True(t, r.OK, "%+v", r)
			require.Less(t, time.Since(start), time.Second, "the check read the headers only")
			require.EqualValues(t, 4000000, r.ContentLength)
			require.Equal(t, []string{media.WarnLarge}, r.Warnings)
			require.True(t, <-bodyCut, "the checker hung up instead of reading the body")
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, []string{http.MethodHead, http.MethodGet}, methods)
		})
	}

	t.Run("GET fails too", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			http.NotFound(w, r)
		})
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/f.jpg")
		requireFail(t, r, media.ReasonHTTPStatus, false)
		require.Equal(t, 404, r.Status)
	})
}

func TestCheckConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	c, d := newChecker(t, nil)
	r := check(t, c, "http://"+addr+"/f.jpg")
	requireFail(t, r, media.ReasonUnreachable, true)
	require.Contains(t, r.Message, "refused")
	require.Equal(t, 0, r.Status)
	require.EqualValues(t, -1, r.ContentLength)
	require.Equal(t, []string{addr}, d.attempts())
}

func TestCheckTimeout(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	c, _ := newChecker(t, func(cfg *media.Config) { cfg.Timeout = 200 * time.Millisecond })
	start := time.Now()
	r := check(t, c, srv.URL+"/slow.jpg")
	requireFail(t, r, media.ReasonTimeout, true)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Contains(t, r.Message, "200ms")
}

func TestCheckCanceled(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		file("image/png", 10)(w, r)
	})
	defer close(release)
	c, _ := newChecker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	r := c.Check(ctx, srv.URL+"/f.png")
	requireFail(t, r, media.ReasonTimeout, true)
	require.Contains(t, r.Message, "canceled")
}

func TestCheckBadCertificate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(file("image/png", 10))
	t.Cleanup(srv.Close)
	c, _ := newChecker(t, nil)
	r := check(t, c, srv.URL+"/f.png")
	requireFail(t, r, media.ReasonUnreachable, false)
	require.Contains(t, r.Message, "certificate")
}

func TestCheckBadURL(t *testing.T) {
	t.Parallel()
	c, d := newChecker(t, nil)
	for _, u := range []string{
		"", "cat.jpg", "/cat.jpg", "ftp://127.0.0.1/cat.jpg", "file:///etc/passwd", "http://",
		"http://user:secret@127.0.0.1/cat.jpg", "http://127.0.0.1/a cat.jpg", "http://127.0.0.1:0/cat.jpg",
		"http://127.0.0.1:99999/cat.jpg", "http:cat.jpg", "https://127.0.0.1/" + strings.Repeat("a", 2048),
		"javascript:alert(1)", "http://127.0.0.1/\u200bcat.jpg",
	} {
		r := check(t, c, u)
		requireFail(t, r, media.ReasonBadURL, false)
		require.Error(t, media.ValidateURL(u), u)
	}
	require.Empty(t, d.attempts())
	require.NoError(t, media.ValidateURL("https://cdn.example.com:8443/a/b.jpg?x=1#f"))
}

// TestCheckRefusesNonPublicAddresses: without an allow-list, no address
// outside the public Internet is dialed at all.
func TestCheckRefusesNonPublicAddresses(t *testing.T) {
	t.Parallel()
	srv, n := serve(t, file("image/png", 10))
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")

	tests := []struct{ url, why string }{
		{srv.URL + "/f.png", "loopback"},
		{"http://127.0.0.1/f.png", "loopback"},
		{"http://127.1.2.3:" + port + "/f.png", "loopback"},
		{"http://[::1]:" + port + "/f.png", "loopback"},
		{"http://[::ffff:127.0.0.1]:" + port + "/f.png", "loopback"},
		{"http://10.0.0.1/f.png", "private"},
		{"http://192.168.1.10:8080/f.png", "private"},
		{"http://172.16.0.1/f.png", "private"},
		{"http://[fc00::1]/f.png", "private"},
		{"http://169.254.169.254/latest/meta-data/", "metadata"},
		{"http://169.254.170.2/v2/credentials", "metadata"},
		{"http://[fd00:ec2::254]/latest/meta-data/", "metadata"},
		{"http://100.100.100.200/latest/meta-data/", "metadata"},
		{"http://168.63.129.16/machine", "metadata"},
		{"http://169.254.1.1/f.png", "link-local"},
		{"http://[fe80::1]/f.png", "link-local"},
		{"http://0.0.0.0:" + port + "/f.png", "unspecified"},
		{"http://[::]:" + port + "/f.png", "unspecified"},
		{"http://224.0.0.1/f.png", "multicast"},
		{"http://[ff02::1]/f.png", "multicast"},
		{"http://100.64.0.1/f.png", "non-public"},
		{"http://192.0.2.1/f.png", "non-public"},
		{"http://240.0.0.1/f.png", "non-public"},
		{"http://255.255.255.255/f.png", "non-public"},
		{"http://[64:ff9b::a9fe:a9fe]/f.png", "non-public"}, // NAT64 of 169.254.169.254
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			c, d := newChecker(t, nil, "") // no allow-list
			r := check(t, c, tt.url)
			requireFail(t, r, media.ReasonForbiddenAddress, false)
			require.Contains(t, r.Message, tt.why)
			require.Equal(t, tt.url, r.FinalURL)
			require.Empty(t, d.attempts(), "refused before any connection")
		})
	}
	require.Zero(t, n.Load(), "the loopback server saw no request")
}

func TestCheckAllowList(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, file("image/png", 10))
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")

	t.Run("CIDR", func(t *testing.T) {
		t.Parallel()
		c, _ := newChecker(t, nil, "127.0.0.0/8")
		require.True(t, check(t, c, srv.URL+"/f.png").OK)
	})
	t.Run("IP and port", func(t *testing.T) {
		t.Parallel()
		c, d := newChecker(t, nil, "127.0.0.1:"+port)
		require.True(t, check(t, c, srv.URL+"/f.png").OK)
		r := check(t, c, "http://127.0.0.1:1/f.png")
		requireFail(t, r, media.ReasonForbiddenAddress, false)
		require.Len(t, d.attempts(), 1, "the other port was not dialed")
	})
	t.Run("name and port", func(t *testing.T) {
		t.Parallel()
		c, d := newChecker(t, func(cfg *media.Config) {
			cfg.Resolver = resolver{"media.internal": {netip.MustParseAddr("127.0.0.1")}}
		}, "media.internal:"+port)
		r := check(t, c, "http://media.internal:"+port+"/f.png")
		require.True(t, r.OK, "%+v", r)
		requireFail(t, check(t, c, "http://media.internal:1/f.png"), media.ReasonForbiddenAddress, false)
		requireFail(t, check(t, c, srv.URL+"/f.png"), media.ReasonForbiddenAddress, false)
		require.Equal(t, []string{"127.0.0.1:" + port}, d.attempts())
	})
	t.Run("metadata stays refused", func(t *testing.T) {
		t.Parallel()
		c, d := newChecker(t, nil, "169.254.0.0/16", "168.63.129.16", "fd00::/8")
		for _, u := range []string{"http://169.254.169.254/", "http://168.63.129.16/", "http://[fd00:ec2::254]/"} {
			r := check(t, c, u)
			requireFail(t, r, media.ReasonForbiddenAddress, false)
			require.Contains(t, r.Message, "metadata")
		}
		require.Empty(t, d.attempts())
	})
}

// TestCheckNames: a name is checked by what it resolves to, and the
// connection goes to the address checked.
func TestCheckNames(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, file("image/png", 10))
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	ip := netip.MustParseAddr
	names := resolver{
		"cdn.example.com":     {ip("127.0.0.1")},
		"evil.example.com":    {ip("169.254.169.254")},
		"private.example.com": {ip("10.1.2.3")},
		// One public address and one private one: refused whole. (The
		// test dialer would refuse the public one too.)
		"mixed.example.com":  {ip("8.8.8.8"), ip("10.0.0.1")},
		"v6.example.com":     {ip("::1")},
		"mapped.example.com": {ip("::ffff:10.0.0.1")},
	}
	require.True(t, mms.PublicAddr(names["mixed.example.com"][0]))
	c, d := newChecker(t, func(cfg *media.Config) { cfg.Resolver = names })

	r := check(t, c, "http://cdn.example.com:"+port+"/f.png")
	require.True(t, r.OK, "%+v", r)
	require.Equal(t, []string{"127.0.0.1:" + port}, d.attempts())

	for _, host := range []string{"evil.example.com", "private.example.com", "mixed.example.com",
		"v6.example.com", "mapped.example.com"} {
		r := check(t, c, "http://"+host+":"+port+"/f.png")
		requireFail(t, r, media.ReasonForbiddenAddress, false)
		require.Contains(t, r.Message, host)
	}
	require.Len(t, d.attempts(), 1, "no refused name was dialed")

	r = check(t, c, "http://nowhere.example.com/f.png")
	requireFail(t, r, media.ReasonUnreachable, false)
	require.Contains(t, r.Message, "not found")
}

// TestCheckRedirectToForbidden: a redirect from an allowed host to a
// forbidden one is refused before the second connection.
func TestCheckRedirectToForbidden(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")
	for _, to := range []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://10.0.0.1/f.png",
		"http://[::1]:" + port + "/f.png",
		"http://127.0.0.2:" + port + "/f.png",
		"http://internal.example.com/f.png", // resolves to 10.9.9.9
	} {
		t.Run(to, func(t *testing.T) {
			t.Parallel()
			c, d := newChecker(t, func(cfg *media.Config) {
				cfg.Resolver = resolver{"internal.example.com": {netip.MustParseAddr("10.9.9.9")}}
			}, "127.0.0.1/32")
			r := check(t, c, srv.URL+"/go?to="+to)
			requireFail(t, r, media.ReasonForbiddenAddress, false)
			require.Equal(t, to, r.FinalURL)
			require.Equal(t, []string{"127.0.0.1:" + port}, d.attempts(), "only the allowed host was dialed")
		})
	}
}

// TestCheckDeduplicates: checks of one URL at the same time share a fetch.
func TestCheckDeduplicates(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv, n := serve(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		file("image/png", 10)(w, r)
	})
	c, _ := newChecker(t, nil)
	var wg sync.WaitGroup
	results := make([]media.Result, 10)
	for i := range results {
		wg.Go(func() { results[i] = check(t, c, srv.URL+"/f.png") })
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, r := range results {
		require.True(t, r.OK, "%+v", r)
	}
	require.EqualValues(t, 1, n.Load())
}

func TestParseAllowList(t *testing.T) {
	t.Parallel()
	good := [][]string{
		nil, {}, {""}, {" "}, {"127.0.0.1"}, {"127.0.0.0/8", "::1"}, {"10.0.0.0/8", "[::1]:8080"},
		{"127.0.0.1:9000"}, {"media.internal:8080", "Media.Internal.:8081"}, {" 127.0.0.1 ", ""},
	}
	for _, g := range good {
		_, err := media.ParseAllowList(g)
		require.NoError(t, err, "%q", g)
	}
	bad := []string{
		"0.0.0.0/0", "::/0", "10.0.0.0/33", "not a host", "media.internal", "media.internal:0",
		"media.internal:http", "127.0.0.1:70000", "*.example.com:80", "http://127.0.0.1", "fe80::1%eth0",
		"[fe80::1%eth0]:80",
	}
	for _, b := range bad {
		_, err := media.ParseAllowList([]string{"127.0.0.1", b})
		require.Error(t, err, b)
		require.Contains(t, err.Error(), fmt.Sprintf("%q", b))
	}
	al, err := media.ParseAllowList([]string{"127.0.0.1", " ", "10.0.0.0/8"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1,10.0.0.0/8", al.String())
	require.False(t, al.Empty())
	empty, err := media.ParseAllowList(nil)
	require.NoError(t, err)
	require.True(t, empty.Empty())
}

// TestValidateURLRefusesOtherIPv4Spellings: 127.1 and the like are no DNS
// names; they are refused without a lookup.
func TestValidateURLRefusesOtherIPv4Spellings(t *testing.T) {
	for _, u := range []string{"http://127.1/a.jpg", "http://0x7f000001/a.jpg", "http://2130706433/a.jpg",
		"http://0177.0.0.1/a.jpg", "http://10.1/a.jpg"} {
		require.Error(t, media.ValidateURL(u), u)
	}
	require.NoError(t, media.ValidateURL("http://127.0.0.1:8080/a.jpg"))
	require.NoError(t, media.ValidateURL("https://cdn.example.com/a.jpg"))
}

// TestCheckMalformedLength: an answer whose Content-Length is malformed,
// negative or given twice over fails for good, not as a server that is
// merely down.
func TestCheckMalformedLength(t *testing.T) {
	t.Parallel()
	for _, header := range []string{"Content-Length: abc", "Content-Length: -5",
		"Content-Length: 10\r\nContent-Length: 20"} {
		srv, _ := serve(t, func(w http.ResponseWriter, _ *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n" + header + "\r\n\r\n")
			_ = buf.Flush()
		})
		c, _ := newChecker(t, nil)
		r := check(t, c, srv.URL+"/f.jpg")
		requireFail(t, r, media.ReasonNoContentLength, false)
		require.Contains(t, r.Message, "Content-Length", header)
	}
}
