package jobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reservation ties a client's Idempotency-Key to the job created for it.
type Reservation struct {
	// Fingerprint identifies the request's content, so a key reused with
	// another body can be refused.
	Fingerprint string `json:"fp"`
	JobID       string `json:"job"`
	// At is when the reservation was made. A reservation whose job record
	// never appeared was left by a request that failed; after a while it
	// may be taken over.
	At time.Time `json:"at"`

	raw string // as stored, for replacing exactly this reservation
}

// idemKey names the reservation of one client key. The client's key is
// hashed: it is the client's own string, of any content.
func idemKey(scope, key string) string {
	d := sha256.Sum256([]byte(key))
	return "mmsgate:idem:{" + scope + ":" + hex.EncodeToString(d[:16]) + "}"
}

// reserveScript sets the reservation if the key holds what the caller
// expects: nothing (ARGV[3] empty) or the stale reservation it read.
// KEYS[1] reservation key; ARGV[1] new value; ARGV[2] ttl ms; ARGV[3]
// expected value. Returns {1} if set, else {0, current value or ”}.
var reserveScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (not cur and ARGV[3] == '') or (cur and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
return {0, cur or ''}
`)

// releaseScript deletes the reservation if it is still the caller's.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Reserve records r under the client's key for ttl, unless the key holds a
// reservation already: then that one is returned and nothing changes. With
// expect set, Reserve replaces exactly that reservation (a stale one) and
// fails, returning the current one, if it has changed meanwhile.
func (s *Store) Reserve(ctx context.Context, scope, key string, r Reservation, expect *Reservation,
	ttl time.Duration) (*Reservation, error) {
	val, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode reservation: %w", err)
	}
	want := ""
	if expect != nil {
		want = expect.raw
	}

	res, err := reserveScript.Run(ctx, s.rdb, []string{idemKey(scope, key)}, string(val), ttl.Milliseconds(),
		want).Slice()
	if err != nil {
		return nil, fmt.Errorf("reserve idempotency key: %w", err)
	}
	if n, _ := res[0].(int64); n == 1 {
		return nil, nil
	}
	cur, _ := res[1].(string)
	if cur == "" {
		// Gone between our read and the script: report an empty
		// reservation so the caller tries again.
		return &Reservation{}, nil
	}
	prev := Reservation{raw: cur}
	if err := json.Unmarshal([]byte(cur), &prev); err != nil {
		return nil, fmt.Errorf("decode reservation: %w", err)
	}
	return &prev, nil
}

// Release removes r, the reservation the caller made, if it is still the one
// under the client's key, so that a request that failed may be sent again
// at once.
func (s *Store) Release(ctx context.Context, scope, key string, r Reservation) error {
	val, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode reservation: %w", err)
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{idemKey(scope, key)}, string(val)).Err(); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
