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
	}
	w.reg.MustRegister(w.circuitOpen, w.sinchCalls, w.sinchLatency,
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

// Handler serves the metrics in the Prometheus text format.
func (w *Worker) Handler() http.Handler {
	return promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{})
}
