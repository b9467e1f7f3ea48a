// Package reports takes in Sinch's delivery reports for MMS batches and
// stores them with their jobs. The API's callback endpoint uses it, and so
// does the worker, for reports that arrived before it recorded their batch.
package reports

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mmsgate/mmsgate/internal/jobstore"
	"github.com/mmsgate/mmsgate/internal/mms"
)

// The callback types this package stores; Sinch may send others (inbound
// messages) to the same address.
const (
	TypeBatch     = "delivery_report_mms"
	TypeRecipient = "recipient_delivery_report_mms"
)

// ErrMalformed marks a body that is not a delivery report we can read:
// sending it again would not help.
var ErrMalformed = errors.New("malformed delivery report")

// Outcome says what one callback did.
type Outcome struct {
	Type   string
	JobID  string // "" when not known yet
	Stored int    // recipients' reports stored
	// ByStatus counts the stored reports by Sinch's status.
	ByStatus map[string]int
	Repeats  int  // reports already known, or older than what is known
	Ignored  bool // a type we do not store, or a job that no longer exists
	Pending  bool // kept until the worker records the batch
}

// callback is the union of the two report shapes.
type callback struct {
	Type            string `json:"type"`
	BatchID         string `json:"batch_id"`
	ClientReference string `json:"client_reference"`
	// A recipient report.
	Recipient string    `json:"recipient"`
	Code      *int      `json:"code"`
	Status    string    `json:"status"`
	At        time.Time `json:"at"`
	// A batch report: buckets of recipients by status and code.
	Statuses []struct {
		Code       int      `json:"code"`
		Status     string   `json:"status"`
		Count      int      `json:"count"`
		Recipients []string `json:"recipients"`
	} `json:"statuses"`
}

// Store is where reports go; *jobstore.Store is one.
type Store interface {
	ApplyReport(ctx context.Context, id string, r jobstore.Report) (jobstore.Applied, error)
	JobForBatch(ctx context.Context, batchID string, raw []byte) (string, error)
}

// Take stores the reports in one callback body. An error wrapping
// ErrMalformed is the sender's; any other is ours (Redis), and the sender
// should try again.
func Take(ctx context.Context, s Store, body []byte, now time.Time) (Outcome, error) {
	var cb callback
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		return Outcome{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&cb); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Outcome{}, fmt.Errorf("%w: %s is a JSON %s, not the type Sinch sends",
				ErrMalformed, te.Field, te.Value)
		}
		return Outcome{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Outcome{}, fmt.Errorf("%w: something follows the JSON object", ErrMalformed)
	}
	out := Outcome{Type: cb.Type}
	if cb.Type != TypeBatch && cb.Type != TypeRecipient {
		out.Ignored = true
		return out, nil
	}
	if cb.BatchID == "" && cb.ClientReference == "" {
		return out, fmt.Errorf("%w: neither batch_id nor client_reference", ErrMalformed)
	}
	reps, err := cb.reports(now)
	if err != nil {
		return out, err
	}

	// Our batches carry the job ID as client_reference; a report without
	// it (or with another) is matched by batch ID.
	id := cb.ClientReference
	if !mms.ValidJobID(id) {
		if cb.BatchID == "" {
			out.Ignored = true
			return out, nil
		}
		if id, err = s.JobForBatch(ctx, cb.BatchID, body); err != nil {
			return out, err
		}
		if id == "" {
			out.Pending = true
			return out, nil
		}
	}
	out.JobID = id
	for _, r := range reps {
		applied, err := s.ApplyReport(ctx, id, r)
		if err != nil {
			return out, err
		}
		switch applied {
		case jobstore.ReportStored:
			out.Stored++
			if out.ByStatus == nil {
				out.ByStatus = make(map[string]int, 1)
			}
			out.ByStatus[r.Status]++
		case jobstore.ReportNoJob:
			out.Ignored = true
			return out, nil
		case jobstore.ReportNotOurs:
			out.Ignored = true
		default:
			out.Repeats++
		}
	}
	return out, nil
}

// reports lists the per-recipient reports in cb.
func (cb *callback) reports(now time.Time) ([]jobstore.Report, error) {
	at := cb.At
	if at.IsZero() {
		at = now
	}
	if cb.Type == TypeRecipient {
		if cb.Recipient == "" || cb.Code == nil {
			return nil, fmt.Errorf("%w: a recipient report needs recipient, status and code", ErrMalformed)
		}
		r, err := report(cb.Recipient, cb.Status, *cb.Code, at)
		if err != nil {
			return nil, err
		}
		return []jobstore.Report{r}, nil
	}
	var out []jobstore.Report
	for _, b := range cb.Statuses {
		for _, n := range b.Recipients {
			r, err := report(n, b.Status, b.Code, at)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	// A summary report names no recipients: it says nothing per recipient
	// that could be stored; the per-recipient reports or a fetch of the
	// full report do.
	return out, nil
}

// statuses are Sinch's delivery statuses (reference §6.4).
var statuses = []string{"Queued", "Dispatched", "Aborted", "Cancelled", "Rejected", "Deleted", "Delivered",
	"Failed", "Expired", "Unknown"}

var msisdn = regexp.MustCompile(`^\+?[1-9][0-9]{5,14}$`)

// report checks one recipient's report: a phone number in international
// form (Sinch leaves out the "+", our records have it) and a known status.
func report(recipient, status string, code int, at time.Time) (jobstore.Report, error) {
	if !msisdn.MatchString(recipient) {
		return jobstore.Report{}, fmt.Errorf("%w: recipient %q is not a number in international form",
			ErrMalformed, recipient)
	}
	if !slices.Contains(statuses, status) {
		return jobstore.Report{}, fmt.Errorf("%w: status %q is not one of Sinch's", ErrMalformed, status)
	}
	return jobstore.Report{Recipient: "+" + strings.TrimPrefix(recipient, "+"), Status: status, Code: code,
		At: at}, nil
}
