// Package auth decides who a request comes from: an API key (may register
// runners), an operator key, or a runner token that acts on its own runner
// only. Keys are compared as SHA-256 digests in constant time; runner tokens
// are stored hashed and never leave this package except once, at register.
//
// It must never log, trace or return a key or token in an error.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/yggdrasil-cp/yggdrasil/shared/keyauth"
)

// Role is what a credential may do.
type Role int

// Roles, from least to most privileged among keys. RoleRunner is a runner's
// own token; RoleAnonymous is every request when auth is off.
const (
	RoleNone Role = iota
	RoleAPIKey
	RoleOperator
	RoleRunner
	RoleAnonymous
)

func (r Role) String() string {
	switch r {
	case RoleAPIKey:
		return "api_key"
	case RoleOperator:
		return "operator"
	case RoleRunner:
		return "runner"
	case RoleAnonymous:
		return "anonymous"
	}
	return "none"
}

// Principal is the authenticated caller. RunnerID is set for RoleRunner.
type Principal struct {
	Role     Role
	RunnerID string
}

// CanRegister reports whether p may register runners.
func (p Principal) CanRegister() bool {
	return p.Role == RoleAPIKey || p.Role == RoleOperator || p.Role == RoleAnonymous
}

// IsOperator reports whether p has operator rights.
func (p Principal) IsOperator() bool { return p.Role == RoleOperator || p.Role == RoleAnonymous }

// Authenticated reports whether p holds any valid credential (or auth is off).
func (p Principal) Authenticated() bool { return p.Role != RoleNone }

// ActsFor reports whether p may act on runner id as that runner.
func (p Principal) ActsFor(id string) bool {
	return p.Role == RoleAnonymous || (p.Role == RoleRunner && p.RunnerID == id)
}

// Errors the HTTP layer maps to 401 and 403.
var (
	ErrUnauthenticated = errors.New("missing or invalid credential")
	ErrForbidden       = errors.New("credential not allowed here")
)

// TokenLookup returns the stored token hash of a runner; it returns an error
// wrapping notFound when the runner does not exist.
type TokenLookup func(ctx context.Context, runnerID string) (string, error)

// Authenticator turns an Authorization header into a Principal.
type Authenticator struct {
	apiKeys   keyauth.KeySet
	operators keyauth.KeySet
	lookup    TokenLookup
	notFound  error
	validID   func(string) bool
}

// New returns an Authenticator. apiKeys may register; operatorKeys are
// operator keys; when operatorKeys is empty the apiKeys are operator keys
// too. With both empty, auth is off (Enabled reports false). notFound is the
// error lookup wraps for an unknown runner; validID checks the runner id part
// of a token before it goes anywhere near Redis.
func New(apiKeys, operatorKeys []string, lookup TokenLookup, notFound error, validID func(string) bool) *Authenticator {
	a := &Authenticator{
		apiKeys: keyauth.NewKeySet(apiKeys), operators: keyauth.NewKeySet(operatorKeys),
		lookup: lookup, notFound: notFound, validID: validID,
	}
	if a.operators.Empty() {
		a.operators = a.apiKeys
	}
	return a
}

// Enabled reports whether any key is configured.
func (a *Authenticator) Enabled() bool { return !a.apiKeys.Empty() || !a.operators.Empty() }

// Authenticate resolves the Authorization header value. An empty header gives
// RoleNone without error; a credential that matches nothing gives
// ErrUnauthenticated. Other errors are infrastructure failures (token lookup).
func (a *Authenticator) Authenticate(ctx context.Context, header string) (Principal, error) {
	if !a.Enabled() {
		return Principal{Role: RoleAnonymous}, nil
	}
	if header == "" {
		return Principal{}, nil
	}
	cred, ok := keyauth.Bearer(header)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	sum := sha256.Sum256([]byte(cred))
	// Compare against every key of both sets, so that the time taken says
	// nothing about which key (if any) matched.
	operator := a.operators.ContainsDigest(sum)
	api := a.apiKeys.ContainsDigest(sum)
	switch {
	case operator:
		return Principal{Role: RoleOperator}, nil
	case api:
		return Principal{Role: RoleAPIKey}, nil
	}
	id, _, ok := SplitToken(cred)
	if !ok || (a.validID != nil && !a.validID(id)) {
		return Principal{}, ErrUnauthenticated
	}
	stored, err := a.lookup(ctx, id)
	if err != nil {
		if a.notFound != nil && errors.Is(err, a.notFound) {
			return Principal{}, ErrUnauthenticated
		}
		return Principal{}, fmt.Errorf("auth: token lookup: %w", err)
	}
	got := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(got), []byte(stored)) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{Role: RoleRunner, RunnerID: id}, nil
}

// NewToken returns a fresh runner token "<runnerId>.<secret>" and the hash
// to store. The runner id prefix lets a request name its runner without a lookup.
func NewToken(runnerID string) (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("auth: token: %w", err)
	}
	token = runnerID + "." + hex.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// HashToken is the stored form of a runner token: SHA-256, hex.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// SplitToken splits "<runnerId>.<secret>" at its last dot (runner ids may
// contain dots; secrets never do).
func SplitToken(token string) (runnerID, secret string, ok bool) {
	i := strings.LastIndexByte(token, '.')
	if i <= 0 || i == len(token)-1 {
		return "", "", false
	}
	return token[:i], token[i+1:], true
}
