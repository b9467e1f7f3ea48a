package metrics

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
)

// Jobs counts what happens to jobs, by the asynq queue they wait in. Each
// process counts the changes it makes; Prometheus adds them up. A nil
// *Jobs counts nothing.
type Jobs struct {
	accepted *prometheus.CounterVec
	sent     *prometheus.CounterVec
	failed   *prometheus.CounterVec
	retried  *prometheus.CounterVec
	expired  *prometheus.CounterVec
	canceled *prometheus.CounterVec
	reports  *prometheus.CounterVec
}

func newJobs() *Jobs {
	return &Jobs{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_jobs_accepted_total",
			Help: "Jobs accepted by the API (answered 202, or made from a campaign), by queue.",
		}, []string{"queue"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_jobs_sent_total",
			Help: "Jobs whose batch Sinch accepted, by queue.",
		}, []string{"queue"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_jobs_failed_total",
			Help: "Jobs that failed for good before Sinch took them, by queue and reason code.",
		}, []string{"queue", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_job_retries_total",
			Help: "Attempts that ended in a retry or a wait, by queue and reason code.",
		}, []string{"queue", "reason"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_jobs_expired_total",
			Help: "Jobs whose expire_at passed before Sinch took them, by queue.",
		}, []string{"queue"}),
		canceled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_jobs_canceled_total",
			Help: "Jobs canceled unsent, by queue and reason (operator, campaign_canceled, suppressed).",
		}, []string{"queue", "reason"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmsgate_delivery_reports_total",
			Help: "Per-recipient delivery reports stored, by Sinch's status.",
		}, []string{"status"}),
	}
}

func (j *Jobs) collectors() []prometheus.Collector {
	return []prometheus.Collector{j.accepted, j.sent, j.failed, j.retried, j.expired, j.canceled, j.reports}
}

// Job statuses as the counters name them; mirrors of mms's, which this
// package does not import.
const (
	statusSent     = "sent"
	statusFailed   = "failed"
	statusRetrying = "retrying"
	statusExpired  = "expired"
	statusCanceled = "canceled"
)

// reasonLabel is what a reason code looks like: ours and Sinch's are
// snake_case words. Anything else (Sinch's code is its own text) is
// counted as "other", so that no odd text, let alone a phone number,
// becomes a label value.
var reasonLabel = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// JobChanged counts a job that moved to status in queue; reason is the
// error code that came with it, if any.
func (j *Jobs) JobChanged(queue, status, reason string) { j.JobsChanged(queue, status, reason, 1) }

// JobsChanged counts n jobs that moved to status in queue alike.
func (j *Jobs) JobsChanged(queue, status, reason string, n int) {
	if j == nil || n <= 0 {
		return
	}
	if reason != "" && !reasonLabel.MatchString(reason) {
		reason = "other"
	}
	switch status {
	case statusSent:
		j.sent.WithLabelValues(queue).Add(float64(n))
	case statusFailed:
		j.failed.WithLabelValues(queue, reason).Add(float64(n))
	case statusRetrying:
		j.retried.WithLabelValues(queue, reason).Add(float64(n))
	case statusExpired:
		j.expired.WithLabelValues(queue).Add(float64(n))
	case statusCanceled:
		if reason == "" {
			reason = "operator"
		}
		j.canceled.WithLabelValues(queue, reason).Add(float64(n))
	}
}

// JobAccepted counts a job accepted in queue.
func (j *Jobs) JobAccepted(queue string) {
	if j == nil {
		return
	}
	j.accepted.WithLabelValues(queue).Inc()
}

// DeliveryReports counts stored reports by Sinch's status.
func (j *Jobs) DeliveryReports(byStatus map[string]int) {
	if j == nil {
		return
	}
	for status, n := range byStatus {
		if n > 0 {
			j.reports.WithLabelValues(status).Add(float64(n))
		}
	}
}
