// Package metrics holds the Prometheus metrics mmsgate's processes export.
// Labels carry outcomes and queue names only, never phone numbers or IDs.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Worker is the worker's set of metrics, on a registry of its own.
type Worker struct {
	reg          *prometheus.Registry
	circuitOpen  prometheus.Gauge
	sinchCalls   *prometheus.CounterVec
	sinchLatency prometheus.Histogram
	rateWaits    *prometheus.CounterVec
	rateWaited   *prometheus.CounterVec
	callbacks    *prometheus.CounterVec
	callbackTime prometheus.Histogram
	jobs         *Jobs
}

// NewWorker registers the worker's metrics.
func NewWorker() *Worker {
	w := &Worker{
		reg: prometheus.NewRegistry(),
		circuitOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mmsgate_sinch_circuit_open",
			Help: "1 while this worker holds sending because Sinch keeps failing, else 0.",
		}),
		sinchCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_sinch_requests_total",
			Help: "Calls to Sinch's batches endpoint, by outcome.",
		}, []string{"outcome"}),
		sinchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mmsgate_sinch_request_duration_seconds",
			Help:    "Time taken by calls to Sinch's batches endpoint.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}),
		rateWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_rate_limit_waits_total",
			Help: "Times a send found the rate limits full, by queue and how it waited (in_place, requeued).",
		}, []string{"queue", "how"}),
		rateWaited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_rate_limit_wait_seconds_total",
			Help: "Time sends spent waiting in place for room in the rate limits, by queue.",
		}, []string{"queue"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_client_callbacks_total",
			Help: "Attempts to post a job's status change to its client, by outcome (delivered, retried, failed).",
		}, []string{"outcome"}),
		callbackTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mmsgate_client_callback_duration_seconds",
			Help:    "Time taken by attempts to post a status change to a client.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		jobs: newJobs(),
	}
	w.reg.MustRegister(w.jobs.collectors()...)
	w.reg.MustRegister(w.circuitOpen, w.sinchCalls, w.sinchLatency, w.rateWaits, w.rateWaited,
		w.callbacks, w.callbackTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return w
}

// CircuitOpen records whether the circuit is open.
func (w *Worker) CircuitOpen(open bool) {
	if w == nil {
		return
	}
	v := 0.0
	if open {
		v = 1
	}
	w.circuitOpen.Set(v)
}

// SinchCall records one call's outcome ("ok", "permanent", "transient",
// "throttled", "unauthorized") and duration.
func (w *Worker) SinchCall(outcome string, d time.Duration) {
	if w == nil {
		return
	}
	w.sinchCalls.WithLabelValues(outcome).Inc()
	w.sinchLatency.Observe(d.Seconds())
}

// RateLimitWait records a send that waited for the rate limits: "in_place"
// for d, or "requeued" for later.
func (w *Worker) RateLimitWait(queue, how string, d time.Duration) {
	if w == nil {
		return
	}
	w.rateWaits.WithLabelValues(queue, how).Inc()
	if d > 0 {
		w.rateWaited.WithLabelValues(queue).Add(d.Seconds())
	}
}

// Callback records one attempt to post a callback: "delivered", "retried"
// or "failed" (given up on), and its duration.
func (w *Worker) Callback(outcome string, d time.Duration) {
	if w == nil {
		return
	}
	w.callbacks.WithLabelValues(outcome).Inc()
	w.callbackTime.Observe(d.Seconds())
}

// Jobs counts the job changes this worker makes; nil when w is.
func (w *Worker) Jobs() *Jobs {
	if w == nil {
		return nil
	}
	return w.jobs
}

// Handler serves the metrics in the Prometheus text format.
func (w *Worker) Handler() http.Handler {
	return promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{})
}
