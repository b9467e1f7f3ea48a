// Package suppress keeps the suppression list: the phone numbers mmsgate
// must not send to, such as those of people who opted out.
//
// # Key layout
//
// The whole list is one Redis hash:
//
//	mmsgate:suppressions   field: the number in E.164, e.g. +12025550123
//	                       value: {"reason":"replied STOP","created_at":"2026-12-04T15:48:00.34Z"}
//
// reason is left out of the value when none was given; created_at is the
// UTC time the number was first suppressed, to the millisecond. An entry
// has no expiry: it stays until it is deleted. Keeping everything in one
// key means every operation touches a single key (a single slot on Redis
// Cluster), needs no multi-key transaction, and a number is either in the
// hash or not, with nothing to keep in step. A hash of 100,000 entries of
// this size takes roughly 10 MB.
//
// Numbers must already be in E.164: the store does not parse or normalise
// them (the caller knows the region a number was written in), it only
// refuses what cannot be E.164.
package suppress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Key is the Redis hash that holds the list.
const Key = "mmsgate:suppressions"

// ChunkSize is how many numbers Import writes, and Filter reads, per Redis
// command batch.
const ChunkSize = 1000

// filterChunks is how many HMGET commands of ChunkSize numbers Filter sends
// in one pipeline, i.e. one round trip.
const filterChunks = 10

// MaxReason is the longest reason, in characters.
const MaxReason = 200

var (
	// ErrNotFound is returned for a number that is not suppressed.
	ErrNotFound = errors.New("suppress: number is not suppressed")
	// ErrInvalid marks input the store refuses: a number not in E.164, or
	// a reason that breaks CheckReason's rules.
	ErrInvalid = errors.New("suppress: invalid input")
	// ErrUnreadable marks a stored entry that is not what the store writes.
	// The number still counts as suppressed.
	ErrUnreadable = errors.New("suppress: stored entry is unreadable")
)

// Entry is one suppressed number.
type Entry struct {
	Number    string    `json:"number"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// record is what the hash holds for a number.
type record struct {
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Store reads and writes the suppression list.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// New returns a store over rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, now: time.Now}
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// ValidNumber reports whether n is written in E.164: a +, then 2 to 15
// digits, the first not 0. It says nothing of whether the number exists.
func ValidNumber(n string) bool { return e164.MatchString(n) }

// CheckReason returns why reason cannot be stored, or nil. A reason is at
// most MaxReason characters of valid UTF-8 without control characters
// (newlines and tabs included) or U+FFFD, which is what JSON decoding makes
// of an invalid escape. The message reads after a field name: "reason must
// be ...".
func CheckReason(reason string) error {
	if !utf8.ValidString(reason) {
		return errors.New("must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(reason); n > MaxReason {
		return fmt.Errorf("must be at most %d characters, got %d", MaxReason, n)
	}
	for _, r := range reason {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return errors.New("must not contain control characters or invalid escapes")
		}
	}
	return nil
}

func (s *Store) check(numbers []string, reason string) error {
	if err := CheckReason(reason); err != nil {
		return fmt.Errorf("%w: reason %v", ErrInvalid, err)
	}
	for i, n := range numbers {
		if !ValidNumber(n) {
			return fmt.Errorf("%w: number %d is not in E.164", ErrInvalid, i)
		}
	}
	return nil
}

func (s *Store) newRecord(reason string) (record, []byte) {
	r := record{Reason: reason, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	b, _ := json.Marshal(r) // a string and a time: cannot fail
	return r, b
}

// putScript adds a number unless it is there, and returns 1 and the new
// value, or 0 and the value already stored, in one step: a concurrent
// Delete cannot fall between the two.
var putScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  return {1, ARGV[2]}
end
return {0, redis.call('HGET', KEYS[1], ARGV[1])}
`)

// Put suppresses number (E.164) with an optional reason. It is idempotent:
// for a number already suppressed it changes nothing, returns the entry as
// it was first stored (reason and time included) and created false.
func (s *Store) Put(ctx context.Context, number, reason string) (e Entry, created bool, err error) {
	if err := s.check([]string{number}, reason); err != nil {
		return Entry{}, false, err
	}
	_, value := s.newRecord(reason)
	res, err := putScript.Run(ctx, s.rdb, []string{Key}, number, value).Slice()
	if err != nil {
		return Entry{}, false, fmt.Errorf("suppress: put: %w", err)
	}
	if len(res) != 2 {
		return Entry{}, false, fmt.Errorf("suppress: put: unexpected reply %v", res)
	}
	flag, _ := res[0].(int64)
	stored, _ := res[1].(string)
	e, err = decode(number, stored)
	return e, flag == 1, err
}

// Get returns the entry of number, or ErrNotFound.
func (s *Store) Get(ctx context.Context, number string) (Entry, error) {
	v, err := s.rdb.HGet(ctx, Key, number).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return Entry{}, ErrNotFound
	case err != nil:
		return Entry{}, fmt.Errorf("suppress: get: %w", err)
	}
	return decode(number, v)
}

func decode(number, v string) (Entry, error) {
	var r record
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	return Entry{Number: number, Reason: r.Reason, CreatedAt: r.CreatedAt}, nil
}

// Delete removes number from the list and reports whether it was there.
func (s *Store) Delete(ctx context.Context, number string) (existed bool, err error) {
	n, err := s.rdb.HDel(ctx, Key, number).Result()
	if err != nil {
		return false, fmt.Errorf("suppress: delete: %w", err)
	}
	return n > 0, nil
}

// Import suppresses every number (E.164) with the same reason and time,
// leaving numbers already suppressed as they were. It writes ChunkSize
// numbers per round trip and returns how many numbers were new (a number
// given twice counts once). If the input is refused (ErrInvalid) nothing is
// written; if Redis fails part way, the chunks before the failure stay
// written and added counts their new numbers, so repeating the import is
// safe.
func (s *Store) Import(ctx context.Context, numbers []string, reason string) (added int, err error) {
	if err := s.check(numbers, reason); err != nil {
		return 0, err
	}
	_, value := s.newRecord(reason)
	cmds := make([]*redis.BoolCmd, 0, min(len(numbers), ChunkSize))
	for start := 0; start < len(numbers); start += ChunkSize {
		chunk := numbers[start:min(start+ChunkSize, len(numbers))]
		cmds = cmds[:0]
		pipe := s.rdb.Pipeline()
		for _, n := range chunk {
			cmds = append(cmds, pipe.HSetNX(ctx, Key, n, value))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			// Count what did reach Redis: with a pipeline, the commands
			// before a failure may have run.
			for _, c := range cmds {
				if c.Err() == nil && c.Val() {
					added++
				}
			}
			return added, fmt.Errorf("suppress: import: %w", err)
		}
		for _, c := range cmds {
			if c.Val() {
				added++
			}
		}
	}
	return added, nil
}

// Filter reports, for each of numbers, whether it is suppressed: out[i]
// is true when numbers[i] is on the list. It reads ChunkSize numbers per
// HMGET and sends several HMGETs per round trip, so 100,000 numbers take
// ten round trips. An entry whose value cannot be read still counts as
// suppressed. If Redis fails, Filter returns the error and no answer: a
// caller must not take a failure for "not suppressed".
func (s *Store) Filter(ctx context.Context, numbers []string) ([]bool, error) {
	out := make([]bool, len(numbers))
	if len(numbers) == 0 {
		return out, nil
	}
	if len(numbers) <= ChunkSize {
		// One command, as for every single send: no pipeline to pay for.
		vals, err := s.rdb.HMGet(ctx, Key, numbers...).Result()
		if err != nil {
			return nil, fmt.Errorf("suppress: filter: %w", err)
		}
		if len(vals) != len(numbers) {
			return nil, fmt.Errorf("suppress: filter: HMGET answered %d values for %d numbers", len(vals), len(numbers))
		}
		for i, v := range vals {
			out[i] = v != nil
		}
		return out, nil
	}
	const perTrip = ChunkSize * filterChunks
	for start := 0; start < len(numbers); start += perTrip {
		batch := numbers[start:min(start+perTrip, len(numbers))]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, 0, filterChunks)
		for i := 0; i < len(batch); i += ChunkSize {
			cmds = append(cmds, pipe.HMGet(ctx, Key, batch[i:min(i+ChunkSize, len(batch))]...))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("suppress: filter: %w", err)
		}
		for c, cmd := range cmds {
			vals := cmd.Val()
			base := start + c*ChunkSize
			if want := min(ChunkSize, len(numbers)-base); len(vals) != want {
				return nil, fmt.Errorf("suppress: filter: HMGET answered %d values for %d numbers", len(vals), want)
			}
			for i, v := range vals {
				out[base+i] = v != nil
			}
		}
	}
	return out, nil
}
