package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Storage is the provider's state: configured users and clients, signing keys, issued tokens, device grants
// and authorization requests. Everything lives in memory; with --state-dir, keys and tokens are also saved.
type Storage struct {
	cfg    *Config
	issuer string
	keys   *keyRing

	mu            sync.Mutex
	tokens        map[string]*tokenRecord  // by token id (the jti of JWTs)
	devices       map[string]*deviceGrant  // by device code
	userCodes     map[string]string        // user code -> device code
	authRequests  map[string]*authRequest  // by id
	authCodes     map[string]string        // code -> auth request id
	refreshGrants map[string]*refreshGrant // by refresh token

	changed func() // called after tokens or keys changed (persistence)
}

var (
	_ op.Storage                        = (*Storage)(nil)
	_ op.DeviceAuthorizationStorage     = (*Storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*Storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*Storage)(nil)
)

func newStorage(cfg *Config, issuer string, keys *keyRing) *Storage {
	return &Storage{
		cfg:           cfg,
		issuer:        issuer,
		keys:          keys,
		tokens:        map[string]*tokenRecord{},
		devices:       map[string]*deviceGrant{},
		userCodes:     map[string]string{},
		authRequests:  map[string]*authRequest{},
		authCodes:     map[string]string{},
		refreshGrants: map[string]*refreshGrant{},
		changed:       func() {},
	}
}

var errNotFound = errors.New("not found")

// clientIDOf extracts the client of any token request type the library passes in.
func clientIDOf(req op.TokenRequest) string {
	if c, ok := req.(interface{ GetClientID() string }); ok {
		return c.GetClientID()
	}
	return ""
}

// ---- clients ----

func (s *Storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	cfg, ok := s.cfg.client(clientID)
	if !ok {
		return nil, fmt.Errorf("client %q: %w", clientID, errNotFound)
	}
	return &client{cfg: cfg, idTokenTTL: time.Duration(s.cfg.IDTokenLifetime) * time.Second}, nil
}

func (s *Storage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	cfg, ok := s.cfg.client(clientID)
	if !ok {
		return fmt.Errorf("client %q: %w", clientID, errNotFound)
	}
	if cfg.Auth != authClientSecretBasic {
		return fmt.Errorf("client %q does not authenticate with a secret", clientID)
	}
	if subtle.ConstantTimeCompare([]byte(cfg.Secret), []byte(clientSecret)) != 1 {
		return fmt.Errorf("client %q: wrong secret", clientID)
	}
	return nil
}

// GetKeyByIDAndClientID serves private_key_jwt client authentication.
func (s *Storage) GetKeyByIDAndClientID(_ context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	cfg, ok := s.cfg.client(clientID)
	if !ok || cfg.publicKey == nil {
		return nil, fmt.Errorf("client %q has no key: %w", clientID, errNotFound)
	}
	if keyID != cfg.publicKey.KeyID {
		return nil, fmt.Errorf("client %q has no key %q", clientID, keyID)
	}
	return cfg.publicKey, nil
}

func (s *Storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

// ---- keys ----

func (s *Storage) SigningKey(context.Context) (op.SigningKey, error) { return s.keys.signing(), nil }

func (s *Storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return s.keys.algorithms(), nil
}

func (s *Storage) KeySet(context.Context) ([]op.Key, error) { return s.keys.published(), nil }

// ---- tokens ----

func (s *Storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	clientID := clientIDOf(req)
	cfg, ok := s.cfg.client(clientID)
	if !ok {
		return "", time.Time{}, fmt.Errorf("token request for unknown client %q", clientID)
	}
	user, _ := s.cfg.userBySub(req.GetSubject())
	now := time.Now().UTC()
	rec := &tokenRecord{
		ID:        randomNumericID(),
		Kind:      cfg.AccessTokenType,
		Issuer:    s.issuer,
		ClientID:  clientID,
		Subject:   req.GetSubject(),
		Audience:  req.GetAudience(),
		Scopes:    slices.Clone(req.GetScopes()),
		IssuedAt:  now,
		NotBefore: now,
		Expires:   now.Add(s.cfg.accessTokenLifetime(cfg)),
	}
	if roles, present := grantedRoles(user, cfg, rec.Scopes); present {
		rec.Roles = s.cfg.rolesClaimFor(roles)
	}
	s.putToken(rec)
	return rec.ID, rec.Expires, nil
}

func (s *Storage) putToken(rec *tokenRecord) {
	s.mu.Lock()
	s.tokens[rec.ID] = rec
	s.mu.Unlock()
	s.changed()
}

func (s *Storage) token(id string) (*tokenRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.tokens[id]
	if !ok {
		return nil, false
	}
	copied := *rec
	return &copied, true
}

func (s *Storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken marks an access token revoked (or forgets a refresh token). Unknown tokens are fine (RFC 7009); a client may revoke only a
// token it is an audience of.
func (s *Storage) RevokeToken(_ context.Context, tokenID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	if grant, isRefresh := s.refreshGrants[tokenID]; isRefresh && grant.clientID == clientID {
		delete(s.refreshGrants, tokenID)
	}
	rec, ok := s.tokens[tokenID]
	if ok && rec.ClientID != clientID && !slices.Contains(rec.Audience, clientID) {
		s.mu.Unlock()
		return oidc.ErrInvalidClient().WithDescription("the token was not issued to this client")
	}
	if ok {
		rec.Revoked = true
	}
	s.mu.Unlock()
	if ok {
		s.changed()
	}
	return nil
}

// GetPrivateClaimsFromRequest adds the claims Zitadel puts into JWT access tokens beyond the registered ones.
func (s *Storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	return s.accessTokenClaims(clientIDOf(req), req.GetSubject(), req.GetScopes()), nil
}

func (s *Storage) GetPrivateClaimsFromScopes(_ context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return s.accessTokenClaims(clientID, userID, scopes), nil
}

func (s *Storage) accessTokenClaims(clientID, subject string, scopes []string) map[string]any {
	claims := map[string]any{"azp": clientID, "scope": strings.Join(scopes, " ")}
	cfg, _ := s.cfg.client(clientID)
	user, _ := s.cfg.userBySub(subject)
	if roles, present := grantedRoles(user, cfg, scopes); present {
		claims[claimRoles] = s.cfg.rolesClaimFor(roles)
	}
	return claims
}

// ---- userinfo and introspection ----

func (s *Storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // deprecated by the library; SetUserinfoFromRequest does the work
}

// SetUserinfoFromRequest fills ID token claims.
func (s *Storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	user, ok := s.cfg.userBySub(req.GetSubject())
	if !ok {
		return fmt.Errorf("user %q: %w", req.GetSubject(), errNotFound)
	}
	cfg, _ := s.cfg.client(req.GetClientID())
	s.fillUserinfo(info, user, cfg, scopes)
	return nil
}

func (s *Storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	rec, ok := s.token(tokenID)
	if !ok || rec.Subject != subject || !rec.activeAt(time.Now()) {
		return errors.New("token is not active")
	}
	user, ok := s.cfg.userBySub(rec.Subject)
	if !ok {
		return fmt.Errorf("user %q: %w", rec.Subject, errNotFound)
	}
	cfg, _ := s.cfg.client(rec.ClientID)
	s.fillUserinfo(info, user, cfg, rec.Scopes)
	return nil
}

func (s *Storage) fillUserinfo(info *oidc.UserInfo, user *UserConfig, cfg *ClientConfig, scopes []string) {
	info.Subject = user.Sub
	info.PreferredUsername = user.Username
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.GivenName = user.GivenName
		info.FamilyName = user.FamilyName
		info.Name = strings.TrimSpace(user.GivenName + " " + user.FamilyName)
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = user.Email
		info.EmailVerified = true
	}
	if roles, present := grantedRoles(user, cfg, scopes); present {
		info.AppendClaims(claimRoles, s.cfg.rolesClaimFor(roles))
	}
}

// SetIntrospectionFromToken answers RFC 7662 introspection. Like Zitadel, a token is active for the caller only
// when the caller (or its project) is in the token's audience.
func (s *Storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	rec, ok := s.token(tokenID)
	if !ok || rec.Subject != subject {
		return errors.New("unknown token")
	}
	if !rec.activeAt(time.Now()) {
		return errors.New("token expired, not yet valid or revoked")
	}
	caller, ok := s.cfg.client(clientID)
	if !ok || !callerInAudience(caller, rec.Audience) {
		return errors.New("caller is not an audience of the token")
	}
	resp.Scope = rec.Scopes
	resp.ClientID = rec.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Expiration = oidc.FromTime(rec.Expires)
	resp.IssuedAt = oidc.FromTime(rec.IssuedAt)
	resp.NotBefore = oidc.FromTime(rec.NotBefore)
	resp.Subject = rec.Subject
	resp.Audience = rec.Audience
	resp.Issuer = rec.Issuer
	resp.JWTID = rec.ID
	if user, ok := s.cfg.userBySub(rec.Subject); ok {
		resp.Username = user.Username
		resp.PreferredUsername = user.Username
		if slices.Contains(rec.Scopes, oidc.ScopeEmail) {
			resp.Email = user.Email
			resp.EmailVerified = true
		}
	}
	claims := map[string]any{}
	for k, v := range rec.Extra {
		claims[k] = v
	}
	if rec.Roles != nil {
		claims[claimRoles] = rec.Roles
	}
	if len(claims) > 0 {
		resp.Claims = claims
	}
	return nil
}

func (s *Storage) Health(context.Context) error { return nil }
