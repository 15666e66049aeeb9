// Package sysinfo reads the host's resources for the heartbeat: CPU, memory,
// disk, load average and uptime, through gopsutil. A reading that fails is
// left out rather than failing the heartbeat. It must never block for long:
// CPU is measured since the previous call, not over a sampling window.
package sysinfo

import (
	"context"
	"math"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Reader reads resources; DiskPath is the filesystem whose usage is reported
// (the state directory's, so a full disk shows where the agent writes).
type Reader struct {
	DiskPath string
}

// Read returns the current resources.
func (r Reader) Read(ctx context.Context) *wire.SystemResources {
	out := &wire.SystemResources{}
	// interval 0: usage since the previous call (the previous heartbeat).
	if p, err := cpu.PercentWithContext(ctx, 0, false); err == nil && len(p) > 0 {
		out.CPUPercent = round(p[0])
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		out.MemoryPercent = round(vm.UsedPercent)
		out.MemoryUsedMB = round(float64(vm.Used) / (1 << 20))
		out.MemoryTotalMB = round(float64(vm.Total) / (1 << 20))
	}
	if r.DiskPath != "" {
		if du, err := disk.UsageWithContext(ctx, r.DiskPath); err == nil {
			out.DiskPercent = round(du.UsedPercent)
		}
	}
	if l, err := load.AvgWithContext(ctx); err == nil {
		out.LoadAvg = []float64{round(l.Load1), round(l.Load5), round(l.Load15)}
	}
	if up, err := host.UptimeWithContext(ctx); err == nil {
		out.UptimeSeconds = float64(up)
	}
	return out
}

func round(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*100) / 100
}
