package stack

import (
	"os"
	"testing"
	"time"
)

// TestSampleReadsThisProcess burns some CPU and checks that /proc says so.
func TestSampleReadsThisProcess(t *testing.T) {
	a, err := Sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	b, err := Sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	u := Between(a, b)
	if u.CPUSeconds < 0.1 || u.CPUPercent < 30 || u.CPUPercent > 250 {
		t.Errorf("a 300 ms busy loop (%d turns) measured as %+v", x, u)
	}
	if u.RSSMiB <= 0 || u.PeakRSSMiB < u.RSSMiB {
		t.Errorf("memory %+v", u)
	}
	if _, err := Sample(1 << 30); err == nil {
		t.Errorf("sampling a pid that does not exist succeeded")
	}
}
