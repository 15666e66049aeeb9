// Package keyauth checks bearer credentials against configured keys. Every
// service that takes an operator or API key uses it, so there is one
// comparison to get right: keys are kept as SHA-256 digests and a credential
// is compared with every one of them in constant time, so neither a key, its
// length, nor which key matched leaks through timing.
//
// It must never log or return a credential.
package keyauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/yggdrasil-cp/yggdrasil/shared/problem"
)

// MaxCredentialLen bounds what is hashed; longer credentials never match.
const MaxCredentialLen = 512

// KeySet is a set of keys, held as digests.
type KeySet struct {
	sums [][sha256.Size]byte
}

// NewKeySet returns the set of the non-blank keys (surrounding space trimmed).
func NewKeySet(keys []string) KeySet {
	var s KeySet
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			s.sums = append(s.sums, sha256.Sum256([]byte(k)))
		}
	}
	return s
}

// Empty reports whether the set holds no key.
func (s KeySet) Empty() bool { return len(s.sums) == 0 }

// Contains reports whether cred is one of the keys. It compares against every
// key without stopping early.
func (s KeySet) Contains(cred string) bool {
	if cred == "" || len(cred) > MaxCredentialLen {
		return false
	}
	return s.ContainsDigest(sha256.Sum256([]byte(cred)))
}

// ContainsDigest is Contains for a credential already hashed with SHA-256,
// for callers that compare one credential with several sets.
func (s KeySet) ContainsDigest(sum [sha256.Size]byte) bool {
	found := 0
	for i := range s.sums {
		found |= subtle.ConstantTimeCompare(sum[:], s.sums[i][:])
	}
	return found == 1
}

// Bearer returns the credential of an "Authorization: Bearer <credential>"
// header value (scheme case-insensitive), and false when there is none.
func Bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	if cred == "" || len(cred) > MaxCredentialLen {
		return "", false
	}
	return cred, true
}

// RequireBearer guards next with one token (METRICS_TOKEN): a request
// without "Authorization: Bearer <token>" gets a 401 problem. An empty token
// leaves next open.
func RequireBearer(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	keys := NewKeySet([]string{token})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, ok := Bearer(r.Header.Get("Authorization"))
		if !ok || !keys.Contains(cred) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="yggdrasil"`)
			problem.Write(w, problem.New(http.StatusUnauthorized, problem.TypeUnauthorized, "a valid Authorization: Bearer token is required"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
