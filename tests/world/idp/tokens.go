package main

import (
	"slices"
	"strings"
	"time"
)

// Zitadel's reserved scopes and claims.
const (
	scopeAllProjectRoles = "urn:zitadel:iam:org:projects:roles"
	scopeRolePrefix      = "urn:zitadel:iam:org:project:role:"
	scopeAudPrefix       = "urn:zitadel:iam:org:project:id:"
	scopeAudSuffix       = ":aud"
	claimRoles           = "urn:zitadel:iam:org:project:roles"
)

// tokenRecord is what the IdP remembers about an issued access token (JWT or opaque), for introspection,
// userinfo and revocation.
type tokenRecord struct {
	ID        string         `json:"id"`
	Kind      string         `json:"kind"` // tokenJWT or tokenOpaque
	Issuer    string         `json:"iss"`
	ClientID  string         `json:"client_id"`
	Subject   string         `json:"sub"`
	Audience  []string       `json:"aud"`
	Scopes    []string       `json:"scopes"`
	Roles     rolesClaim     `json:"roles,omitempty"`
	IssuedAt  time.Time      `json:"iat"`
	NotBefore time.Time      `json:"nbf"`
	Expires   time.Time      `json:"exp"`
	Revoked   bool           `json:"revoked"`
	Extra     map[string]any `json:"extra,omitempty"` // claims a minted token carries beyond the standard ones
}

func (t *tokenRecord) activeAt(now time.Time) bool {
	return !t.Revoked && now.Before(t.Expires) && !now.Before(t.NotBefore.Add(-time.Second))
}

// rolesClaim is Zitadel's project roles claim: role key -> org id -> org domain.
type rolesClaim map[string]map[string]string

func (c *Config) rolesClaimFor(roles []string) rolesClaim {
	claim := rolesClaim{}
	for _, r := range roles {
		claim[r] = map[string]string{c.Org.ID: c.Org.Domain}
	}
	return claim
}

// grantedRoles decides which of the user's roles go into a token, as Zitadel does: all of them with the
// projects-roles scope or role assertion on the client, only the named ones with role scopes, none otherwise.
// The second result says whether the roles claim is present at all.
func grantedRoles(user *UserConfig, client *ClientConfig, scopes []string) ([]string, bool) {
	if user == nil {
		return nil, false
	}
	if slices.Contains(scopes, scopeAllProjectRoles) || (client != nil && client.AccessTokenRoleAssertion) {
		return slices.Clone(user.Roles), true
	}
	var named []string
	asked := false
	for _, s := range scopes {
		if role, ok := strings.CutPrefix(s, scopeRolePrefix); ok {
			asked = true
			if slices.Contains(user.Roles, role) {
				named = append(named, role)
			}
		}
	}
	return named, asked
}

// audienceFor is the token audience: the client, its project, and every project asked for with the
// project-audience scope.
func audienceFor(client *ClientConfig, clientID string, scopes []string) []string {
	aud := []string{clientID}
	add := func(a string) {
		if a != "" && !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	if client != nil {
		add(client.ProjectID)
	}
	for _, s := range scopes {
		if rest, ok := strings.CutPrefix(s, scopeAudPrefix); ok {
			if project, ok := strings.CutSuffix(rest, scopeAudSuffix); ok {
				add(project)
			}
		}
	}
	return aud
}

// callerInAudience is Zitadel's rule for introspection: the calling client, or its project, must be an audience.
func callerInAudience(caller *ClientConfig, aud []string) bool {
	return slices.Contains(aud, caller.ClientID) || slices.Contains(aud, caller.ProjectID)
}
