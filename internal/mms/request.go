package mms

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// Limits of a send request. Sinch's own limits are uncertain in places (see
// the reference): where sources disagree we take the stricter value, so that
// what we accept Sinch accepts too.
const (
	MaxRecipients   = 1000
	MaxMediaURL     = 2048
	MaxText         = 2000
	MaxSubject      = 80
	MaxReference    = 128
	MaxParamKey     = 16
	MaxParamValue   = 1600
	maxSenderLength = 16
)

// FieldError names one field of a request and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in a request.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Fields) == 0 {
		return "invalid request"
	}
	f := e.Fields[0]
	msg := f.Field + ": " + f.Message
	if len(e.Fields) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(e.Fields)-1)
	}
	return msg
}

// Is lets callers test for ErrInvalid with errors.Is.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Recipients is the "to" field: one number, or an array of numbers.
type Recipients []string

// UnmarshalJSON accepts a string or an array of strings.
func (r *Recipients) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*r = Recipients{one}
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		many := make([]string, len(raw))
		for i, el := range raw {
			if el = bytes.TrimSpace(el); len(el) == 0 || el[0] != '"' || json.Unmarshal(el, &many[i]) != nil {
				return fieldError("to["+strconv.Itoa(i)+"]", "must be a string, not "+jsonKind(el))
			}
		}
		*r = many
		return nil
	}
	if string(b) == "null" {
		*r = nil
		return nil
	}
	return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflectString}
}

// Parameters are Sinch's per-recipient values: name -> recipient (or
// "default") -> value.
type Parameters map[string]map[string]string

// UnmarshalJSON decodes the two levels one by one, so that a value of the
// wrong type is reported with its full path, e.g. parameters.name.default.
func (p *Parameters) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*p = nil
		return nil
	}
	outer, err := objectMembers(b, "parameters", "must be an object of objects")
	if err != nil {
		return err
	}
	out := make(Parameters, len(outer))
	for _, name := range slices.Sorted(maps.Keys(outer)) {
		field := "parameters." + name
		inner, err := objectMembers(outer[name], field, `must be an object mapping recipients or "default" to strings`)
		if err != nil {
			return err
		}
		values := make(map[string]string, len(inner))
		for _, who := range slices.Sorted(maps.Keys(inner)) {
			var v string
			raw := bytes.TrimSpace(inner[who])
			if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &v) != nil {
				return fieldError(field+"."+who, "must be a string")
			}
			values[who] = v
		}
		out[name] = values
	}
	*p = out
	return nil
}

// objectMembers decodes a JSON object into its members, refusing a value
// that is not an object and a key that appears twice.
func objectMembers(b []byte, field, notObject string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fieldError(field, notObject)
	}
	out := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fieldError(field, notObject)
		}
		key, _ := tok.(string)
		if _, dup := out[key]; dup {
			return nil, fieldError(field+"."+key, "appears more than once")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fieldError(field, notObject)
		}
		out[key] = v
	}
	return out, nil
}

func fieldError(field, msg string) error {
	return &ValidationError{Fields: []FieldError{{Field: field, Message: msg}}}
}

// SendRequest is the body of POST /api/mms/send as the client wrote it.
type SendRequest struct {
	To         Recipients `json:"to"`
	MediaURL   string     `json:"media_url"`
	Message    string     `json:"message"`
	Subject    string     `json:"subject"`
	From       string     `json:"from"`
	Parameters Parameters `json:"parameters"`
	Reference  string     `json:"reference"`
	Priority   Priority   `json:"priority"`
	ExpireAt   string     `json:"expire_at"`
	SendAt     string     `json:"send_at"`
	// CallbackURL, if set, is where the job's status changes are posted.
	CallbackURL string `json:"callback_url"`
}

// Rules are the settings validation depends on.
type Rules struct {
	DefaultFrom   string // sender used when the request names none, as NormalizeSender gives it
	DefaultRegion string // region for numbers without a country code
	// DefaultExpiry and MaxExpiry bound how long after acceptance a job may
	// still be sent; zero means SinchMaxExpiry.
	DefaultExpiry time.Duration
	MaxExpiry     time.Duration
	// MaxSchedule is how far ahead send_at may lie; zero means a week.
	MaxSchedule time.Duration
	// MediaHostAllowed, when set, lets a media URL name a host that is not
	// public (for tests, a demo, a private network), as the media checks'
	// allow-list does.
	MediaHostAllowed func(host string, port uint16) bool
	// Callbacks says whether a request may give a callback_url: the server
	// has a secret to sign callbacks with. CallbackHostAllowed is the
	// allow-list of callback hosts that are not public, as for media.
	Callbacks           bool
	CallbackHostAllowed func(host string, port uint16) bool
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// SinchMaxExpiry is the longest Sinch keeps trying a batch: its expire_at
// defaults to, and may not exceed, three days after sending.
const SinchMaxExpiry = 72 * time.Hour

// Validate checks r and returns the normalised message and priority. Every
// problem found is reported, not only the first.
func (r SendRequest) Validate(rules Rules) (Message, Priority, error) {
	var verr ValidationError
	to := normalizeRecipients(r.To, rules.DefaultRegion, &verr)
	msg, prio := content{
		MediaURL: r.MediaURL, Message: r.Message, Subject: r.Subject, From: r.From,
		Reference: r.Reference, Priority: r.Priority, SendAt: r.SendAt, ExpireAt: r.ExpireAt,
		CallbackURL: r.CallbackURL,
	}.validate(rules, PriorityNormal, &verr)
	msg.To = to
	msg.Parameters = checkParameters(r.Parameters, r.Message, msg.To, rules.DefaultRegion, &verr)
	return msg, prio, verr.err()
}

// content is what a send and a campaign share: everything but the
// recipients and their values.
type content struct {
	MediaURL, Message, Subject, From, Reference string
	Priority                                    Priority
	SendAt, ExpireAt                            string
	CallbackURL                                 string
}

// validate checks c and returns the message without recipients, and the
// priority, dflt when none is given.
func (c content) validate(rules Rules, dflt Priority, verr *ValidationError) (Message, Priority) {
	msg := Message{
		MediaURL: c.MediaURL,
		Text:     c.Message,
		Subject:  c.Subject,
	}
	checkURL("media_url", c.MediaURL, rules.MediaHostAllowed, verr)
	if c.CallbackURL != "" {
		if !rules.Callbacks {
			verr.add("callback_url", "callbacks are off on this server (CLIENT_CALLBACK_SECRET is not set)")
		} else {
			checkURL("callback_url", c.CallbackURL, rules.CallbackHostAllowed, verr)
		}
	}

	if n := utf8.RuneCountInString(c.Message); n > MaxText {
		verr.add("message", "must be at most %d characters, got %d", MaxText, n)
	}
	if n := utf8.RuneCountInString(c.Subject); n > MaxSubject {
		verr.add("subject", "must be at most %d characters, got %d", MaxSubject, n)
	}
	if n := utf8.RuneCountInString(c.Reference); n > MaxReference {
		verr.add("reference", "must be at most %d characters, got %d", MaxReference, n)
	}
	for _, f := range []struct{ name, value, allowed string }{
		{"message", c.Message, "\n\r\t"},
		{"subject", c.Subject, ""},
		{"reference", c.Reference, ""},
	} {
		if hasControl(f.value, f.allowed) {
			verr.add(f.name, "must not contain control characters or invalid escapes")
		}
	}

	from := strings.Trim(c.From, " ")
	if from == "" && c.From != "" {
		verr.add("from", "is blank; leave it out to use the default sender")
	}
	if c.From == "" {
		msg.From = rules.DefaultFrom // checked once, at start
	} else if from != "" {
		f, err := NormalizeSender(from, rules.DefaultRegion)
		if err != nil {
			verr.add("from", "%v", err)
		}
		msg.From = f
	}

	prio := c.Priority
	if prio == "" {
		prio = dflt
	}
	if !prio.Valid() {
		verr.add("priority", "must be one of high, normal, bulk")
	}
	now := time.Now()
	if rules.Now != nil {
		now = rules.Now()
	}
	msg.SendAt = schedule(c.SendAt, now, rules, verr)
	base := now
	if msg.SendAt.After(now) {
		base = msg.SendAt
	}
	msg.ExpireAt = expiry(c.ExpireAt, base, rules, verr)
	return msg, prio
}

// schedule reads send_at, an RFC 3339 time with an offset; zero when absent.
func schedule(s string, now time.Time, rules Rules, verr *ValidationError) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		verr.add("send_at", "must be an RFC 3339 time with an offset, e.g. 2026-12-05T09:00:00-05:00")
		return time.Time{}
	}
	limit := cmp.Or(rules.MaxSchedule, 7*24*time.Hour)
	switch {
	case !t.After(now):
		verr.add("send_at", "must be in the future; leave it out to send at once")
	case t.After(now.Add(limit)):
		verr.add("send_at", "must be at most %s from now", limit)
	}
	return t.UTC().Truncate(time.Millisecond)
}

// expiry reads expire_at, an RFC 3339 time with an offset, or applies the
// default, counted from base: the send time. The result is in UTC, to the
// millisecond.
func expiry(s string, base time.Time, rules Rules, verr *ValidationError) time.Time {
	maxExp := cmp.Or(rules.MaxExpiry, SinchMaxExpiry)
	if s == "" {
		return base.Add(cmp.Or(rules.DefaultExpiry, maxExp)).UTC().Truncate(time.Millisecond)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		verr.add("expire_at", "must be an RFC 3339 time with an offset, e.g. 2026-12-05T18:00:00+01:00")
		return time.Time{}
	}
	switch {
	case !t.After(base.Add(time.Minute)):
		verr.add("expire_at", "must be at least a minute in the future (after send_at, if given)")
	case t.After(base.Add(maxExp)):
		verr.add("expire_at", "must be at most %s from now (from send_at, if given)", maxExp)
	}
	return t.UTC().Truncate(time.Millisecond)
}

func normalizeRecipients(to Recipients, region string, verr *ValidationError) []string {
	switch {
	case len(to) == 0:
		verr.add("to", "is required: one phone number or an array of 1 to %d", MaxRecipients)
		return nil
	case len(to) > MaxRecipients:
		verr.add("to", "has %d numbers; at most %d fit in one batch", len(to), MaxRecipients)
		return nil
	}

	out := make([]string, 0, len(to))
	seen := make(map[string]int, len(to))
	for i, raw := range to {
		field := "to"
		if len(to) > 1 {
			field = "to[" + strconv.Itoa(i) + "]"
		}
		n, err := NormalizeNumber(raw, region)
		if err != nil {
			verr.add(field, "%v", err)
			continue
		}
		if j, dup := seen[n]; dup {
			verr.add(field, "repeats to[%d]", j)
			continue
		}
		seen[n] = i
		out = append(out, n)
	}
	return out
}

// NormalizeNumber parses a phone number written in any common way (spaces,
// dashes, dots, brackets, a leading + or 00) and returns it in E.164.
// Numbers without a country code are read in the given region.
func NormalizeNumber(raw, region string) (string, error) {
	s := strings.Trim(raw, " ")
	if s == "" {
		return "", fmt.Errorf("is empty")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune(phoneChars, r) }) {
		return "", fmt.Errorf("may hold only digits, spaces and + - . ( )")
	}
	if len(s) > 32 {
		return "", fmt.Errorf("is too long to be a phone number")
	}
	if err := wellFormed(s); err != nil {
		return "", err
	}
	if nanp, ok := plainNANP(s); ok {
		// Already E.164 in the North American plan, as campaign lists
		// mostly are: skip the general parser, by far the costliest step.
		num := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(1), NationalNumber: proto.Uint64(nanp)}
		if !phonenumbers.IsValidNumber(num) {
			return "", fmt.Errorf("is not a valid phone number for its country")
		}
		return s, nil
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return "", fmt.Errorf("is not a phone number")
	}
	if num.GetExtension() != "" || !phonenumbers.IsValidNumber(num) {
		return "", fmt.Errorf("is not a valid phone number for its country")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

const phoneChars = "0123456789+-.() "

// plainNANP reads "+1" and ten digits, the E.164 form of a number in the
// North American plan, returning the ten digits as a number.
func plainNANP(s string) (uint64, bool) {
	if len(s) != 12 || s[0] != '+' || s[1] != '1' {
		return 0, false
	}
	var n uint64
	for i := 2; i < 12; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// wellFormed checks the way a number is written, which the phone-number
// library reads very leniently: one leading +, at most one pair of brackets
// around digits, single separators between groups of digits, and at most two
// groups of a single digit after the first, as in "+33 6 12 34 56 78" or
// "+44 (0) 20 7946 0958" (so "2.0.2.5.5.5.0.1.2.3" is refused).
func wellFormed(s string) error {
	bad := fmt.Errorf("is not written like a phone number")
	if strings.LastIndex(s, "+") > 0 {
		return bad
	}
	open, closed := strings.Count(s, "("), strings.Count(s, ")")
	if open != closed || open > 1 {
		return bad
	}
	if open == 1 {
		i, j := strings.Index(s, "("), strings.Index(s, ")")
		inner := s[i+1 : j]
		if j < i+2 || strings.Trim(inner, "0123456789") != "" {
			return bad
		}
		s = s[:i] + inner + s[j+1:]
	}

	s = strings.TrimPrefix(s, "+")
	groups := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' || r == '.' })
	if len(groups) == 0 || strings.Join(groups, "") == "" {
		return bad
	}
	// Separators stand alone and only between digits.
	if s[0] < '0' || s[0] > '9' || s[len(s)-1] < '0' || s[len(s)-1] > '9' {
		return bad
	}
	if strings.Count(s, " ")+strings.Count(s, "-")+strings.Count(s, ".") != len(groups)-1 {
		return bad
	}
	single := 0
	for _, g := range groups[1:] {
		if len(g) == 1 {
			single++
		}
	}
	if single > 2 {
		return bad
	}
	return nil
}

var shortCode = regexp.MustCompile(`^[0-9]{3,8}$`)

// NormalizeSender accepts a full phone number (returned in E.164) or a short
// code, which MMS in the US is often sent from.
func NormalizeSender(s, region string) (string, error) {
	if len(s) > maxSenderLength+8 {
		return "", fmt.Errorf("is too long")
	}
	if shortCode.MatchString(s) {
		return s, nil
	}
	n, err := NormalizeNumber(s, region)
	if err != nil {
		return "", fmt.Errorf("must be a phone number or a short code of 3 to 8 digits")
	}
	return n, nil
}

// checkURL checks a URL that is fetched or posted to from outside
// (media_url by Sinch, callback_url by our workers): absolute http or https,
// no credentials, and a public host unless the allow-list names it.
func checkURL(field, s string, allowed func(string, uint16) bool, verr *ValidationError) {
	if s == "" {
		verr.add(field, "is required")
		return
	}
	if len(s) > MaxMediaURL {
		verr.add(field, "must be at most %d bytes, got %d", MaxMediaURL, len(s))
		return
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		verr.add(field, "must be an absolute http or https URL")
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		verr.add(field, "scheme must be http or https, not %q", u.Scheme)
		return
	}
	if u.User != nil {
		verr.add(field, "must not carry credentials")
		return
	}
	if strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	}) {
		verr.add(field, "must not contain spaces or control characters; encode them")
		return
	}
	if strings.ContainsRune(s, utf8.RuneError) {
		// What JSON decoding leaves of an invalid escape, such as \ud800.
		verr.add(field, "must not contain invalid escapes")
		return
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			verr.add(field, "has an invalid port %q", p)
			return
		}
	}
	if allowed != nil && allowed(u.Hostname(), portOf(u)) {
		return
	}
	if err := publicHost(u.Hostname()); err != nil {
		verr.add(field, "%v", err)
	}
}

// portOf is the port a URL names, or its scheme's.
func portOf(u *url.URL) uint16 {
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
		return uint16(p)
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

var (
	paramKey    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,16}$`)
	placeholder = regexp.MustCompile(`\$\{([^}]*)\}`)
)

// checkParameters validates Sinch's per-recipient values and rewrites their
// recipient keys to E.164, the form the numbers in "to" take.
func checkParameters(params map[string]map[string]string, text string, to []string, region string,
	verr *ValidationError) map[string]map[string]string {
	out := make(map[string]map[string]string, len(params))
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report problems in a stable order

	for _, key := range keys {
		values := params[key]
		field := "parameters." + key
		if !paramKey.MatchString(key) {
			verr.add(field, "name must be 1 to %d of A-Z a-z 0-9 . _ -", MaxParamKey)
			continue
		}
		if len(values) == 0 {
			verr.add(field, "must map recipients or \"default\" to values")
			continue
		}
		norm := make(map[string]string, len(values))
		for _, who := range slices.Sorted(maps.Keys(values)) {
			v := values[who]
			if utf8.RuneCountInString(v) > MaxParamValue {
				verr.add(field+"."+who, "must be at most %d characters", MaxParamValue)
				continue
			}
			if hasControl(v, "\n\r\t") {
				verr.add(field+"."+who, "must not contain control characters")
				continue
			}
			if who == "default" {
				norm[who] = v
				continue
			}
			n, err := NormalizeNumber(who, region)
			if err != nil {
				verr.add(field+"."+who, "key %v", err)
				continue
			}
			if !slices.Contains(to, n) {
				verr.add(field+"."+who, "names a number that is not in \"to\"")
				continue
			}
			if _, dup := norm[n]; dup {
				verr.add(field+"."+who, "names the same number as another key")
				continue
			}
			norm[n] = v
		}
		out[key] = norm
	}

	// A placeholder without a value for some recipient would fail at Sinch
	// with "unmatched parameter"; say so now instead.
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		key := m[1]
		if !paramKey.MatchString(key) {
			verr.add("message", "has a placeholder ${%s} whose name is not 1 to %d of A-Z a-z 0-9 . _ -",
				key, MaxParamKey)
			continue
		}
		vals, ok := out[key]
		if _, bad := params[key]; bad && !ok {
			continue // already reported
		}
		if _, hasDefault := vals["default"]; hasDefault {
			continue
		}
		for _, n := range to {
			if _, ok := vals[n]; !ok {
				verr.add("message", "uses ${%s} but parameters.%s has no value for every recipient and no \"default\"",
					key, key)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// hasControl reports whether s holds a control character other than those
// in allowed, or U+FFFD, which is what JSON decoding leaves of an invalid
// escape such as a lone surrogate.
func hasControl(s, allowed string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError) &&
			!strings.ContainsRune(allowed, r)
	})
}
