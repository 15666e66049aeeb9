package keyauth

import (
	"strings"
	"testing"
)

func TestKeySet(t *testing.T) {
	s := NewKeySet([]string{" alpha-key-0123456789 ", "", "beta-key-0123456789"})
	tests := []struct {
		cred string
		want bool
	}{
		{"alpha-key-0123456789", true},
		{"beta-key-0123456789", true},
		{"alpha-key-012345678", false},
		{"alpha-key-01234567890", false},
		{"", false},
		{strings.Repeat("x", MaxCredentialLen+1), false},
	}
	for _, tt := range tests {
		if got := s.Contains(tt.cred); got != tt.want {
			t.Errorf("Contains(%.20q) = %v, want %v", tt.cred, got, tt.want)
		}
	}
	if s.Empty() || !NewKeySet([]string{" ", ""}).Empty() {
		t.Error("Empty is wrong")
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"abc", "", false},
	}
	for _, tt := range tests {
		got, ok := Bearer(tt.header)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}
