package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// mintRequest is the body of POST /test/mint: a token shaped like a real one, with any part overridden, to test
// how a validator treats good and bad tokens. Unset fields get the values a device-flow token would carry.
type mintRequest struct {
	User     string  `json:"user"`
	ClientID string  `json:"client_id"`
	Sub      *string `json:"sub"`
	Iss      *string `json:"iss"`
	Aud      any     `json:"aud"` // array of strings or a single string
	Azp      *string `json:"azp"`
	Scope    *string `json:"scope"`
	Jti      *string `json:"jti"`
	// Absolute unix seconds, or offsets in seconds from now (the *_in fields); absolute wins.
	Exp   *int64 `json:"exp"`
	Nbf   *int64 `json:"nbf"`
	Iat   *int64 `json:"iat"`
	ExpIn *int64 `json:"exp_in"`
	NbfIn *int64 `json:"nbf_in"`
	IatIn *int64 `json:"iat_in"`
	// Roles replaces the user's roles in the roles claim (the claim is then always present).
	Roles  *[]string      `json:"roles"`
	Claims map[string]any `json:"claims"` // extra or overriding claims; null removes a claim
	Omit   []string       `json:"omit"`   // claims to leave out

	// SignWith names the key: a kid of a published or retired key, "ephemeral" for a fresh key that is in no
	// JWKS (EphemeralAlg, default RS256). Default: the current key.
	SignWith     string         `json:"sign_with"`
	EphemeralAlg string         `json:"ephemeral_alg"`
	Kid          *string        `json:"kid"`       // header kid override
	Alg          string         `json:"alg"`       // header alg override; the signature still uses the key's algorithm
	Typ          *string        `json:"typ"`       // header typ override
	Header       map[string]any `json:"header"`    // extra or overriding header fields (jku, x5u, jwk, crit...); null removes
	EmbedJWK     bool           `json:"embed_jwk"` // put the signing key's public JWK into the header
	// Signature: "valid" (default), "none" (empty signature, alg "none" unless overridden), "corrupt" (a valid
	// signature with one bit flipped) or "hmac_public_key" (HMAC keyed with the public key PEM: the classic
	// algorithm confusion attack; header alg HS256 unless overridden).
	Signature string `json:"signature"`
	// Opaque registers an opaque token carrying these claims, for introspection, instead of signing a JWT.
	Opaque bool `json:"opaque"`
}

type mintResponse struct {
	AccessToken string         `json:"access_token"`
	TokenType   string         `json:"token_type"`
	Kid         string         `json:"kid,omitempty"`
	Alg         string         `json:"alg,omitempty"`
	Header      map[string]any `json:"header,omitempty"`
	Claims      map[string]any `json:"claims"`
}

var errMint = errors.New("mint")

func mintError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMint, fmt.Sprintf(format, args...))
}

func (s *Storage) mint(req *mintRequest, crypt op.Crypto) (*mintResponse, error) {
	claims, err := s.mintClaims(req)
	if err != nil {
		return nil, err
	}
	if req.Opaque {
		return s.mintOpaque(claims, crypt)
	}
	return s.mintJWT(req, claims)
}

func (s *Storage) mintClaims(req *mintRequest) (map[string]any, error) {
	var user *UserConfig
	if req.User != "" {
		u, ok := s.cfg.user(req.User)
		if !ok {
			return nil, mintError("unknown user %q", req.User)
		}
		user = u
	} else if len(s.cfg.Users) > 0 {
		user = &s.cfg.Users[0]
	}
	clientID := req.ClientID
	if clientID == "" {
		if i := slices.IndexFunc(s.cfg.Clients, func(c ClientConfig) bool { return c.Type == clientPublic }); i >= 0 {
			clientID = s.cfg.Clients[i].ClientID
		}
	}
	cfg, _ := s.cfg.client(clientID)

	scope := "openid"
	if req.Scope != nil {
		scope = *req.Scope
	}
	scopes := strings.Fields(scope)
	now := time.Now().Unix()
	at := func(abs, offset *int64, def int64) int64 {
		switch {
		case abs != nil:
			return *abs
		case offset != nil:
			return now + *offset
		default:
			return def
		}
	}
	claims := map[string]any{
		"iss":       s.issuer,
		"aud":       audienceFor(cfg, clientID, scopes),
		"azp":       clientID,
		"client_id": clientID,
		"scope":     scope,
		"jti":       randomNumericID(),
		"iat":       at(req.Iat, req.IatIn, now),
		"nbf":       at(req.Nbf, req.NbfIn, now),
		"exp":       at(req.Exp, req.ExpIn, now+int64(s.cfg.accessTokenLifetime(cfg).Seconds())),
	}
	if user != nil {
		claims["sub"] = user.Sub
	}
	if req.Roles != nil {
		claims[claimRoles] = s.cfg.rolesClaimFor(*req.Roles)
	} else if roles, present := grantedRoles(user, cfg, scopes); present {
		claims[claimRoles] = s.cfg.rolesClaimFor(roles)
	}
	setString := func(name string, v *string) {
		if v != nil {
			claims[name] = *v
		}
	}
	setString("sub", req.Sub)
	setString("iss", req.Iss)
	setString("azp", req.Azp)
	setString("jti", req.Jti)
	if req.Aud != nil {
		claims["aud"] = req.Aud
	}
	for k, v := range req.Claims {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	for _, k := range req.Omit {
		delete(claims, k)
	}
	return claims, nil
}

func (s *Storage) mintJWT(req *mintRequest, claims map[string]any) (*mintResponse, error) {
	key, err := s.mintKey(req)
	if err != nil {
		return nil, err
	}
	sigMode := req.Signature
	if sigMode == "" {
		sigMode = "valid"
	}
	header := map[string]any{"alg": string(key.alg), "typ": "JWT", "kid": key.id}
	switch sigMode {
	case "valid", "corrupt":
	case "none":
		header["alg"] = "none"
	case "hmac_public_key":
		header["alg"] = "HS256"
	default:
		return nil, mintError("signature must be valid, none, corrupt or hmac_public_key, not %q", sigMode)
	}
	if req.Alg != "" {
		header["alg"] = req.Alg
	}
	if req.Typ != nil {
		header["typ"] = *req.Typ
	}
	if req.Kid != nil {
		header["kid"] = *req.Kid
	}
	if req.EmbedJWK {
		jwk, err := publicJWK(key)
		if err != nil {
			return nil, err
		}
		header["jwk"] = jwk
	}
	for k, v := range req.Header {
		if v == nil {
			delete(header, k)
		} else {
			header[k] = v
		}
	}
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return nil, mintError("header: %v", err)
	}
	payloadJSON, err := json.Marshal(claims)
	if err != nil {
		return nil, mintError("claims: %v", err)
	}
	b64 := base64.RawURLEncoding
	signingInput := b64.EncodeToString(headerJSON) + "." + b64.EncodeToString(payloadJSON)

	var sig []byte
	switch sigMode {
	case "valid", "corrupt":
		sig, err = signWithKey(key, []byte(signingInput))
		if err != nil {
			return nil, err
		}
		if sigMode == "corrupt" {
			sig[len(sig)/2] ^= 0x01
		}
	case "hmac_public_key":
		alg, _ := header["alg"].(string)
		sig, err = hmacWithPublicKey(key, alg, []byte(signingInput))
		if err != nil {
			return nil, err
		}
	}
	token := signingInput + "." + b64.EncodeToString(sig)

	// Remember the token, so introspection and userinfo treat it like an issued one.
	if rec := recordFromClaims(claims, tokenJWT, s.issuer); rec != nil {
		s.putToken(rec)
	}
	kid, _ := header["kid"].(string)
	alg, _ := header["alg"].(string)
	return &mintResponse{AccessToken: token, TokenType: "Bearer", Kid: kid, Alg: alg, Header: header, Claims: claims}, nil
}

func (s *Storage) mintOpaque(claims map[string]any, crypt op.Crypto) (*mintResponse, error) {
	rec := recordFromClaims(claims, tokenOpaque, s.issuer)
	if rec == nil {
		return nil, mintError("an opaque token needs a string jti")
	}
	if strings.Contains(rec.Subject, ":") || strings.Contains(rec.ID, ":") {
		return nil, mintError("sub and jti of an opaque token must not contain ':'")
	}
	token, err := crypt.Encrypt(rec.ID + ":" + rec.Subject)
	if err != nil {
		return nil, fmt.Errorf("encrypting the opaque token: %w", err)
	}
	s.putToken(rec)
	return &mintResponse{AccessToken: token, TokenType: "Bearer", Claims: claims}, nil
}

// mintKey picks the signing key of a minted JWT.
func (s *Storage) mintKey(req *mintRequest) (*signingKey, error) {
	switch req.SignWith {
	case "":
		return s.keys.signing(), nil
	case "ephemeral":
		alg := jose.SignatureAlgorithm(req.EphemeralAlg)
		if alg == "" {
			alg = jose.RS256
		}
		return newSigningKey(alg)
	default:
		k, ok := s.keys.find(req.SignWith)
		if !ok {
			return nil, mintError("no key with kid %q (published or retired)", req.SignWith)
		}
		return k, nil
	}
}

// recordFromClaims turns minted claims into a token record; nil when there is no string jti to key it by.
func recordFromClaims(claims map[string]any, kind, issuer string) *tokenRecord {
	id, _ := claims["jti"].(string)
	if id == "" {
		return nil
	}
	rec := &tokenRecord{ID: id, Kind: kind, Issuer: issuer, Extra: map[string]any{}}
	standard := map[string]bool{"iss": true, "sub": true, "aud": true, "client_id": true, "scope": true,
		"jti": true, "iat": true, "nbf": true, "exp": true, claimRoles: true}
	for k, v := range claims {
		if !standard[k] {
			rec.Extra[k] = v
		}
	}
	if iss, ok := claims["iss"].(string); ok {
		rec.Issuer = iss
	}
	rec.Subject, _ = claims["sub"].(string)
	rec.ClientID, _ = claims["client_id"].(string)
	switch aud := claims["aud"].(type) {
	case string:
		rec.Audience = []string{aud}
	case []string:
		rec.Audience = aud
	case []any:
		for _, a := range aud {
			if s, ok := a.(string); ok {
				rec.Audience = append(rec.Audience, s)
			}
		}
	}
	if scope, ok := claims["scope"].(string); ok {
		rec.Scopes = strings.Fields(scope)
	}
	rec.IssuedAt = unixClaim(claims["iat"], time.Now())
	rec.NotBefore = unixClaim(claims["nbf"], time.Time{})
	// A token without exp never expires, which is what such a token claims.
	rec.Expires = unixClaim(claims["exp"], time.Now().Add(100*365*24*time.Hour))
	if roles, ok := claims[claimRoles].(rolesClaim); ok {
		rec.Roles = roles
	} else if raw, ok := claims[claimRoles]; ok {
		rec.Extra[claimRoles] = raw
	}
	return rec
}

func unixClaim(v any, def time.Time) time.Time {
	switch n := v.(type) {
	case int64:
		return time.Unix(n, 0).UTC()
	case float64:
		return time.Unix(int64(n), 0).UTC()
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return time.Unix(i, 0).UTC()
		}
		if f, err := n.Float64(); err == nil {
			return time.Unix(int64(f), 0).UTC()
		}
	}
	return def
}

// signWithKey makes a JWS signature with the key's own algorithm.
func signWithKey(k *signingKey, input []byte) ([]byte, error) {
	switch k.alg {
	case jose.EdDSA:
		priv, ok := k.private.(ed25519.PrivateKey)
		if !ok {
			return nil, mintError("key %s is not an Ed25519 key", k.id)
		}
		return ed25519.Sign(priv, input), nil
	}
	h, err := hashOf(string(k.alg))
	if err != nil {
		return nil, err
	}
	hasher := h.New()
	hasher.Write(input)
	digest := hasher.Sum(nil)
	switch priv := k.private.(type) {
	case *rsa.PrivateKey:
		if strings.HasPrefix(string(k.alg), "PS") {
			return rsa.SignPSS(rand.Reader, priv, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, priv, h, digest)
	case *ecdsa.PrivateKey:
		r, sv, err := ecdsa.Sign(rand.Reader, priv, digest)
		if err != nil {
			return nil, err
		}
		size := (priv.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		sv.FillBytes(out[size:])
		return out, nil
	default:
		return nil, mintError("key %s has an unsupported type", k.id)
	}
}

func hashOf(alg string) (crypto.Hash, error) {
	switch {
	case strings.HasSuffix(alg, "256"):
		return crypto.SHA256, nil
	case strings.HasSuffix(alg, "384"):
		return crypto.SHA384, nil
	case strings.HasSuffix(alg, "512"):
		return crypto.SHA512, nil
	}
	return 0, mintError("no hash for algorithm %q", alg)
}

func hmacWithPublicKey(k *signingKey, alg string, input []byte) ([]byte, error) {
	h, err := hashOf(alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(k.private.Public())
	if err != nil {
		return nil, err
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	mac := hmac.New(h.New, secret)
	mac.Write(input)
	return mac.Sum(nil), nil
}

func publicJWK(k *signingKey) (map[string]any, error) {
	raw, err := json.Marshal(jose.JSONWebKey{Key: k.private.Public(), KeyID: k.id, Algorithm: string(k.alg), Use: "sig"})
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}
