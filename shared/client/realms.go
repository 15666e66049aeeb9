package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// The realm routes. Creating and deleting realms, and managing another
// realm's keys, take a global operator key; a realm's operator key does the
// rest inside its realm (another realm answers 404).

func realmPath(name string) string { return "/realms/" + url.PathEscape(name) }

// CreateRealm creates a realm (201; 409 when the name is taken, 422 when it
// is no DNS label).
func (c *Client) CreateRealm(ctx context.Context, p wire.CreateRealmPayload) (wire.Realm, error) {
	var out wire.Realm
	_, err := c.do(ctx, http.MethodPost, "/realms", p, &out, nil)
	return out, err
}

// ListRealms returns one page of the realms the credential sees.
func (c *Client) ListRealms(ctx context.Context, cursor string, limit int) (wire.RealmList, error) {
	q := url.Values{}
	set(q, "cursor", cursor)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out wire.RealmList
	_, err := c.do(ctx, http.MethodGet, "/realms"+query(q), nil, &out, nil)
	return out, err
}

// GetRealm reads a realm with its runner and task counts.
func (c *Client) GetRealm(ctx context.Context, name string) (wire.Realm, error) {
	var out wire.Realm
	_, err := c.do(ctx, http.MethodGet, realmPath(name), nil, &out, nil)
	return out, err
}

// PatchRealm changes a realm's description and merges policies into its
// own (a key mapped to nil, JSON null, goes back to the global setting).
func (c *Client) PatchRealm(ctx context.Context, name string, description *string, policies map[string]any) (wire.Realm, error) {
	body := wire.PatchRealmPayload{Description: description}
	if policies != nil {
		b, err := json.Marshal(policies)
		if err != nil {
			return wire.Realm{}, fmt.Errorf("yggdrasil: encode policies: %w", err)
		}
		body.Policies = b
	}
	var out wire.Realm
	_, err := c.do(ctx, http.MethodPatch, realmPath(name), body, &out, nil)
	return out, err
}

// DrainRealm moves a realm to draining (409 when not active).
func (c *Client) DrainRealm(ctx context.Context, name string) (wire.Realm, error) {
	return c.realmStep(ctx, name, "drain")
}

// ActivateRealm moves a draining realm back to active.
func (c *Client) ActivateRealm(ctx context.Context, name string) (wire.Realm, error) {
	return c.realmStep(ctx, name, "activate")
}

// CloseRealm closes an active or draining realm: its runners are told to deregister.
func (c *Client) CloseRealm(ctx context.Context, name string) (wire.Realm, error) {
	return c.realmStep(ctx, name, "close")
}

func (c *Client) realmStep(ctx context.Context, name, step string) (wire.Realm, error) {
	var out wire.Realm
	_, err := c.do(ctx, http.MethodPost, realmPath(name)+"/"+step, nil, &out, nil)
	return out, err
}

// DeleteRealm deletes a closed realm without live runners (204).
func (c *Client) DeleteRealm(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, realmPath(name), nil, nil, nil)
	return err
}

// IssueRealmKey issues a key of role wire.RealmRoleRegister or
// wire.RealmRoleOperator; the reply's Key is shown this once.
func (c *Client) IssueRealmKey(ctx context.Context, realm, name, role string) (wire.RealmKey, error) {
	var out wire.RealmKey
	_, err := c.do(ctx, http.MethodPost, realmPath(realm)+"/keys", wire.IssueRealmKeyPayload{Name: name, Role: role}, &out, nil)
	return out, err
}

// ListRealmKeys lists a realm's keys (never their material).
func (c *Client) ListRealmKeys(ctx context.Context, realm string) (wire.RealmKeyList, error) {
	var out wire.RealmKeyList
	_, err := c.do(ctx, http.MethodGet, realmPath(realm)+"/keys", nil, &out, nil)
	return out, err
}

// RevokeRealmKey revokes a realm's key: it fails (401) from the next request on.
func (c *Client) RevokeRealmKey(ctx context.Context, realm, id string) error {
	_, err := c.do(ctx, http.MethodDelete, realmPath(realm)+"/keys/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// RealmAdmission reads the admission state of one realm.
func (c *Client) RealmAdmission(ctx context.Context, realm string) (wire.AdmissionState, error) {
	var out wire.AdmissionState
	_, err := c.do(ctx, http.MethodGet, "/admission?realm="+url.QueryEscape(realm), nil, &out, nil)
	return out, err
}
