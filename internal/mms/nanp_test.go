package mms

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestPlainNANPMatchesParser checks the fast path for "+1" and ten digits
// against the general parser, over every area code and a spread of
// exchanges and line numbers, valid and not.
func TestPlainNANPMatchesParser(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	checked, valid := 0, 0
	for area := range 1000 {
		for _, exchange := range []int{0, 100, 211, 555, 911, rng.IntN(1000), rng.IntN(1000)} {
			s := fmt.Sprintf("+1%03d%03d%04d", area, exchange, rng.IntN(10000))
			got, err := NormalizeNumber(s, "GB")

			num, perr := phonenumbers.Parse(s, "GB")
			want := ""
			if perr == nil && num.GetExtension() == "" && phonenumbers.IsValidNumber(num) {
				want = phonenumbers.Format(num, phonenumbers.E164)
			}
			if want == "" {
				if err == nil {
					t.Fatalf("%s: fast path accepted a number the parser refuses", s)
				}
			} else {
				valid++
				if err != nil || got != want {
					t.Fatalf("%s: fast path gave %q, %v; parser %q", s, got, err, want)
				}
			}
			checked++
		}
	}
	if valid == 0 || valid == checked {
		t.Fatalf("the sample must hold valid and invalid numbers: %d of %d valid", valid, checked)
	}
}
