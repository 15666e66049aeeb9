package validate

import (
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"", 0, false}, {"20s", 20 * time.Second, false}, {"1500", 1500 * time.Millisecond, false},
		{"5m", 30 * time.Second, false}, {"-1", 0, true}, {"-1s", 0, true}, {"soon", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, c := range cases {
		got, err := Wait(c.in, 30*time.Second)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("Wait(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestID(t *testing.T) {
	for _, ok := range []string{"a", "rnr_0af3", "host-1.example", "A_b.c-d"} {
		if !ID(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "a:b", "-a", ".a", "a b", "a/b", string(make([]byte, 129))} {
		if ID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
