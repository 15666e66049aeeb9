package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"
	"time"
)

// Session lifetimes and bounds: part of the console's design, not tunables.
const (
	// CookieName is the session cookie: a random id, HttpOnly, SameSite=Strict,
	// Secure over TLS, scoped to /ui. It never carries the key.
	CookieName = "ygg_console"
	// SessionIdle ends a session nobody used for this long.
	SessionIdle = 30 * time.Minute
	// SessionMax ends every session this long after the login.
	SessionMax = 12 * time.Hour
	// MaxSessions bounds the sessions one process keeps; the oldest goes first.
	MaxSessions = 10000
)

// session is one logged-in browser. key is the operator key it logged in
// with (empty with auth off), kept to call the hooks service on the
// operator's behalf; it never leaves this process.
type session struct {
	key     string
	csrf    string
	created time.Time
	seen    time.Time
	flash   string
}

// sessions is the in-memory session table, keyed by the SHA-256 of the
// cookie value (so the table holds no usable cookie).
type sessions struct {
	mu  sync.Mutex
	m   map[[sha256.Size]byte]*session
	now func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}, now: now}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on Linux
	}
	return hex.EncodeToString(b)
}

// create starts a session for key and returns its cookie value.
func (s *sessions) create(key string) string {
	id := randomHex(32)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(now)
	if len(s.m) >= MaxSessions {
		var oldest [sha256.Size]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.created.Before(at) {
				oldest, at = k, v.created
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(id))] = &session{key: key, csrf: randomHex(32), created: now, seen: now}
	return id
}

func (s *sessions) prune(now time.Time) {
	for k, v := range s.m {
		if expired(v, now) {
			delete(s.m, k)
		}
	}
}

func expired(v *session, now time.Time) bool {
	return now.Sub(v.seen) > SessionIdle || now.Sub(v.created) > SessionMax
}

// get returns a copy of the live session of cookie value id, taking its
// flash message (shown once), and marks it used.
func (s *sessions) get(id string) (session, bool) {
	if id == "" || len(id) > 128 {
		return session{}, false
	}
	k := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	if expired(v, now) {
		delete(s.m, k)
		return session{}, false
	}
	v.seen = now
	out := *v
	v.flash = ""
	return out, true
}

// setFlash leaves a message for the next page the session shows.
func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[sha256.Sum256([]byte(id))]; ok {
		v.flash = msg
	}
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

// csrfOK compares a submitted CSRF token with the session's in constant time.
func csrfOK(v session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(v.csrf), []byte(got)) == 1
}
