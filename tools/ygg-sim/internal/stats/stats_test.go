package stats

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestQuantilesMatchExactOnes records a known distribution and compares the
// reported quantiles with the exact ones (3 significant digits: 0.1 %).
func TestQuantilesMatchExactOnes(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
	}{
		{"uniform 0-100ms", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(100 * time.Millisecond))) }},
		{"exponential mean 5ms", func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * float64(5*time.Millisecond)) }},
		{"bimodal 1ms and 2s", func(r *rand.Rand) time.Duration {
			if r.IntN(100) < 95 {
				return time.Millisecond
			}
			return 2 * time.Second
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 9))
			h := NewHistogram()
			var exact []float64
			for i := 0; i < 100_000; i++ {
				d := tc.gen(r)
				h.Record(d)
				us := math.Max(1, float64(d/time.Microsecond))
				exact = append(exact, us/1000)
			}
			sort.Float64s(exact)
			at := func(q float64) float64 { return exact[int(math.Ceil(q*float64(len(exact))))-1] }
			got := h.Snapshot(false)
			for _, c := range []struct {
				name      string
				got, want float64
			}{
				{"p50", got.P50Ms, at(0.50)}, {"p90", got.P90Ms, at(0.90)}, {"p99", got.P99Ms, at(0.99)},
				{"max", got.MaxMs, exact[len(exact)-1]},
			} {
				if tol := math.Max(0.002*c.want, 0.002); math.Abs(c.got-c.want) > tol {
					t.Errorf("%s = %.4f ms, exact %.4f ms", c.name, c.got, c.want)
				}
			}
			if got.Count != int64(len(exact)) {
				t.Errorf("count = %d, want %d", got.Count, len(exact))
			}
		})
	}
}

func TestSnapshotResetEmptiesTheWindow(t *testing.T) {
	h := NewHistogram()
	h.Record(3 * time.Millisecond)
	if q := h.Snapshot(true); q.Count != 1 || math.Abs(q.MaxMs-3) > 0.01 { // 3 significant digits
		t.Fatalf("first window = %+v", q)
	}
	if q := h.Snapshot(false); q != (Quantiles{}) {
		t.Fatalf("after reset = %+v, want empty", q)
	}
	h.Record(10 * time.Minute) // beyond the range: clamped, not lost
	if q := h.Snapshot(false); q.Count != 1 || q.MaxMs < 299_000 {
		t.Fatalf("clamped = %+v", q)
	}
}

func TestKindCountsStatusesAndErrors(t *testing.T) {
	k := NewKind()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			for j := 0; j < 100; j++ {
				k.Observe(time.Millisecond, 200, false)
			}
			k.Observe(time.Millisecond, 503, false)
			k.Observe(time.Millisecond, 0, true)
		})
	}
	wg.Wait()
	got := k.Report(time.Second)
	want := KindReport{
		Requests: 816, OK: 800, PerSecond: 800,
		ByStatus: map[string]int64{"200": 800, "503": 8, "transport": 8},
		Errors:   8, ErrorsByCS: map[string]int64{"transport": 8},
	}
	if got.Latency.Count != 816 || got.OKLatency.Count != 800 || got.RefusedLatency == nil || got.RefusedLatency.Count != 8 {
		t.Errorf("latency counts: all %d, 2xx %d, refused %+v; want 816, 800, 8", got.Latency.Count, got.OKLatency.Count, got.RefusedLatency)
	}
	got.Latency, got.OKLatency, got.RefusedLatency = Quantiles{}, Quantiles{}, nil
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("report (-want +got):\n%s", diff)
	}
}
