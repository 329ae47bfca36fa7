package main

import (
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Zitadel's endpoint paths.
const (
	authorizePath  = "oauth/v2/authorize"
	tokenPath      = "oauth/v2/token"
	introspectPath = "oauth/v2/introspect"
	keysPath       = "/oauth/v2/keys"
	devicePathAPI  = "oauth/v2/device_authorization"
	revokePath     = "oauth/v2/revoke"
	userinfoPath   = "oidc/v1/userinfo"
	endSessionPath = "oidc/v1/end_session"

	discoveryPath     = "/.well-known/openid-configuration"
	oauthMetadataPath = "/.well-known/oauth-authorization-server"
)

func newProvider(cfg *Config, storage *Storage, issuer string, crypt op.Crypto) (*op.Provider, error) {
	config := &op.Config{
		CodeMethodS256:          true,
		AuthMethodPrivateKeyJWT: true,
		GrantTypeRefreshToken:   true,
		SupportedScopes: []string{
			oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopePhone, oidc.ScopeAddress,
			oidc.ScopeOfflineAccess, scopeAllProjectRoles,
		},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     cfg.deviceLifetime(),
			PollInterval: time.Duration(cfg.Device.IntervalSeconds) * time.Second,
			UserFormPath: devicePath,
			UserCode:     op.UserCodeBase20, // 8 characters with a dash, like Zitadel
		},
	}
	return op.NewProvider(config, storage, op.StaticIssuer(issuer),
		op.WithCustomEndpoints(
			op.NewEndpoint(authorizePath), op.NewEndpoint(tokenPath), op.NewEndpoint(userinfoPath),
			op.NewEndpoint(revokePath), op.NewEndpoint(endSessionPath), op.NewEndpoint(keysPath),
		),
		op.WithCustomIntrospectionEndpoint(op.NewEndpoint(introspectPath)),
		op.WithCustomDeviceAuthorizationEndpoint(op.NewEndpoint(devicePathAPI)),
		op.WithCrypto(crypt),
		// JWT access tokens signed after a rotation to ES256 or EdDSA must still introspect.
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(
			"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")),
	)
}

// routes puts the pages and the test API in front of the provider, which serves everything else.
func routes(storage *Storage, provider *op.Provider, api *testAPI, issuer string) http.Handler {
	mux := http.NewServeMux()
	api.register(mux)
	mux.Handle(devicePath, deviceHandler(storage))
	callback := op.AuthCallbackURL(provider)
	mux.Handle(loginPath, loginHandler(storage, func(r *http.Request, id string) string {
		return callback(op.ContextWithIssuer(r.Context(), issuer), id)
	}))
	// RFC 8414 metadata: the same document as OpenID discovery.
	mux.HandleFunc(oauthMetadataPath, func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = discoveryPath
		r2.URL.RawPath = ""
		provider.ServeHTTP(w, r2)
	})
	mux.Handle("/", provider)
	return mux
}
