package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// API is the API's set of metrics, on a registry of its own.
type API struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	jobs     *Jobs
}

// NewAPI registers the API's metrics.
func NewAPI() *API {
	a := &API{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mmsgate_http_request_duration_seconds",
			Help:    "Time taken to answer HTTP requests, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route", "method"}),
		jobs: newJobs(),
	}
	a.reg.MustRegister(a.requests, a.latency, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reg.MustRegister(a.jobs.collectors()...)
	return a
}

// Request records one answered request. route is the pattern
// ("/api/mms/jobs/:id"), never the path, so IDs and numbers stay out.
func (a *API) Request(route, method string, status int, d time.Duration) {
	if a == nil {
		return
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
	default:
		method = "other" // a client may send any token as a method
	}
	a.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	a.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// Jobs counts the job changes the API makes; nil when a is.
func (a *API) Jobs() *Jobs {
	if a == nil {
		return nil
	}
	return a.jobs
}

// Register adds a collector, such as the queues', to the API's metrics.
func (a *API) Register(c prometheus.Collector) { a.reg.MustRegister(c) }

// Handler serves the metrics in the Prometheus text format.
func (a *API) Handler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
}

// QueueInspector reads queues' state; *asynq.Inspector is one.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// Queues reports the size and latency of asynq queues. The numbers are the
// same from every process, so one place collects them: the API's
// /metrics. A scrape within ttl of the last one gets the same figures,
// so that many scrapers cost Redis no more than one.
type Queues struct {
	insp   QueueInspector
	queues []string
	ttl    time.Duration
	log    zerolog.Logger

	size    *prometheus.Desc
	latency *prometheus.Desc

	mu      sync.Mutex
	at      time.Time // of the last read, whether it worked or not
	cache   []*asynq.QueueInfo
	reading bool
}

// NewQueues returns a collector of the given queues.
func NewQueues(insp QueueInspector, queues []string, ttl time.Duration, log zerolog.Logger) *Queues {
	return &Queues{
		insp: insp, queues: queues, ttl: ttl, log: log,
		size: prometheus.NewDesc("mmsgate_queue_tasks",
			"Tasks in an asynq queue, by state (pending, active, scheduled, retry, archived).",
			[]string{"queue", "state"}, nil),
		latency: prometheus.NewDesc("mmsgate_queue_latency_seconds",
			"How long the oldest pending task of a queue has waited.", []string{"queue"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (q *Queues) Describe(ch chan<- *prometheus.Desc) {
	ch <- q.size
	ch <- q.latency
}

// Collect implements prometheus.Collector.
func (q *Queues) Collect(ch chan<- prometheus.Metric) {
	for _, info := range q.read() {
		for _, s := range []struct {
			state string
			n     int
		}{
			{"pending", info.Pending}, {"active", info.Active}, {"scheduled", info.Scheduled},
			{"retry", info.Retry}, {"archived", info.Archived},
		} {
			ch <- prometheus.MustNewConstMetric(q.size, prometheus.GaugeValue, float64(s.n), info.Queue, s.state)
		}
		ch <- prometheus.MustNewConstMetric(q.latency, prometheus.GaugeValue, info.Latency.Seconds(), info.Queue)
	}
}

// read returns the queues' state, from the cache while it is fresh. A
// queue that does not exist yet reads as empty; one that cannot be read is
// left out. A scrape never waits for another one's read of Redis: while
// one reads, the others get the last figures (none before the first read
// ends), so a Redis that stalls slows one scrape, not all of them and not
// the request metrics beside them. A failed read is not retried before ttl.
func (q *Queues) read() []*asynq.QueueInfo {
	q.mu.Lock()
	if q.reading || time.Since(q.at) < q.ttl {
		cached := q.cache
		q.mu.Unlock()
		return cached
	}
	q.reading = true
	q.mu.Unlock()
	out := q.fetch()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reading, q.at = false, time.Now()
	if out != nil {
		q.cache = out
	}
	return q.cache
}

// fetch reads every queue's state from Redis; nil when the list of queues
// cannot be read.
func (q *Queues) fetch() []*asynq.QueueInfo {
	known, err := q.insp.Queues()
	if err != nil {
		q.log.Warn().Err(err).Msg("queue metrics not read")
		return nil
	}
	out := make([]*asynq.QueueInfo, 0, len(q.queues))
	for _, name := range q.queues {
		if !slices.Contains(known, name) {
			// asynq creates a queue with its first task.
			out = append(out, &asynq.QueueInfo{Queue: name})
			continue
		}
		info, err := q.insp.GetQueueInfo(name)
		if err != nil {
			q.log.Warn().Err(err).Str("queue", name).Msg("queue metrics not read")
			continue
		}
		out = append(out, info)
	}
	return out
}
