package main

import (
	"context"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// refreshLifetime bounds a refresh token (Zitadel's default idle expiration is much longer; a test world needs
// no more than a day).
const refreshLifetime = 24 * time.Hour

// refreshGrant is what a refresh token stands for: the original login, so a refresh issues a token for the same
// person, client and scopes. Like Zitadel, a refresh token is issued only to a client allowed the refresh_token
// grant that asked for offline_access, and each use replaces it (rotation): an old one is refused.
type refreshGrant struct {
	token    string
	clientID string
	subject  string
	scopes   []string
	current  []string
	audience []string
	authTime time.Time
	amr      []string
	expires  time.Time
}

var _ op.RefreshTokenRequest = (*refreshGrant)(nil)

func (r *refreshGrant) GetAMR() []string       { return r.amr }
func (r *refreshGrant) GetAudience() []string  { return r.audience }
func (r *refreshGrant) GetAuthTime() time.Time { return r.authTime }
func (r *refreshGrant) GetClientID() string    { return r.clientID }
func (r *refreshGrant) GetSubject() string     { return r.subject }
func (r *refreshGrant) GetScopes() []string {
	if len(r.current) > 0 {
		return r.current
	}
	return r.scopes
}
func (r *refreshGrant) SetCurrentScopes(scopes []string) { r.current = slices.Clone(scopes) }

// CreateAccessAndRefreshTokens issues an access token and a new refresh token; `current` (the refresh token
// being used, if any) stops working.
func (s *Storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	if current != "" {
		// Used up here, under the lock: of two refreshes with the same token, only the first gets tokens.
		s.mu.Lock()
		_, live := s.refreshGrants[current]
		delete(s.refreshGrants, current)
		s.mu.Unlock()
		if !live {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the refresh token was already used")
		}
	}
	accessID, expires, err := s.CreateAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	grant := &refreshGrant{
		token:    randomToken(),
		clientID: clientIDOf(req),
		subject:  req.GetSubject(),
		scopes:   slices.Clone(req.GetScopes()),
		audience: slices.Clone(req.GetAudience()),
		expires:  time.Now().Add(refreshLifetime),
	}
	if original, ok := req.(interface {
		GetAuthTime() time.Time
		GetAMR() []string
	}); ok {
		grant.authTime, grant.amr = original.GetAuthTime(), original.GetAMR()
	}
	if previous, ok := req.(*refreshGrant); ok {
		// A refreshed grant keeps the scopes of the first login, not only those asked for this time.
		grant.scopes = slices.Clone(previous.scopes)
	}
	s.mu.Lock()
	s.refreshGrants[grant.token] = grant
	s.mu.Unlock()
	return accessID, grant.token, expires, nil
}

// TokenRequestByRefreshToken finds the login a refresh token stands for; unknown, used or expired ones are refused.
func (s *Storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	grant, ok := s.refreshGrants[token]
	if !ok || time.Now().After(grant.expires) {
		delete(s.refreshGrants, token)
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token is unknown, used or expired")
	}
	if _, known := s.cfg.userBySub(grant.subject); !known {
		return nil, oidc.ErrInvalidGrant().WithDescription("the user no longer exists")
	}
	copied := *grant
	copied.current = nil
	return &copied, nil
}

func (s *Storage) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	grant, ok := s.refreshGrants[token]
	if !ok || grant.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return grant.subject, grant.token, nil
}
