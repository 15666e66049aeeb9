package auth

import (
	"context"
	"errors"
	"testing"
)

var errNotFound = errors.New("not found")

func TestAuthenticate(t *testing.T) {
	token, hash, err := NewToken("r.1")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, id string) (string, error) {
		if id == "r.1" {
			return hash, nil
		}
		return "", errNotFound
	}
	a := New([]string{"api-key-0123456789"}, []string{"op-key-0123456789"}, lookup, errNotFound, func(string) bool { return true })
	cases := []struct {
		header string
		want   Principal
		err    error
	}{
		{"", Principal{}, nil},
		{"Bearer api-key-0123456789", Principal{Role: RoleAPIKey}, nil},
		{"bearer op-key-0123456789", Principal{Role: RoleOperator}, nil},
		{"Bearer " + token, Principal{Role: RoleRunner, RunnerID: "r.1"}, nil},
		{"Bearer " + token + "x", Principal{}, ErrUnauthenticated},
		{"Bearer r.2.abc", Principal{}, ErrUnauthenticated},
		{"Basic dXNlcjpwYXNz", Principal{}, ErrUnauthenticated},
		{"Bearer ", Principal{}, ErrUnauthenticated},
		{"Bearer nodot", Principal{}, ErrUnauthenticated},
	}
	for _, c := range cases {
		got, err := a.Authenticate(context.Background(), c.header)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("%q: got %+v, %v", c.header, got, err)
		}
	}
	// without operator keys the API keys are operator keys
	b := New([]string{"api-key-0123456789"}, nil, lookup, errNotFound, nil)
	if p, _ := b.Authenticate(context.Background(), "Bearer api-key-0123456789"); p.Role != RoleOperator {
		t.Errorf("API key without ADMIN_API_KEYS = %v", p.Role)
	}
	if off := New(nil, nil, lookup, errNotFound, nil); off.Enabled() {
		t.Error("auth on without keys")
	}
}
