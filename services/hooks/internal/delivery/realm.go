package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/yggdrasil-cp/yggdrasil/shared/store"
)

// RealmSource reads a realm's webhook destinations and signing secret
// (store.GetRealmHooks); an unknown realm has none.
type RealmSource func(ctx context.Context, realm string) (store.RealmHooks, error)

// RealmCache keeps RealmSource answers for a short time, so that a burst of
// one realm's events costs one Redis read, and a realm's new secret or
// destinations apply within ttl. The relay reads destinations through it,
// the delivery handler the secret (the secret never travels in a task).
type RealmCache struct {
	src RealmSource
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]realmEntry
	signers map[string]*Signer // by secret
}

type realmEntry struct {
	hooks store.RealmHooks
	at    time.Time
}

// maxRealmEntries bounds the cache; realms are operator-created, so the
// bound is only reached by a fleet of that many realms (then it is cleared).
const maxRealmEntries = 4096

// NewRealmCache caches src's answers for ttl (0: no caching).
func NewRealmCache(src RealmSource, ttl time.Duration) *RealmCache {
	return &RealmCache{src: src, ttl: ttl, now: time.Now, entries: map[string]realmEntry{}, signers: map[string]*Signer{}}
}

// Get returns realm's hooks, from the cache when fresh.
func (c *RealmCache) Get(ctx context.Context, realm string) (store.RealmHooks, error) {
	c.mu.Lock()
	e, ok := c.entries[realm]
	c.mu.Unlock()
	if ok && c.now().Sub(e.at) < c.ttl {
		return e.hooks, nil
	}
	h, err := c.src(ctx, realm)
	if err != nil {
		return store.RealmHooks{}, err
	}
	c.mu.Lock()
	if len(c.entries) >= maxRealmEntries {
		clear(c.entries)
	}
	c.entries[realm] = realmEntry{hooks: h, at: c.now()}
	c.mu.Unlock()
	return h, nil
}

// signer returns the signer of realm's current secret (nil when the realm
// has none).
func (c *RealmCache) signer(ctx context.Context, realm string) (*Signer, error) {
	h, err := c.Get(ctx, realm)
	if err != nil || h.Secret == "" {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.signers[h.Secret]; ok {
		return s, nil
	}
	s, err := NewSigner([]string{h.Secret})
	if err != nil {
		return nil, err
	}
	if len(c.signers) >= maxRealmEntries {
		clear(c.signers)
	}
	c.signers[h.Secret] = s
	return s, nil
}
