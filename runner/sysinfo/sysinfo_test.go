package sysinfo

import (
	"context"
	"testing"
)

func TestReadReportsTheHost(t *testing.T) {
	r := Reader{DiskPath: t.TempDir()}
	_ = r.Read(context.Background()) // primes the CPU counter
	got := r.Read(context.Background())
	if got.MemoryTotalMB <= 0 || got.MemoryPercent <= 0 || got.MemoryPercent > 100 {
		t.Fatalf("memory: %+v", got)
	}
	if len(got.LoadAvg) != 3 || got.UptimeSeconds <= 0 {
		t.Fatalf("load/uptime: %+v", got)
	}
	if got.CPUPercent < 0 || got.CPUPercent > 100 || got.DiskPercent <= 0 {
		t.Fatalf("cpu/disk: %+v", got)
	}
}
