package faults_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/mmsgate/mmsgate/internal/mms"
	"github.com/mmsgate/mmsgate/internal/redistest"
	"github.com/mmsgate/mmsgate/internal/sinchsim"
)

const (
	apiKey   = "faults-key-0123456789abcdef"
	simPlan  = "plan-1"
	simToken = "sim-secret-token-42"
)

// sinchMode is how the test's Sinch answers every request, GET probes and
// lookups included.
type sinchMode int32

const (
	sinchUp   sinchMode = iota // the simulator answers
	sinchDown                  // 503 at once
	sinchHang                  // no answer until the client gives up
)

// hangCap bounds a hung request in case its client never gives up; every
// client under test gives up long before.
const hangCap = 30 * time.Second

// sinch is the simulator behind a switch the test controls.
type sinch struct {
	sim  *sinchsim.Server
	url  string
	mode atomic.Int32
	// inFlight counts POST /batches requests being served.
	inFlight atomic.Int64
	// hold, when positive, delays every POST by that many nanoseconds
	// before the simulator sees it, to keep sends under way for a while;
	// held counts the POSTs being delayed.
	hold, held atomic.Int64
	// refused and hung count requests answered 503 or held in an outage.
	refused, hung atomic.Int64
	quit          chan struct{} // ends hung requests when the test ends
}

func startSinch(t *testing.T, cfg sinchsim.Config) *sinch {
	t.Helper()
	cfg.ServicePlanID, cfg.Token = simPlan, simToken
	s := &sinch{sim: sinchsim.New(cfg), quit: make(chan struct{})}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		close(s.quit)
		srv.Close()
	})
	s.url = srv.URL
	return s
}

func (s *sinch) setMode(m sinchMode) { s.mode.Store(int32(m)) }

func (s *sinch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch sinchMode(s.mode.Load()) {
	case sinchDown:
		_, _ = io.Copy(io.Discard, r.Body)
		s.refused.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"code":"service_unavailable","text":"outage made by the fault test"}`)
		return

	case sinchHang:
		// net/http notices a client that hangs up only once the body has
		// been read.
		_, _ = io.Copy(io.Discard, r.Body)
		s.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-s.quit:
		case <-time.After(hangCap):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}

	if r.Method == http.MethodPost {
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		if d := time.Duration(s.hold.Load()); d > 0 {
			s.held.Add(1)
			select {
			case <-time.After(d):
			case <-s.quit:
			}
			s.held.Add(-1)
		}
	}
	s.sim.ServeHTTP(w, r)
}

// stack is one mmsgate deployment in miniature: a Redis, the Sinch
// simulator, and the API and worker processes the test starts.
type stack struct {
	redis *redistest.Server
	sinch *sinch
	api   *process
	url   string // API base URL, once started
	http  *http.Client
}

// setup starts a Redis and the simulator; the test starts the processes.
func setup(t *testing.T, simCfg sinchsim.Config) *stack {
	t.Helper()
	return setupWith(t, redistest.Start(t), simCfg)
}

func setupWith(t *testing.T, rs *redistest.Server, simCfg sinchsim.Config) *stack {
	t.Helper()
	return &stack{
		redis: rs,
		sinch: startSinch(t, simCfg),
		http:  &http.Client{Timeout: 30 * time.Second},
	}
}

// env is the processes' environment: short delays so that faults play out
// in seconds, and everything else as deployed. over replaces or adds
// variables.
func (s *stack) env(over map[string]string) []string {
	vars := map[string]string{
		"LISTEN_HOST":            "127.0.0.1",
		"REDIS_URL":              s.redis.URL,
		"INTERNAL_API_KEY":       apiKey,
		"SINCH_MMS_NUMBER":       "+12025550100",
		"SINCH_API_BASE_URL":     s.sinch.url,
		"SINCH_SERVICE_PLAN_ID":  simPlan,
		"SINCH_API_TOKEN":        simToken,
		"RETRY_BASE_DELAY":       "200ms",
		"RETRY_MAX_DELAY":        "2s",
		"WORKER_POLL_INTERVAL":   "200ms",
		"AUTH_RETRY_DELAY":       "500ms",
		"SINCH_TIMEOUT":          "1s",
		"SHUTDOWN_TIMEOUT":       "5s",
		"CIRCUIT_PROBE_INTERVAL": "500ms",
		"CIRCUIT_THRESHOLD":      "5",
		"MAX_ATTEMPTS":           "10",
		"LOG_LEVEL":              "warn",
		"API_RATE_LIMIT":         "0",
		// The tests' media URLs are placeholders: nothing may fetch them.
		"MEDIA_CHECK": "false",
	}
	maps.Copy(vars, over)
	// Race reports must reach the output, where the cleanup looks for them.
	if v, ok := os.LookupEnv("GORACE"); ok {
		vars["GORACE"] = v
	}

	out := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		out = append(out, k+"="+vars[k])
	}
	return out
}

// startAPI runs cmd/api on a free port and waits until /readyz answers 200.
// A port taken between choosing and binding it is retried on another.
func (s *stack) startAPI(t *testing.T) { s.startAPIWith(t, nil) }

// startAPIWith is startAPI with variables of its own.
func (s *stack) startAPIWith(t *testing.T, over map[string]string) {
	t.Helper()
	for range 3 {
		port := freePort(t)
		vars := map[string]string{"PORT": port}
		maps.Copy(vars, over)
		p := startProcess(t, "api", binaries.api, s.env(vars))
		url := "http://127.0.0.1:" + port

		deadline := time.Now().Add(30 * time.Second)
		for i := 0; i < 600 && time.Now().Before(deadline) && !p.exited(); i++ {
			if code, _ := s.get(url + "/readyz"); code == http.StatusOK {
				s.api, s.url = p, url
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		if p.exited() && strings.Contains(p.logs.String(), "cannot listen") {
			continue
		}
		t.Fatalf("api not ready within 30s (exited: %v):\n%s", p.exited(), p.logs)
	}
	t.Fatal("api: no free port after 3 tries")
}

// startWorker runs cmd/worker and waits until its asynq server has
// announced itself in Redis, which it does once it takes tasks.
func (s *stack) startWorker(t *testing.T, over map[string]string) *process {
	t.Helper()
	p := startProcess(t, "worker", binaries.worker, s.env(over))
	insp := asynq.NewInspectorFromRedisClient(s.redis.Client(t))

	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 600 && time.Now().Before(deadline) && !p.exited(); i++ {
		servers, err := insp.Servers()
		if err == nil {
			for _, srv := range servers {
				if srv.PID == p.cmd.Process.Pid {
					return p
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("worker not serving within 30s (exited: %v):\n%s", p.exited(), p.logs)
	return nil
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return strconv.Itoa(port)
}

// get fetches url and returns the status and body; status 0 if the request
// failed.
func (s *stack) get(url string) (int, []byte) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("X-API-Key", apiKey)
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// messageBody is a valid send request; n makes each one different.
func messageBody(n int) string {
	return fmt.Sprintf(`{"to":"+1 202 555 %04d","media_url":"https://cdn.example.com/mms/%d.jpg",`+
		`"message":"fault test %d","reference":"fault-%d"}`, 1000+n%9000, n, n, n)
}

// answer is the API's reply to one send.
type answer struct {
	status int
	jobID  string
	took   time.Duration
	err    error // the request itself failed
}

// trySend posts one message and reports what came back; it never fails the
// test, so it may run in any goroutine.
func (s *stack) trySend(n int) answer {
	start := time.Now()
	req, err := http.NewRequest(http.MethodPost, s.url+"/api/mms/send", strings.NewReader(messageBody(n)))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", apiKey)
	resp, err := s.http.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()

	a := answer{status: resp.StatusCode}
	var body struct {
		JobID string `json:"job_id"`
	}
	raw, err := io.ReadAll(resp.Body)
	a.took = time.Since(start)
	if err != nil {
		a.err = err
		return a
	}
	if a.status == http.StatusAccepted {
		if err := json.Unmarshal(raw, &body); err != nil || !mms.ValidJobID(body.JobID) {
			a.err = fmt.Errorf("202 without a job ID: %s", raw)
		}
		a.jobID = body.JobID
	}
	return a
}

// send posts count messages and requires a 202 for each; it returns their
// job IDs.
func (s *stack) send(t *testing.T, count int) []string {
	t.Helper()
	ids := make([]string, 0, count)
	for i := range count {
		a := s.trySend(i)
		require.NoError(t, a.err)
		require.Equal(t, http.StatusAccepted, a.status, "send %d", i)
		ids = append(ids, a.jobID)
	}
	return ids
}

// job is the part of a job's record the tests look at.
type job struct {
	ID           string        `json:"job_id"`
	Status       mms.Status    `json:"status"`
	Attempts     int           `json:"attempts"`
	MaxAttempts  int           `json:"max_attempts"`
	SinchBatchID *string       `json:"sinch_batch_id"`
	LastError    *mms.JobError `json:"last_error"`
}

// job reads one job through the API.
func (s *stack) job(t *testing.T, id string) job {
	t.Helper()
	code, body := s.get(s.url + "/api/mms/jobs/" + id)
	require.Equal(t, http.StatusOK, code, "GET job %s: %s", id, body)
	var j job
	require.NoError(t, json.Unmarshal(body, &j), "%s", body)
	return j
}

// settled reports whether nothing more will happen to a job here: it is
// sent (only delivery reports, which these tests do not use, move it on) or
// in a final status.
func settled(st mms.Status) bool { return st == mms.StatusSent || st.Final() }

// waitFinal polls the API until every job is settled, for at most limit,
// and returns the jobs as last seen.
func (s *stack) waitFinal(t *testing.T, ids []string, limit time.Duration) map[string]job {
	t.Helper()
	const every = 250 * time.Millisecond
	seen := make(map[string]job, len(ids))
	deadline := time.Now().Add(limit)
	for round := 0; ; round++ {
		pending := 0
		for _, id := range ids {
			if j, ok := seen[id]; ok && settled(j.Status) {
				continue
			}
			j := s.job(t, id)
			seen[id] = j
			if !settled(j.Status) {
				pending++
			}
		}
		if pending == 0 {
			return seen
		}
		if time.Now().After(deadline) || round > int(limit/every) {
			t.Fatalf("%d of %d jobs not settled after %s: %s", pending, len(ids), limit, summary(seen))
		}
		time.Sleep(every)
	}
}

// requireSentOnce is every test's closing check: each accepted job ends
// sent within limit, Sinch holds exactly one batch for it, the job names
// that batch, and Sinch holds no other batch.
func (s *stack) requireSentOnce(t *testing.T, ids []string, limit time.Duration) map[string]job {
	t.Helper()
	jobs := s.waitFinal(t, ids, limit)

	batchOf := map[string]string{}
	for _, b := range s.sinch.sim.Batches() {
		batchOf[b.ClientReference] = b.ID
	}
	for _, id := range ids {
		j := jobs[id]
		require.Equal(t, mms.StatusSent, j.Status, "job %s: %+v (last error %+v)", id, j, j.LastError)
		require.Equal(t, 1, s.sinch.sim.CountByClientReference(id), "batches at Sinch for job %s", id)
		require.NotNil(t, j.SinchBatchID, "job %s", id)
		require.Equal(t, batchOf[id], *j.SinchBatchID, "job %s names the batch Sinch holds", id)
	}
	var extra []string
	for ref := range batchOf {
		if _, ok := jobs[ref]; !ok {
			extra = append(extra, ref)
		}
	}
	require.Empty(t, extra, "Sinch holds batches for jobs the API never accepted")
	require.Len(t, s.sinch.sim.Batches(), len(ids), "one batch per accepted job, no other")
	return jobs
}

// summary counts jobs by status, for failure messages.
func summary(jobs map[string]job) string {
	n := map[mms.Status]int{}
	for _, j := range jobs {
		n[j.Status]++
	}
	parts := make([]string, 0, len(n))
	for _, st := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s=%d", st, n[st]))
	}
	return strings.Join(parts, " ")
}
