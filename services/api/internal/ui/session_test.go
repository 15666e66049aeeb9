package ui

import (
	"testing"
	"time"
)

func TestSessionsExpireAndFlashOnce(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := newSessions(func() time.Time { return now })
	created := now
	id := s.create("operator-key-0123456789")
	v, ok := s.get(id)
	if !ok || v.key != "operator-key-0123456789" || len(v.csrf) != 64 {
		t.Fatalf("fresh session = %+v, %v", v, ok)
	}
	if _, ok := s.get(id + "x"); ok {
		t.Fatal("another cookie value found the session")
	}
	s.setFlash(id, "done")
	if v, _ := s.get(id); v.flash != "done" {
		t.Fatalf("flash = %q, want done", v.flash)
	}
	if v, _ := s.get(id); v.flash != "" {
		t.Fatalf("flash shown twice: %q", v.flash)
	}
	if !csrfOK(v, v.csrf) || csrfOK(v, "") || csrfOK(v, v.csrf+"0") {
		t.Fatal("csrfOK accepts the wrong token or refuses the right one")
	}

	// Used within the idle time, a session lives until SessionMax.
	for elapsed := time.Duration(0); elapsed+SessionIdle/2 < SessionMax; elapsed += SessionIdle / 2 {
		now = now.Add(SessionIdle / 2)
		if _, ok := s.get(id); !ok {
			t.Fatalf("session ended after %s of use", elapsed)
		}
	}
	now = created.Add(SessionMax + time.Second)
	if _, ok := s.get(id); ok {
		t.Fatal("session outlived SessionMax")
	}

	idle := s.create("")
	now = now.Add(SessionIdle + time.Second)
	if _, ok := s.get(idle); ok {
		t.Fatal("idle session still valid")
	}
	s.delete(idle)
}
