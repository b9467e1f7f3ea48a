package mms

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Campaign limits.
const (
	// MaxCampaignRecipients is how many recipients one campaign may list,
	// invalid and duplicate entries included.
	MaxCampaignRecipients = 100_000
	MaxCampaignName       = 200
	// MaxCampaignParams caps the parameter names a campaign's recipients
	// use: each costs a value per recipient.
	MaxCampaignParams = 20
	// MinCampaignRate and MaxCampaignRate bound a campaign's rate cap, in
	// recipients per second: one every 100 s at the least.
	MinCampaignRate = 0.01
	MaxCampaignRate = 100_000
	// MaxListed caps the invalid and suppressed recipients an answer lists
	// one by one; the counts are always complete.
	MaxListed = 1000
)

// CampaignRequest is the body of POST /api/mms/campaigns as the client
// wrote it.
type CampaignRequest struct {
	Name       string             `json:"name"`
	Recipients CampaignRecipients `json:"recipients"`
	MediaURL   string             `json:"media_url"`
	Message    string             `json:"message"`
	Subject    string             `json:"subject"`
	From       string             `json:"from"`
	Parameters map[string]string  `json:"parameters"`
	Priority   Priority           `json:"priority"`
	RateLimit  float64            `json:"rate_limit"`
	SendAt     string             `json:"send_at"`
	ExpireAt   string             `json:"expire_at"`
	Reference  string             `json:"reference"`
	// CallbackURL, if set, is where each of the campaign's jobs posts its
	// status changes.
	CallbackURL string   `json:"callback_url"`
	CSVColumns  []string `json:"-"` // parameter names from a CSV header
	csvLines    []int    // the CSV line of each recipient, for reporting by line
	overflow    int      // CSV lines beyond MaxCampaignRecipients
}

// CampaignRecipient is one entry of "recipients": a number, with values for
// the message's placeholders if the campaign is personalised.
type CampaignRecipient struct {
	To         string            `json:"to"`
	Parameters map[string]string `json:"parameters,omitempty"`
}

// CampaignRecipients is the "recipients" array. Its entries are numbers, or
// objects {"to": number, "parameters": {name: value}}.
type CampaignRecipients []CampaignRecipient

// UnmarshalJSON reads the array, quickly when it holds only strings.
func (r *CampaignRecipients) UnmarshalJSON(b []byte) error {
	// Pointers, so that a null entry (which encoding/json would leave as
	// "") is told apart and refused below like any other non-string.
	var plain []*string
	if err := json.Unmarshal(b, &plain); err == nil && !slices.Contains(plain, nil) {
		out := make(CampaignRecipients, len(plain))
		for i, n := range plain {
			out[i].To = *n
		}
		*r = out
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fieldError("recipients", "must be an array of phone numbers or of objects with \"to\"")
	}
	out := make(CampaignRecipients, len(raw))
	for i, el := range raw {
		field := "recipients[" + strconv.Itoa(i) + "]"
		el = bytes.TrimSpace(el)
		switch {
		case len(el) > 0 && el[0] == '"':
			if err := json.Unmarshal(el, &out[i].To); err != nil {
				return fieldError(field, "is not a valid JSON string")
			}
		case len(el) > 0 && el[0] == '{':
			members, err := objectMembers(el, field, "must be a phone number or an object")
			if err != nil {
				return err
			}
			for k, v := range members {
				switch k {
				case "to":
					if json.Unmarshal(v, &out[i].To) != nil {
						return fieldError(field+".to", "must be a string")
					}
				case "parameters":
					p, err := recipientParameters(v, field+".parameters")
					if err != nil {
						return err
					}
					out[i].Parameters = p
				default:
					return fieldError(field+"."+k, "is not a known field; use \"to\" and \"parameters\"")
				}
			}
		default:
			return fieldError(field, "must be a phone number or an object, not "+jsonKind(el))
		}
	}
	*r = out
	return nil
}

// recipientParameters reads one recipient's "parameters": an object of
// strings, each name once, as strictly as the request's own fields.
func recipientParameters(b []byte, field string) (map[string]string, error) {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil, nil
	}
	members, err := objectMembers(b, field, "must be an object of strings")
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(members))
	for _, name := range slices.Sorted(maps.Keys(members)) {
		raw := bytes.TrimSpace(members[name])
		var v string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
			return nil, fieldError(field+"."+name, "must be a string, not "+jsonKind(raw))
		}
		out[name] = v
	}
	return out, nil
}

// Rejected is one recipient refused, with its position in the request:
// Index into "recipients", or Line of the CSV.
type Rejected struct {
	Index   *int   `json:"index,omitempty"`
	Line    int    `json:"line,omitempty"`
	Value   string `json:"value"`
	Message string `json:"message"`
}

// CampaignPlan is a validated campaign: what every batch shares, and the
// recipients, normalised and without duplicates, in the order given.
type CampaignPlan struct {
	Name      string
	Content   Message // To and Parameters empty
	Priority  Priority
	Reference string
	RateLimit float64
	// CallbackURL is where the campaign's jobs post their status changes.
	CallbackURL string
	// Recipients are in E.164. Values holds, per parameter name, one value
	// per recipient (noValue where a recipient has none), and Defaults the
	// campaign-wide default of each name that has one.
	Recipients []string
	Values     map[string][]string
	Defaults   map[string]string
	// Listed is how many entries the request listed; Invalid the first
	// MaxListed of those refused and InvalidCount all of them; Duplicates
	// those dropped as repeats after normalisation.
	Listed       int
	Invalid      []Rejected
	InvalidCount int
	Duplicates   int
}

// Batch returns the message for recipients [from, to) of the plan.
func (p *CampaignPlan) Batch(from, to int) Message {
	m := p.Content
	m.To = p.Recipients[from:to]
	if len(p.Values) > 0 || len(p.Defaults) > 0 {
		m.Parameters = make(map[string]map[string]string, len(p.Values)+len(p.Defaults))
		for name, vals := range p.Values {
			inner := make(map[string]string, to-from+1)
			for i := from; i < to; i++ {
				if vals[i] != noValue {
					inner[p.Recipients[i]] = vals[i]
				}
			}
			// A name none of these recipients has a value for (it may come
			// from a refused recipient only) would reach Sinch as an empty
			// object, which a send's own validation refuses.
			if len(inner) > 0 {
				m.Parameters[name] = inner
			}
		}
		for name, v := range p.Defaults {
			if m.Parameters[name] == nil {
				m.Parameters[name] = map[string]string{}
			}
			m.Parameters[name]["default"] = v
		}
		if len(m.Parameters) == 0 {
			m.Parameters = nil
		}
	}
	return m
}

// Validate checks the campaign. A problem with the campaign as a whole (its
// media, text, sender, timing) is an error naming the field. A recipient
// that is not a valid number, or lacks a value the message needs, is
// refused on its own and listed; only when no recipient is left is that an
// error too (ErrNoRecipients, with the plan so its list can be shown).
func (r *CampaignRequest) Validate(rules Rules) (*CampaignPlan, error) {
	var verr ValidationError
	if n := utf8.RuneCountInString(r.Name); n > MaxCampaignName {
		verr.add("name", "must be at most %d characters, got %d", MaxCampaignName, n)
	}
	if hasControl(r.Name, "") {
		verr.add("name", "must not contain control characters")
	}
	switch {
	case len(r.Recipients) == 0:
		verr.add("recipients", "is required: 1 to %d phone numbers", MaxCampaignRecipients)
	case len(r.Recipients)+r.overflow > MaxCampaignRecipients:
		verr.add("recipients", "has %d entries; at most %d are allowed", len(r.Recipients)+r.overflow,
			MaxCampaignRecipients)
	}
	if r.RateLimit != 0 && !(r.RateLimit >= MinCampaignRate && r.RateLimit <= MaxCampaignRate) {
		verr.add("rate_limit", "must be %g to %g recipients per second; leave it out for no cap",
			MinCampaignRate, float64(MaxCampaignRate))
	}
	msg, prio := content{
		MediaURL: r.MediaURL, Message: r.Message, Subject: r.Subject, From: r.From,
		Reference: r.Reference, Priority: r.Priority, SendAt: r.SendAt, ExpireAt: r.ExpireAt,
		CallbackURL: r.CallbackURL,
	}.validate(rules, PriorityBulk, &verr)

	defaults := make(map[string]string, len(r.Parameters))
	for _, name := range slices.Sorted(maps.Keys(r.Parameters)) {
		v := r.Parameters[name]
		if msg := checkValue(name, v); msg != "" {
			verr.add("parameters."+name, "%s", msg)
			continue
		}
		defaults[name] = v
	}
	needed := placeholders(r.Message, &verr)
	columns := slices.Sorted(maps.Keys(r.columnsUsed()))
	if len(columns) > MaxCampaignParams {
		verr.add("recipients", "use %d parameter names; at most %d are allowed", len(columns), MaxCampaignParams)
	}
	if len(verr.Fields) > 0 {
		return nil, &verr
	}

	plan := &CampaignPlan{
		Name: r.Name, Content: msg, Priority: prio, Reference: r.Reference, RateLimit: r.RateLimit,
		CallbackURL: r.CallbackURL, Defaults: defaults, Listed: len(r.Recipients),
	}
	if len(defaults) == 0 {
		plan.Defaults = nil
	}
	r.normalize(plan, rules.DefaultRegion, needed, columns)
	if len(plan.Recipients) == 0 {
		return plan, ErrNoRecipients
	}
	return plan, nil
}

// noValue stands in Values for a recipient without a value: no value may
// hold a control character, so it cannot be mistaken for one.
const noValue = "\x00"

// ErrNoRecipients is returned by CampaignRequest.Validate when every
// recipient was refused.
var ErrNoRecipients = errors.New("no valid recipient")

// checkValue checks one parameter name and value; "" when both are good.
func checkValue(name, v string) string {
	switch {
	case !paramKey.MatchString(name):
		return fmt.Sprintf("name must be 1 to %d of A-Z a-z 0-9 . _ -", MaxParamKey)
	case utf8.RuneCountInString(v) > MaxParamValue:
		return fmt.Sprintf("must be at most %d characters", MaxParamValue)
	case hasControl(v, "\n\r\t"):
		return "must not contain control characters"
	}
	return ""
}

// placeholders lists the ${name} placeholders of text.
func placeholders(text string, verr *ValidationError) []string {
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		if !paramKey.MatchString(m[1]) {
			verr.add("message", "has a placeholder ${%s} whose name is not 1 to %d of A-Z a-z 0-9 . _ -",
				m[1], MaxParamKey)
			continue
		}
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// normalize fills plan's recipients and values from r: numbers in E.164,
// the first of any repeats kept, the refused listed. Parsing numbers is the
// costly part of a large campaign, so it is spread over the CPUs. names are
// the parameter names recipients use, sorted.
func (r *CampaignRequest) normalize(plan *CampaignPlan, region string, needed, names []string) {
	n := len(r.Recipients)
	numbers := make([]string, n)
	problems := make([]string, n)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/2000))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				numbers[i], problems[i] = r.check(i, region, needed, plan.Defaults)
			}
		})
	}
	wg.Wait()

	if len(names) > 0 {
		plan.Values = make(map[string][]string, len(names))
	}
	seen := make(map[string]struct{}, n)
	plan.Recipients = make([]string, 0, n)
	for i := range n {
		if problems[i] != "" {
			plan.InvalidCount++
			if len(plan.Invalid) < MaxListed {
				plan.Invalid = append(plan.Invalid, r.rejected(i, problems[i]))
			}
			continue
		}
		if _, dup := seen[numbers[i]]; dup {
			plan.Duplicates++
			continue
		}
		seen[numbers[i]] = struct{}{}
		plan.Recipients = append(plan.Recipients, numbers[i])
		for _, name := range names {
			v, ok := r.Recipients[i].Parameters[name]
			if !ok {
				v = noValue
			}
			plan.Values[name] = append(plan.Values[name], v)
		}
	}
}

// check normalises recipient i; it returns the number, or what is wrong.
func (r *CampaignRequest) check(i int, region string, needed []string, defaults map[string]string) (string, string) {
	rc := r.Recipients[i]
	num, err := NormalizeNumber(rc.To, region)
	if err != nil {
		return "", err.Error()
	}
	for _, name := range slices.Sorted(maps.Keys(rc.Parameters)) {
		if msg := checkValue(name, rc.Parameters[name]); msg != "" {
			return "", "parameters." + name + ": " + msg
		}
	}
	for _, name := range needed {
		_, has := rc.Parameters[name]
		if _, dflt := defaults[name]; !has && !dflt {
			return "", fmt.Sprintf("has no value for ${%s}, and parameters has no default for it", name)
		}
	}
	return num, ""
}

func (r *CampaignRequest) rejected(i int, msg string) Rejected {
	out := Rejected{Value: r.Recipients[i].To, Message: msg}
	if r.csvLines != nil {
		out.Line = r.csvLines[i]
	} else {
		idx := i
		out.Index = &idx
	}
	return out
}

// columnsUsed names every parameter any recipient has.
func (r *CampaignRequest) columnsUsed() map[string]bool {
	names := make(map[string]bool)
	for _, c := range r.CSVColumns {
		names[c] = true
	}
	if r.csvLines != nil {
		return names
	}
	for _, rc := range r.Recipients {
		for k := range rc.Parameters {
			names[k] = true
		}
	}
	return names
}

// csvHeaders are the first-column names that mark a CSV's first line as a
// header rather than a recipient.
var csvHeaders = []string{"to", "number", "phone", "phone_number", "msisdn", "mobile", "recipient"}

// ReadRecipientsCSV reads recipients from CSV: one number per line, or, with
// a header line whose first column is named to, number, phone (and the
// like), a number and one value per further column, the columns naming the
// parameters. Blank lines, and lines of nothing but spaces, are skipped.
// The CSV must be UTF-8; a byte order mark before it is dropped.
func (r *CampaignRequest) ReadRecipientsCSV(in io.Reader) error {
	// The mark goes before the CSV reader sees it: left in, it would make a
	// quoted first field ("\uFEFF\"phone\"") a syntax error.
	br := bufio.NewReader(in)
	if bom, _ := br.Peek(3); string(bom) == "\uFEFF" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var header []string
	line := 0
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			return fieldError("recipients", fmt.Sprintf("line %d: %v", perr.Line, perr.Err))
		}
		if err != nil {
			return err
		}
		line, _ = cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		for i, f := range rec {
			if !utf8.ValidString(f) {
				l, _ := cr.FieldPos(i)
				return fieldError("recipients", fmt.Sprintf(
					"line %d: is not valid UTF-8; save the file as UTF-8", l))
			}
		}
		// The header, if any, is the first line that is not blank.
		if first {
			first = false
			if slices.Contains(csvHeaders, strings.ToLower(strings.TrimSpace(rec[0]))) {
				if len(rec)-1 > MaxCampaignParams {
					return fieldError("recipients", fmt.Sprintf(
						"line %d: has %d parameter columns; at most %d are allowed",
						line, len(rec)-1, MaxCampaignParams))
				}
				header = slices.Clone(rec[1:])
				for i, h := range header {
					header[i] = strings.TrimSpace(h)
					if !paramKey.MatchString(header[i]) {
						return fieldError("recipients", fmt.Sprintf(
							"line %d: column %d: %q is not a parameter name (1 to %d of A-Z a-z 0-9 . _ -)",
							line, i+2, h, MaxParamKey))
					}
				}
				if dup := firstRepeat(header); dup != "" {
					return fieldError("recipients", fmt.Sprintf("line %d: column %q appears twice", line, dup))
				}
				r.CSVColumns = header
				continue
			}
		}
		if len(rec) != len(header)+1 {
			return fieldError("recipients", fmt.Sprintf(
				"line %d: has %d columns, expected %d; a number per line, "+
					"or a header line naming the parameter columns after \"to\"", line, len(rec), len(header)+1))
		}
		if len(r.Recipients) >= MaxCampaignRecipients {
			r.overflow++ // counted, for Validate to report, but not kept
			continue
		}
		rc := CampaignRecipient{To: strings.TrimSpace(rec[0])}
		if len(header) > 0 {
			rc.Parameters = make(map[string]string, len(header))
			for i, name := range header {
				rc.Parameters[name] = rec[i+1]
			}
		}
		r.Recipients = append(r.Recipients, rc)
		r.csvLines = append(r.csvLines, line)
	}
	return nil
}

func firstRepeat(s []string) string {
	seen := make(map[string]bool, len(s))
	for _, v := range s {
		if seen[v] {
			return v
		}
		seen[v] = true
	}
	return ""
}

// ReadCampaignFields fills the campaign's other fields from a query string
// or form, as sent with a CSV of recipients. Parameter defaults come as
// parameters.<name>=<value>. Unknown names and repeated ones are refused.
func (r *CampaignRequest) ReadCampaignFields(v url.Values) error {
	text := map[string]*string{
		"name": &r.Name, "media_url": &r.MediaURL, "message": &r.Message, "subject": &r.Subject,
		"from": &r.From, "priority": (*string)(&r.Priority), "send_at": &r.SendAt, "expire_at": &r.ExpireAt,
		"reference": &r.Reference, "callback_url": &r.CallbackURL,
	}
	for key, vals := range v {
		name, isParam := strings.CutPrefix(key, "parameters.")
		if _, known := text[key]; !isParam && !known && key != "rate_limit" {
			return fieldError(key, "is not a known field")
		}
		if len(vals) != 1 {
			return fieldError(key, "appears more than once")
		}
		val := vals[0]
		if !utf8.ValidString(val) {
			return fieldError(key, "is not valid UTF-8")
		}
		if isParam {
			if r.Parameters == nil {
				r.Parameters = make(map[string]string)
			}
			r.Parameters[name] = val
			continue
		}
		if key == "rate_limit" {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return fieldError(key, "must be a number of recipients per second")
			}
			r.RateLimit = f
			continue
		}
		*text[key] = val
	}
	return nil
}
