// Package stats records what the simulator measures: latency histograms with
// HdrHistogram quantiles (3 significant digits, 1 µs to 5 min), counts by
// HTTP status, and plain counters, all safe for concurrent use.
//
// It must never decide what counts as an error: the simulator classifies an
// answer and tells this package.
package stats

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

const (
	minMicros = 1
	maxMicros = int64(5 * time.Minute / time.Microsecond)
	sigFigs   = 3
)

// Histogram is a concurrent HdrHistogram of durations. Values above 5 min are
// recorded as 5 min (and counted in Max as such).
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(minMicros, maxMicros, sigFigs)}
}

// Record adds one duration (negative ones count as 0).
func (h *Histogram) Record(d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < minMicros {
		us = minMicros
	}
	if us > maxMicros {
		us = maxMicros
	}
	h.mu.Lock()
	_ = h.h.RecordValue(us) // in range by construction
	h.mu.Unlock()
}

// Quantiles is a histogram's summary in milliseconds.
type Quantiles struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func ms(us int64) float64 { return float64(us) / 1000 }

// Snapshot summarises the histogram; reset empties it afterwards (for
// windowed figures such as the progress line).
func (h *Histogram) Snapshot(reset bool) Quantiles {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := Quantiles{Count: h.h.TotalCount()}
	if q.Count > 0 {
		q.MeanMs = h.h.Mean() / 1000
		q.P50Ms = ms(h.h.ValueAtQuantile(50))
		q.P90Ms = ms(h.h.ValueAtQuantile(90))
		q.P99Ms = ms(h.h.ValueAtQuantile(99))
		q.P999Ms = ms(h.h.ValueAtQuantile(99.9))
		q.MaxMs = ms(h.h.Max())
	}
	if reset {
		h.h.Reset()
	}
	return q
}

// Kind is what the simulator records for one kind of request: its latency
// (all answers and transport failures alike), answers by status ("transport"
// for a request that got no answer), and those the simulator called errors.
type Kind struct {
	Latency *Histogram
	Window  *Histogram // the same latencies, emptied by each progress line
	// OKLatency is the latency of 2xx answers, RefusedLatency of 429 and
	// 503 (backpressure): under overload the two differ by orders of
	// magnitude, and Latency mixes them.
	OKLatency, RefusedLatency *Histogram

	mu       sync.Mutex
	byStatus map[string]int64
	errors   map[string]int64
}

// NewKind returns an empty Kind.
func NewKind() *Kind {
	return &Kind{Latency: NewHistogram(), Window: NewHistogram(), OKLatency: NewHistogram(), RefusedLatency: NewHistogram(),
		byStatus: map[string]int64{}, errors: map[string]int64{}}
}

// StatusLabel names status 0 (no answer) "transport".
func StatusLabel(status int) string {
	if status == 0 {
		return "transport"
	}
	return strconv.Itoa(status)
}

// Observe records one request: its latency, its status (0 = no answer) and
// whether the simulator counts it as an error.
func (k *Kind) Observe(d time.Duration, status int, isError bool) {
	k.Latency.Record(d)
	k.Window.Record(d)
	switch {
	case status >= 200 && status < 300:
		k.OKLatency.Record(d)
	case status == 429 || status == 503:
		k.RefusedLatency.Record(d)
	}
	label := StatusLabel(status)
	k.mu.Lock()
	k.byStatus[label]++
	if isError {
		k.errors[label]++
	}
	k.mu.Unlock()
}

// KindReport is a Kind's JSON summary.
type KindReport struct {
	Requests  int64     `json:"requests"`
	OK        int64     `json:"ok"`
	PerSecond float64   `json:"perSecond"`
	Latency   Quantiles `json:"latency"`
	OKLatency Quantiles `json:"okLatency"`
	// RefusedLatency: 429 and 503 answers only (absent when none).
	RefusedLatency *Quantiles       `json:"refusedLatency,omitempty"`
	ByStatus       map[string]int64 `json:"byStatus"`
	Errors         int64            `json:"errors"`
	ErrorsByCS     map[string]int64 `json:"errorsByStatus"`
}

// Report summarises k over a window of elapsed wall time.
func (k *Kind) Report(elapsed time.Duration) KindReport {
	r := KindReport{Latency: k.Latency.Snapshot(false), OKLatency: k.OKLatency.Snapshot(false),
		ByStatus: map[string]int64{}, ErrorsByCS: map[string]int64{}}
	if q := k.RefusedLatency.Snapshot(false); q.Count > 0 {
		r.RefusedLatency = &q
	}
	k.mu.Lock()
	for s, n := range k.byStatus {
		r.ByStatus[s] = n
		r.Requests += n
		if len(s) == 3 && s[0] == '2' {
			r.OK += n
		}
	}
	for s, n := range k.errors {
		r.ErrorsByCS[s] = n
		r.Errors += n
	}
	k.mu.Unlock()
	if elapsed > 0 {
		r.PerSecond = float64(r.OK) / elapsed.Seconds()
	}
	return r
}

// Counts reads the kind's running totals: all requests, 2xx answers, errors.
func (k *Kind) Counts() (requests, ok, errs int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for s, n := range k.byStatus {
		requests += n
		if len(s) == 3 && s[0] == '2' {
			ok += n
		}
	}
	for _, n := range k.errors {
		errs += n
	}
	return requests, ok, errs
}

// Set is one Kind per request kind, created on first use.
type Set struct {
	mu    sync.Mutex
	kinds map[string]*Kind
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{kinds: map[string]*Kind{}} }

// Kind returns the Kind called name, creating it.
func (s *Set) Kind(name string) *Kind {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.kinds[name]
	if !ok {
		k = NewKind()
		s.kinds[name] = k
	}
	return k
}

// Lookup returns the Kind called name, if any request of that kind was recorded.
func (s *Set) Lookup(name string) (*Kind, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.kinds[name]
	return k, ok
}

// Names lists the kinds in order.
func (s *Set) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.kinds))
	for n := range s.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Report summarises every kind over elapsed.
func (s *Set) Report(elapsed time.Duration) map[string]KindReport {
	out := map[string]KindReport{}
	for _, n := range s.Names() {
		out[n] = s.Kind(n).Report(elapsed)
	}
	return out
}
