// Package auth decides who a request comes from and what it may do: an API
// key (may register runners and, under RUNNER_AUTH=token,api-key, act as any
// runner), an operator key, or a runner token that acts on its own runner
// only. The credential comes in `Authorization: Bearer` or `X-API-Key`
// (either header, any credential). Keys are compared as SHA-256 digests in
// constant time; runner tokens are stored hashed and never leave this
// package except once, at register. Handlers ask a Principal (ActsFor,
// MayRegister, Claim) instead of looking at roles themselves.
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
	"log/slog"
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
	// RunnerKey is set when the credential is one of the API_KEYS and
	// RUNNER_AUTH lets API keys act as any runner. A key in both API_KEYS and
	// the operator keys (or every API key while ADMIN_API_KEYS is empty) is
	// RoleOperator with RunnerKey set: it does both.
	RunnerKey bool
	// Realm is set for a realm-scoped key (RoleAPIKey for a register key,
	// RoleOperator for a realm operator key): everything outside it is
	// answered as if it did not exist. KeyID names that key (never its
	// material). Empty for global keys, runner tokens and auth off.
	Realm string
	KeyID string
	// tokenHash is, for RoleRunner, the stored form of the token presented:
	// a registration hands it to register.lua, which compares it with the
	// runner's current hash in the same step that re-registers.
	tokenHash string
	// deferred: the token's hash was not yet compared with the stored one
	// (AuthenticateDeferred); the store does it with the request's own
	// script call, or Verify does it.
	deferred bool
}

// Deferred reports whether p is a runner token nobody has checked yet: it
// proves nothing until the store compared Claim(p.RunnerID).TokenHash with
// the runner's, or Verify said yes.
func (p Principal) Deferred() bool { return p.deferred }

// String names p by role (and runner id), never its token hash, so that a
// Principal printed or logged by mistake shows nothing secret.
func (p Principal) String() string {
	s := p.Role.String()
	if p.Role == RoleRunner {
		s += "(" + p.RunnerID + ")"
	}
	if p.RunnerKey {
		s += "+runner-key"
	}
	if p.Realm != "" {
		s += "@" + p.Realm + "(" + p.KeyID + ")"
	}
	return s
}

// Scoped reports whether p is a realm-scoped key.
func (p Principal) Scoped() bool { return p.Realm != "" }

// Sees reports whether realm is visible to p: every realm for a global
// credential, its own for a realm-scoped key.
func (p Principal) Sees(realm string) bool { return p.Realm == "" || p.Realm == realm }

// IsGlobalOperator reports whether p is an operator across realms (a
// global operator key, or auth off).
func (p Principal) IsGlobalOperator() bool { return p.IsOperator() && !p.Scoped() }

// Actor is who p is in a realm's history: its key id, or "global operator".
func (p Principal) Actor() string {
	if p.Scoped() {
		return p.KeyID
	}
	return "global operator"
}

// LogValue is String for slog.
func (p Principal) LogValue() slog.Value { return slog.StringValue(p.String()) }

// CanRegister reports whether p may register runners at all (a runner
// token may only re-register its own runner: see MayRegister).
func (p Principal) CanRegister() bool {
	return p.Role == RoleAPIKey || p.Role == RoleOperator || p.Role == RoleAnonymous || p.Role == RoleRunner
}

// MayRegister reports whether p may register runnerID ("" for a new
// runner). Keys that may register may name any id; whether a live runner's
// id needs that runner's credential is decided atomically by the store,
// from Claim. A runner token registers only its own runner, named
// explicitly: it never creates a new one.
func (p Principal) MayRegister(runnerID string) bool {
	if p.Role == RoleRunner {
		return runnerID == p.RunnerID
	}
	return p.CanRegister()
}

// Claim is what a caller proves about one runner's credential: AnyRunner
// when its credential acts as every runner (an API key RUNNER_AUTH allows,
// or auth off), TokenHash when it presented a runner token (the store checks
// that it is the runner's current one). The zero Claim proves nothing.
type Claim struct {
	AnyRunner bool
	TokenHash string
}

// Claim returns what p proves about runner id's credential.
func (p Principal) Claim(id string) Claim {
	switch {
	case p.Role == RoleAnonymous || p.RunnerKey:
		return Claim{AnyRunner: true}
	case p.Role == RoleRunner && p.RunnerID == id:
		return Claim{TokenHash: p.tokenHash}
	}
	return Claim{}
}

// IsOperator reports whether p has operator rights.
func (p Principal) IsOperator() bool { return p.Role == RoleOperator || p.Role == RoleAnonymous }

// Authenticated reports whether p holds any valid credential (or auth is off).
func (p Principal) Authenticated() bool { return p.Role != RoleNone }

// ActsFor reports whether p may act on runner id as that runner: its own
// token, an API key when RUNNER_AUTH allows keys (for any id: an unknown one
// is then the store's 404), or anyone with auth off.
func (p Principal) ActsFor(id string) bool {
	return p.Role == RoleAnonymous || p.RunnerKey || (p.Role == RoleRunner && p.RunnerID == id)
}

// Actor is as whom a caller changes a runner's task.
type Actor int

// Actors: a runner reports its own task (epoch checked, any status); an
// operator may only cancel, and the runner is told to stop.
const (
	ActorNone Actor = iota
	ActorRunner
	ActorOperator
)

// TaskActor says as whom p changes a task of runner runnerID. cancelOnly is
// a cancel that carries no lease epoch: when p is both that runner and an
// operator (auth off, or a key in both API_KEYS and the operator keys) such
// a cancel is the operator's, so the runner is told to stop; anything else
// is the runner's report. ActorNone: p may not.
func (p Principal) TaskActor(runnerID string, cancelOnly bool) Actor {
	runner, operator := p.ActsFor(runnerID), p.IsOperator()
	switch {
	case runner && operator:
		if cancelOnly {
			return ActorOperator
		}
		return ActorRunner
	case runner:
		return ActorRunner
	case operator:
		return ActorOperator
	}
	return ActorNone
}

// Errors the HTTP layer maps to 401, 403 and 400.
var (
	ErrUnauthenticated = errors.New("missing or invalid credential")
	ErrForbidden       = errors.New("credential not allowed here")
	// ErrConflictingCredentials: Authorization and X-API-Key both carry a
	// credential and they differ, so it is unclear who is calling.
	ErrConflictingCredentials = errors.New("authorization and X-API-Key carry different credentials")
)

// HeaderAPIKey is the second header a credential may come in.
const HeaderAPIKey = "X-API-Key"

// Credential picks the request's credential from its Authorization header
// (Bearer scheme) and its X-API-Key header: either may carry any
// credential. With neither it returns "" and no error; with both, they must
// be the same credential (ErrConflictingCredentials otherwise). An
// Authorization header that is not a Bearer credential is
// ErrUnauthenticated, as before X-API-Key existed.
func Credential(authorization, apiKey string) (string, error) {
	apiKey = strings.TrimSpace(apiKey)
	if len(apiKey) > keyauth.MaxCredentialLen {
		return "", ErrUnauthenticated
	}
	if authorization == "" {
		return apiKey, nil
	}
	cred, ok := keyauth.Bearer(authorization)
	if !ok {
		return "", ErrUnauthenticated
	}
	// Both are the caller's own strings, no secret of ours: a plain
	// comparison leaks nothing.
	if apiKey != "" && apiKey != cred {
		return "", ErrConflictingCredentials
	}
	return cred, nil
}

// TokenLookup returns the stored token hash of a runner; it returns an error
// wrapping notFound when the runner does not exist.
type TokenLookup func(ctx context.Context, runnerID string) (string, error)

// RealmKey is a realm-scoped key as stored: its id, realm and role
// ("register" or "operator").
type RealmKey struct{ ID, Realm, Role, Hash string }

// RealmKeyLookup finds a realm-scoped key by its SHA-256 (hex), per
// request; an error wrapping notFound means no such key (revoked).
type RealmKeyLookup func(ctx context.Context, hash string) (RealmKey, error)

// RealmKeyPrefix starts every realm-scoped key: it never contains a dot, so
// it is never mistaken for a runner token.
const RealmKeyPrefix = "ygg_rk_"

// NewRealmKey returns a fresh realm-scoped key and its stored hash.
func NewRealmKey() (key, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("auth: realm key: %w", err)
	}
	key = RealmKeyPrefix + hex.EncodeToString(b[:])
	return key, HashToken(key), nil
}

// Keys are the configured keys and what API keys may do.
type Keys struct {
	// API may register runners (API_KEYS).
	API []string
	// Operator are operator keys (ADMIN_API_KEYS); when empty the API keys
	// are operator keys too.
	Operator []string
	// APIKeysActForRunners lets an API key act as any runner on the runner
	// routes (RUNNER_AUTH lists api-key).
	APIKeysActForRunners bool
}

// Authenticator turns a request's credential into a Principal.
type Authenticator struct {
	apiKeys    keyauth.KeySet
	operators  keyauth.KeySet
	keysRunner bool
	lookup     TokenLookup
	notFound   error
	validID    func(string) bool

	realmLookup   RealmKeyLookup
	realmNotFound error
}

// WithRealmKeys lets a resolve realm-scoped keys through lookup (notFound is
// the error it wraps for an unknown key). Realm keys work with auth on only.
func (a *Authenticator) WithRealmKeys(lookup RealmKeyLookup, notFound error) *Authenticator {
	a.realmLookup, a.realmNotFound = lookup, notFound
	return a
}

// New returns an Authenticator for keys. With no key at all, auth is off
// (Enabled reports false). notFound is the error lookup wraps for an unknown
// runner; validID checks the runner id part of a token before it goes
// anywhere near Redis.
func New(keys Keys, lookup TokenLookup, notFound error, validID func(string) bool) *Authenticator {
	a := &Authenticator{
		apiKeys: keyauth.NewKeySet(keys.API), operators: keyauth.NewKeySet(keys.Operator),
		keysRunner: keys.APIKeysActForRunners, lookup: lookup, notFound: notFound, validID: validID,
	}
	if a.operators.Empty() {
		a.operators = a.apiKeys
	}
	return a
}

// Enabled reports whether any key is configured.
func (a *Authenticator) Enabled() bool { return !a.apiKeys.Empty() || !a.operators.Empty() }

// Authenticate resolves a request's Authorization and X-API-Key header
// values (see Credential). No credential gives RoleNone without error; a
// credential that matches nothing gives ErrUnauthenticated. Other errors are
// infrastructure failures (token lookup).
func (a *Authenticator) Authenticate(ctx context.Context, authorization, apiKey string) (Principal, error) {
	p, err := a.AuthenticateDeferred(ctx, authorization, apiKey)
	if err != nil || !p.deferred {
		return p, err
	}
	return a.Verify(ctx, p)
}

// AuthenticateDeferred is Authenticate without the token lookup: keys are
// checked as always, but a runner token only has its form checked and is
// returned Deferred, with its runner id and hash. The caller must have the
// store compare the hash in the request's own script call (the heartbeat:
// one Redis round trip instead of two), or call Verify before it answers
// anything that depends on who is calling.
func (a *Authenticator) AuthenticateDeferred(ctx context.Context, authorization, apiKey string) (Principal, error) {
	if !a.Enabled() {
		return Principal{Role: RoleAnonymous}, nil
	}
	cred, err := Credential(authorization, apiKey)
	if err != nil || cred == "" {
		return Principal{}, err
	}
	sum := sha256.Sum256([]byte(cred))
	// Compare against every key of both sets, so that the time taken says
	// nothing about which key (if any) matched.
	operator := a.operators.ContainsDigest(sum)
	api := a.apiKeys.ContainsDigest(sum)
	runnerKey := api && a.keysRunner
	switch {
	case operator:
		return Principal{Role: RoleOperator, RunnerKey: runnerKey}, nil
	case api:
		return Principal{Role: RoleAPIKey, RunnerKey: runnerKey}, nil
	}
	if strings.HasPrefix(cred, RealmKeyPrefix) && a.realmLookup != nil {
		return a.realmKey(ctx, sum)
	}
	id, _, ok := SplitToken(cred)
	if !ok || (a.validID != nil && !a.validID(id)) {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{Role: RoleRunner, RunnerID: id, tokenHash: hex.EncodeToString(sum[:]), deferred: true}, nil
}

// Verify checks a Deferred principal's token against the stored hash (in
// constant time) and returns it checked; any other principal is returned
// as it is. An unknown runner or another hash is ErrUnauthenticated; other
// errors are infrastructure failures (token lookup).
func (a *Authenticator) Verify(ctx context.Context, p Principal) (Principal, error) {
	if !p.deferred {
		return p, nil
	}
	stored, err := a.lookup(ctx, p.RunnerID)
	if err != nil {
		if a.notFound != nil && errors.Is(err, a.notFound) {
			return Principal{}, ErrUnauthenticated
		}
		return Principal{}, fmt.Errorf("auth: token lookup: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(p.tokenHash), []byte(stored)) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	p.deferred = false
	return p, nil
}

// realmKey resolves a realm-scoped key by its digest (the record is found
// by the hash; the stored hash is then compared in constant time).
func (a *Authenticator) realmKey(ctx context.Context, sum [sha256.Size]byte) (Principal, error) {
	got := hex.EncodeToString(sum[:])
	k, err := a.realmLookup(ctx, got)
	if err != nil {
		if a.realmNotFound != nil && errors.Is(err, a.realmNotFound) {
			return Principal{}, ErrUnauthenticated
		}
		return Principal{}, fmt.Errorf("auth: realm key lookup: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(k.Hash)) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	switch k.Role {
	case "operator":
		return Principal{Role: RoleOperator, Realm: k.Realm, KeyID: k.ID}, nil
	case "register":
		return Principal{Role: RoleAPIKey, RunnerKey: a.keysRunner, Realm: k.Realm, KeyID: k.ID}, nil
	}
	return Principal{}, ErrUnauthenticated
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
