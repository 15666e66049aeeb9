package runners

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/auth"
	"github.com/yggdrasil-cp/yggdrasil/services/api/internal/validate"
	"github.com/yggdrasil-cp/yggdrasil/shared/store"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// jitter spreads the retries of a registration storm: d plus up to d again
// (at least a second more), so that refused runners do not come back in step.
func jitter(d time.Duration) time.Duration {
	spread := max(d, time.Second)
	return d + time.Duration(rand.Int64N(int64(spread)))
}

// errRealmScopedCreate refuses realm creation to a realm-scoped key.
var errRealmScopedCreate = fmt.Errorf("runners: only global operator keys create realms: %w", auth.ErrForbidden)

// realmFor checks that p sees realm name: another realm is ErrRealmNotFound
// to a realm-scoped key, exactly as a realm that does not exist.
func realmFor(p auth.Principal, name string) error {
	if err := validate.CheckRealm("name", name); err != nil {
		if p.Scoped() {
			return fmt.Errorf("runners: realm %q: %w", name, store.ErrRealmNotFound)
		}
		return err
	}
	if !p.Sees(name) {
		return fmt.Errorf("runners: realm of another key: %w", store.ErrRealmNotFound)
	}
	return nil
}

// RunnerRealm returns the realm of runner id; ErrRunnerNotFound when it
// does not exist.
func (s *Service) RunnerRealm(ctx context.Context, id string) (string, error) {
	r, err := s.store.RunnerRealmOf(ctx, id)
	return r, s.observe(err)
}

// CheckRunnerRealm answers ErrRunnerNotFound when p is realm-scoped and
// runner id is not of its realm: another realm's runner does not exist for
// it. Global credentials pass without a read.
func (s *Service) CheckRunnerRealm(ctx context.Context, p auth.Principal, id string) error {
	if !p.Scoped() {
		return nil
	}
	if !validate.ID(id) {
		return fmt.Errorf("runners: runner %q: %w", id, store.ErrRunnerNotFound)
	}
	r, err := s.RunnerRealm(ctx, id)
	if err != nil {
		return err
	}
	if r != p.Realm {
		return fmt.Errorf("runners: runner of another realm: %w", store.ErrRunnerNotFound)
	}
	return nil
}

// CreateRealm creates a realm (global operators only).
func (s *Service) CreateRealm(ctx context.Context, p auth.Principal, body wire.CreateRealmPayload) (wire.Realm, error) {
	if !p.IsGlobalOperator() {
		return wire.Realm{}, errRealmScopedCreate
	}
	if err := validate.CreateRealm(&body); err != nil {
		return wire.Realm{}, err
	}
	var pol wire.RealmPolicies
	if body.Policies != nil {
		pol = *body.Policies
	}
	w := store.RealmWrite{Name: body.Name, Description: body.Description, Policies: pol, Secret: pol.WebhookSecret}
	if err := s.observe(s.store.CreateRealm(ctx, w, p.Actor())); err != nil {
		return wire.Realm{}, err
	}
	r, err := s.store.GetRealm(ctx, body.Name)
	return r, s.observe(err)
}

// ListRealms lists the realms p sees: every realm for a global operator,
// its own for a realm-scoped key.
func (s *Service) ListRealms(ctx context.Context, p auth.Principal, cursor, limitS string) (wire.RealmList, error) {
	if !p.IsOperator() {
		return wire.RealmList{}, auth.ErrForbidden
	}
	if p.Scoped() {
		r, err := s.store.GetRealm(ctx, p.Realm)
		if err = s.observe(err); err != nil {
			return wire.RealmList{}, err
		}
		if cursor != "" && cursor >= r.Name {
			return wire.RealmList{Realms: []wire.Realm{}}, nil
		}
		return wire.RealmList{Realms: []wire.Realm{r}}, nil
	}
	if cursor != "" && !validate.RealmName(cursor) {
		return wire.RealmList{}, validate.Fail("cursor", "is not a cursor")
	}
	limit, err := validate.Limit(limitS, store.MaxListLimit)
	if err != nil {
		return wire.RealmList{}, err
	}
	l, err := s.store.ListRealms(ctx, cursor, limit)
	return l, s.observe(err)
}

// GetRealm reads a realm with its runner and task counts.
func (s *Service) GetRealm(ctx context.Context, p auth.Principal, name string) (wire.Realm, error) {
	if err := realmFor(p, name); err != nil {
		return wire.Realm{}, err
	}
	if !p.IsOperator() {
		return wire.Realm{}, auth.ErrForbidden
	}
	r, err := s.store.GetRealm(ctx, name)
	if err = s.observe(err); err != nil {
		return wire.Realm{}, err
	}
	r.Runners, r.Tasks, err = s.store.GetRealmCounts(ctx, name)
	return r, s.observe(err)
}

// realmOperatorPolicies are the policies a realm's own operator may change:
// where its events go. Capacity and timing are the global operators'.
var realmOperatorPolicies = map[string]bool{"webhookUrls": true, "webhookSecret": true}

// PatchRealm merges description and policies into a realm: a policy set to
// null goes back to the global setting.
func (s *Service) PatchRealm(ctx context.Context, p auth.Principal, name string, body wire.PatchRealmPayload) (wire.Realm, error) {
	if err := realmFor(p, name); err != nil {
		return wire.Realm{}, err
	}
	if !p.IsOperator() {
		return wire.Realm{}, auth.ErrForbidden
	}
	if body.Description != nil {
		if err := validate.Description(*body.Description); err != nil {
			return wire.Realm{}, err
		}
	}
	var patch map[string]json.RawMessage
	if len(body.Policies) > 0 && !bytes.Equal(bytes.TrimSpace(body.Policies), []byte("null")) {
		if err := json.Unmarshal(body.Policies, &patch); err != nil {
			return wire.Realm{}, validate.Fail("policies", "must be an object")
		}
	}
	if p.Scoped() {
		for k := range patch {
			if !realmOperatorPolicies[k] {
				return wire.Realm{}, fmt.Errorf("runners: a realm operator changing %s: %w", k, auth.ErrForbidden)
			}
		}
	}
	cur, err := s.store.GetRealm(ctx, name)
	if err = s.observe(err); err != nil {
		return wire.Realm{}, err
	}
	merged := map[string]json.RawMessage{}
	if b, err := json.Marshal(cur.Policies); err == nil {
		_ = json.Unmarshal(b, &merged)
	}
	for k, v := range patch {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	mb, _ := json.Marshal(merged)
	var pol wire.RealmPolicies
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pol); err != nil {
		return wire.Realm{}, validate.Fail("policies", "holds an unknown policy or a value of the wrong type")
	}
	if err := validate.RealmPolicies(pol); err != nil {
		return wire.Realm{}, err
	}
	w := store.RealmWrite{Name: name, Policies: pol}
	if body.Description != nil {
		w.SetDescription, w.Description = true, *body.Description
	}
	if v, ok := patch["webhookSecret"]; ok {
		w.SetSecret, w.Secret = true, pol.WebhookSecret
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			w.Secret = ""
		}
	}
	if err := s.observe(s.store.UpdateRealm(ctx, w)); err != nil {
		return wire.Realm{}, err
	}
	return s.GetRealm(ctx, p, name)
}

// TransitionRealm moves a realm to state (drain, activate, close), as p.
func (s *Service) TransitionRealm(ctx context.Context, p auth.Principal, name string, state wire.RealmState) (wire.Realm, error) {
	if err := realmFor(p, name); err != nil {
		return wire.Realm{}, err
	}
	if !p.IsOperator() {
		return wire.Realm{}, auth.ErrForbidden
	}
	if err := s.observe(s.store.TransitionRealm(ctx, name, state, p.Actor())); err != nil {
		return wire.Realm{}, err
	}
	return s.GetRealm(ctx, p, name)
}

// DeleteRealm deletes a closed realm without live runners (global
// operators only; the default realm never).
func (s *Service) DeleteRealm(ctx context.Context, p auth.Principal, name string) error {
	if err := realmFor(p, name); err != nil {
		return err
	}
	if !p.IsGlobalOperator() {
		return auth.ErrForbidden
	}
	return s.observe(s.store.DeleteRealm(ctx, name, p.Actor()))
}

// IssueRealmKey issues a key for realm name; the key is in the reply only.
func (s *Service) IssueRealmKey(ctx context.Context, p auth.Principal, name string, body wire.IssueRealmKeyPayload) (wire.RealmKey, error) {
	if err := realmFor(p, name); err != nil {
		return wire.RealmKey{}, err
	}
	if !p.IsOperator() {
		return wire.RealmKey{}, auth.ErrForbidden
	}
	if err := validate.IssueRealmKey(&body); err != nil {
		return wire.RealmKey{}, err
	}
	key, hash, err := auth.NewRealmKey()
	if err != nil {
		return wire.RealmKey{}, err
	}
	id := store.NewID("key_")
	at, err := s.store.IssueRealmKey(ctx, name, id, hash, body.Name, body.Role)
	if err = s.observe(err); err != nil {
		return wire.RealmKey{}, err
	}
	return wire.RealmKey{ID: id, Key: key, Name: body.Name, Role: body.Role, CreatedAt: at}, nil
}

// ListRealmKeys lists realm name's keys, never their material.
func (s *Service) ListRealmKeys(ctx context.Context, p auth.Principal, name string) (wire.RealmKeyList, error) {
	if err := realmFor(p, name); err != nil {
		return wire.RealmKeyList{}, err
	}
	if !p.IsOperator() {
		return wire.RealmKeyList{}, auth.ErrForbidden
	}
	if _, err := s.store.GetRealm(ctx, name); s.observe(err) != nil {
		return wire.RealmKeyList{}, s.observe(err)
	}
	ks, err := s.store.ListRealmKeys(ctx, name)
	return wire.RealmKeyList{Keys: ks}, s.observe(err)
}

// RevokeRealmKey revokes key id of realm name.
func (s *Service) RevokeRealmKey(ctx context.Context, p auth.Principal, name, id string) error {
	if err := realmFor(p, name); err != nil {
		return err
	}
	if !p.IsOperator() {
		return auth.ErrForbidden
	}
	if !validate.ID(id) {
		return fmt.Errorf("runners: key %q: %w", id, store.ErrRealmKeyNotFound)
	}
	return s.observe(s.store.RevokeRealmKey(ctx, name, id))
}

// LookupRealmKey resolves a realm-scoped key for authentication.
func (s *Service) LookupRealmKey(ctx context.Context, hash string) (auth.RealmKey, error) {
	k, err := s.store.LookupRealmKey(ctx, hash)
	if err = s.observe(err); err != nil {
		return auth.RealmKey{}, err
	}
	return auth.RealmKey{ID: k.ID, Realm: k.Realm, Role: k.Role, Hash: k.Hash}, nil
}

// RealmVersionCheck is VersionCheck against realm's expectedRunnerVersion
// policy when it sets one.
func (s *Service) RealmVersionCheck(ctx context.Context, realm, version string) (wire.VersionCheckResponse, error) {
	out, err := s.VersionCheck(version)
	if err != nil || realm == "" {
		return out, err
	}
	r, err := s.store.GetRealm(ctx, realm)
	if err = s.observe(err); err != nil {
		return wire.VersionCheckResponse{}, err
	}
	if r.Policies.ExpectedRunnerVersion == nil || *r.Policies.ExpectedRunnerVersion == "" {
		return out, nil
	}
	c, err := expectedConstraint(*r.Policies.ExpectedRunnerVersion)
	if err != nil {
		return out, nil
	}
	v, _ := semver.NewVersion(version)
	out.Expected = *r.Policies.ExpectedRunnerVersion
	out.Compliant = c.Check(v)
	out.UpdateRequired = !out.Compliant
	return out, nil
}

// RealmAdmission is Admission for one realm: the fleet's state, then the
// realm's own (not active, or its maxRunners reached).
func (s *Service) RealmAdmission(ctx context.Context, realm string) (wire.AdmissionState, error) {
	st := s.Admission(ctx)
	r, err := s.store.GetRealm(ctx, realm)
	if err = s.observe(err); err != nil {
		return wire.AdmissionState{}, err
	}
	if !st.Admitting {
		return st, nil
	}
	if r.State != wire.RealmActive {
		return wire.AdmissionState{Admitting: false, State: "realm_" + string(r.State), Reason: "realm_" + string(r.State), Since: r.StateChangedAt}, nil
	}
	if r.Policies.MaxRunners != nil && *r.Policies.MaxRunners > 0 {
		n, err := s.store.RealmLiveCount(ctx, realm)
		if err = s.observe(err); err != nil {
			return wire.AdmissionState{}, err
		}
		if n >= int64(*r.Policies.MaxRunners) {
			return wire.AdmissionState{Admitting: false, State: StateFull, Reason: "realm_max_runners", Since: st.Since}, nil
		}
	}
	return st, nil
}
