package stack

import (
	"os"
	"testing"
	"time"
)

// TestSampleReadsThisProcess burns CPU until /proc shows 0.2 s more of it
// (on a loaded machine that may take longer than 0.2 s of wall time).
func TestSampleReadsThisProcess(t *testing.T) {
	a, err := Sample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var b ProcSample
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for x, end := 0, time.Now().Add(20*time.Millisecond); time.Now().Before(end); x++ {
		}
		if b, err = Sample(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if b.CPUTicks-a.CPUTicks >= 20 {
			break
		}
	}
	u := Between(a, b)
	if u.CPUSeconds < 0.2 || u.CPUPercent <= 0 || u.CPUPercent > 250 {
		t.Errorf("busy loop measured as %+v", u)
	}
	if u.RSSMiB <= 0 || u.PeakRSSMiB < u.RSSMiB {
		t.Errorf("memory %+v", u)
	}
	if _, err := Sample(1 << 30); err == nil {
		t.Errorf("sampling a pid that does not exist succeeded")
	}
}
