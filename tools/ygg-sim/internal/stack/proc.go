package stack

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// ProcSample is one reading of a process's CPU time and memory.
type ProcSample struct {
	At       time.Time
	CPUTicks int64 // utime + stime, in clock ticks
	RSSKiB   int64 // VmRSS
	HWMKiB   int64 // VmHWM: peak RSS
}

// Sample reads /proc/<pid>/stat and /proc/<pid>/status.
func Sample(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("stack: sample %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return s, fmt.Errorf("stack: sample %d: malformed stat", pid)
	}
	f := strings.Fields(string(stat)[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("stack: sample %d: short stat", pid)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("stack: sample %d: cpu fields %q %q", pid, f[11], f[12])
	}
	s.CPUTicks = ut + st
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("stack: sample %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSSKiB = n
		case "VmHWM":
			s.HWMKiB = n
		}
	}
	return s, nil
}

// Usage is a process's use between two samples.
type Usage struct {
	// CPUPercent is of one core (200 = both cores of a 2 vCPU machine).
	CPUPercent float64 `json:"cpuPercent"`
	CPUSeconds float64 `json:"cpuSeconds"`
	RSSMiB     float64 `json:"rssMiB"`
	PeakRSSMiB float64 `json:"peakRssMiB"`
}

// Between computes the usage from a to b.
func Between(a, b ProcSample) Usage {
	u := Usage{
		CPUSeconds: float64(b.CPUTicks-a.CPUTicks) / clockTicks,
		RSSMiB:     float64(b.RSSKiB) / 1024,
		PeakRSSMiB: float64(b.HWMKiB) / 1024,
	}
	if wall := b.At.Sub(a.At).Seconds(); wall > 0 {
		u.CPUPercent = 100 * u.CPUSeconds / wall
	}
	return u
}
