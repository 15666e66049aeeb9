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

func TestTaskCursorAndStartedAt(t *testing.T) {
	for _, ok := range []string{"", "1700000000000", "1700000000000:tsk_abc"} {
		if err := TaskCursor(ok); err != nil {
			t.Errorf("TaskCursor(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"x", "-1", "1:", "1:a b", "123456789012345678901:tsk"} {
		if TaskCursor(bad) == nil {
			t.Errorf("TaskCursor(%q) accepted", bad)
		}
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		t  time.Time
		ok bool
	}{
		{now.Add(-time.Hour), true},
		{now.Add(time.Minute), true}, // small skew
		{now.Add(10 * time.Minute), false},
		{now.AddDate(-11, 0, 0), false},
		{time.Unix(0, 0), false},
	} {
		if err := StartedAt("startedAt", tc.t, now); (err == nil) != tc.ok {
			t.Errorf("StartedAt(%s) = %v, want ok=%v", tc.t, err, tc.ok)
		}
	}
}
