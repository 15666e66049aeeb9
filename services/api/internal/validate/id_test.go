package validate

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIDMatchesItsPattern holds the byte loop of ID to idRe, the pattern
// its error message quotes: both must answer the same for any string.
func TestIDMatchesItsPattern(t *testing.T) {
	cases := []string{"", "a", "A", "0", ".", "-a", "_a", "a.", "a-b_c.d", "a:b", "a b", "ä", "a/b",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "a\x00", "runner-001", "Z9.-_"}
	const alphabet = "aZ09._-:/ \x00\xc3\xa4"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := r.IntN(12)
		if r.IntN(50) == 0 {
			n = 120 + r.IntN(16)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		sameAsPattern(t, s)
	}
}

// sameAsPattern fails t when ID and idRe answer differently for s.
func sameAsPattern(t *testing.T, s string) {
	t.Helper()
	if got, want := ID(s), idRe.MatchString(s); got != want {
		t.Fatalf("ID(%q) = %v, idRe says %v", s, got, want)
	}
}

func FuzzIDMatchesItsPattern(f *testing.F) {
	for _, s := range []string{"a", "-a", "a.b", "a:b", strings.Repeat("x", 129)} {
		f.Add(s)
	}
	f.Fuzz(sameAsPattern)
}
