package validate

import (
	"net/url"
	"regexp"

	"github.com/Masterminds/semver/v3"

	"github.com/yggdrasil-cp/yggdrasil/shared/config"
	"github.com/yggdrasil-cp/yggdrasil/shared/wire"
)

// Realm limits: part of the API contract.
const (
	MaxRealmDescriptionLen = 512
	MaxRealmWebhookURLs    = 8
	MaxKeyNameLen          = 128
)

var dnsLabelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// RealmName reports whether s is a realm name: a DNS label (lowercase,
// 1-63 characters of [a-z0-9-], no leading or trailing -).
func RealmName(s string) bool { return dnsLabelRe.MatchString(s) }

// CheckRealm validates a realm name in field.
func CheckRealm(field, s string) error {
	if !RealmName(s) {
		return Fail(field, "must be a DNS label: lowercase, 1-63 of [a-z0-9-], no leading or trailing -")
	}
	return nil
}

// CreateRealm validates POST /realms.
func CreateRealm(p *wire.CreateRealmPayload) error {
	if err := CheckRealm("name", p.Name); err != nil {
		return err
	}
	if err := text("description", p.Description, false, MaxRealmDescriptionLen); err != nil {
		return err
	}
	if p.Policies != nil {
		return RealmPolicies(*p.Policies)
	}
	return nil
}

// RealmPolicies validates a realm's (merged) policies.
func RealmPolicies(p wire.RealmPolicies) error {
	if p.LeaseTTLMs != nil && (*p.LeaseTTLMs < 100 || *p.LeaseTTLMs > 24*3600*1000) {
		return Fail("policies.leaseTtlMs", "must be between 100 and 86400000")
	}
	if p.HeartbeatIntervalMs != nil && (*p.HeartbeatIntervalMs < 50 || *p.HeartbeatIntervalMs > 24*3600*1000) {
		return Fail("policies.heartbeatIntervalMs", "must be between 50 and 86400000")
	}
	if p.LeaseTTLMs != nil && p.HeartbeatIntervalMs != nil && *p.HeartbeatIntervalMs >= *p.LeaseTTLMs {
		return Fail("policies.heartbeatIntervalMs", "must be below policies.leaseTtlMs")
	}
	if p.ExpectedRunnerVersion != nil && *p.ExpectedRunnerVersion != "" {
		if len(*p.ExpectedRunnerVersion) > 128 {
			return Fail("policies.expectedRunnerVersion", "is too long")
		}
		if _, err := semver.NewConstraint(*p.ExpectedRunnerVersion); err != nil {
			return Fail("policies.expectedRunnerVersion", "must be a version or a semver constraint")
		}
	}
	if p.MaxRunners != nil && *p.MaxRunners < 0 {
		return Fail("policies.maxRunners", "must not be negative (0 = no realm limit)")
	}
	if len(p.WebhookURLs) > MaxRealmWebhookURLs {
		return Fail("policies.webhookUrls", "at most %d URLs", MaxRealmWebhookURLs)
	}
	for _, s := range p.WebhookURLs {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 2048 {
			return Fail("policies.webhookUrls", "every URL must be http(s) with a host")
		}
	}
	if p.WebhookSecret != "" {
		if _, err := config.DecodeHookSecret(p.WebhookSecret); err != nil {
			// never echo the secret
			return Fail("policies.webhookSecret", "must be whsec_ + standard base64 of 24 to 64 bytes")
		}
	}
	if p.MassExpiryPercent != nil && (*p.MassExpiryPercent < 1 || *p.MassExpiryPercent > 100) {
		return Fail("policies.massExpiryPercent", "must be between 1 and 100")
	}
	if p.RegisterRate != nil && (*p.RegisterRate < 0 || *p.RegisterRate > 1e6) {
		return Fail("policies.registerRate", "must be between 0 (no limit) and 1000000 per second")
	}
	if p.RegisterBurst != nil && (*p.RegisterBurst < 1 || *p.RegisterBurst > 1e6) {
		return Fail("policies.registerBurst", "must be between 1 and 1000000")
	}
	return nil
}

// IssueRealmKey validates POST /realms/:name/keys.
func IssueRealmKey(p *wire.IssueRealmKeyPayload) error {
	if err := text("name", p.Name, true, MaxKeyNameLen); err != nil {
		return err
	}
	if p.Role != wire.RealmRoleRegister && p.Role != wire.RealmRoleOperator {
		return Fail("role", "must be %s or %s", wire.RealmRoleRegister, wire.RealmRoleOperator)
	}
	return nil
}

// Description validates a realm description.
func Description(s string) error { return text("description", s, false, MaxRealmDescriptionLen) }
