package executor

import (
	"sync"
	"unicode/utf8"
)

// tail is an io.Writer that keeps only the last max bytes written to it and
// counts the rest, so a chatty task cannot grow the agent's memory.
type tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte // ring buffer once full
	start   int    // index of the oldest byte when full
	full    bool
	dropped int64
}

func newTail(max int) *tail { return &tail{max: max, buf: make([]byte, 0, min(max, 4096))} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.dropped += int64(t.size() + len(p) - t.max)
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		t.start, t.full = 0, true
		return n, nil
	}
	if !t.full {
		room := t.max - len(t.buf)
		if len(p) <= room {
			t.buf = append(t.buf, p...)
			if len(t.buf) == t.max {
				t.full = true
			}
			return n, nil
		}
		t.buf = append(t.buf, p[:room]...)
		p = p[room:]
		t.full = true
	}
	// full: overwrite the oldest bytes
	t.dropped += int64(len(p))
	for len(p) > 0 {
		c := copy(t.buf[t.start:], p)
		p = p[c:]
		t.start = (t.start + c) % t.max
	}
	return n, nil
}

func (t *tail) size() int { return len(t.buf) }

// String returns the kept bytes, oldest first, starting at a rune boundary
// when bytes were dropped (the cut may fall inside a UTF-8 sequence).
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]byte, 0, len(t.buf))
	if t.full {
		out = append(out, t.buf[t.start:]...)
		out = append(out, t.buf[:t.start]...)
	} else {
		out = append(out, t.buf...)
	}
	if t.dropped > 0 {
		for i := 0; i < utf8.UTFMax && len(out) > 0 && !utf8.RuneStart(out[0]); i++ {
			out = out[1:]
		}
	}
	return string(out)
}

// Dropped is how many bytes were written but not kept.
func (t *tail) Dropped() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}
