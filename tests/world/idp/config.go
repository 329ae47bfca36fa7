package main

import (
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Config is the JSON file given with --config. Every field has a default, so "{}" is a valid configuration.
type Config struct {
	Org                 OrgConfig      `json:"org"`
	Project             ProjectConfig  `json:"project"`
	AccessTokenLifetime int            `json:"access_token_lifetime_seconds"`
	IDTokenLifetime     int            `json:"id_token_lifetime_seconds"`
	Device              DeviceConfig   `json:"device"`
	Users               []UserConfig   `json:"users"`
	Clients             []ClientConfig `json:"clients"`
}

type OrgConfig struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

type ProjectConfig struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type DeviceConfig struct {
	LifetimeSeconds int `json:"lifetime_seconds"`
	IntervalSeconds int `json:"interval_seconds"`
}

type UserConfig struct {
	Username   string   `json:"username"`
	Sub        string   `json:"sub"`
	Email      string   `json:"email"`
	GivenName  string   `json:"given_name"`
	FamilyName string   `json:"family_name"`
	Roles      []string `json:"roles"`
}

// ClientConfig is one application of the project. Type "public" (native app, no secret) or "confidential"
// (a web or API app that authenticates with a secret or a private key JWT).
type ClientConfig struct {
	ClientID        string          `json:"client_id"`
	Type            string          `json:"type"`
	Auth            string          `json:"auth"`
	Secret          string          `json:"secret"`
	KeyID           string          `json:"key_id"`
	PublicKeyPEM    string          `json:"public_key_pem"`
	JWK             json.RawMessage `json:"jwk"`
	AccessTokenType string          `json:"access_token_type"`
	GrantTypes      []string        `json:"grant_types"`
	RedirectURIs    []string        `json:"redirect_uris"`
	// ProjectID lets a client belong to another project than the configured one (its id then goes into aud and
	// decides whether introspection by this client sees a token as active).
	ProjectID string `json:"project_id"`
	// AccessTokenRoleAssertion puts the project roles into every access token of this client (Zitadel's
	// "user roles inside access token" application setting), even without the roles scope.
	AccessTokenRoleAssertion bool `json:"access_token_role_assertion"`
	AccessTokenLifetime      int  `json:"access_token_lifetime_seconds"`

	publicKey *jose.JSONWebKey
	// generatedKey is set when a private_key_jwt client was configured without a key: like Zitadel, the IdP
	// then makes the key pair and hands out the private key as a key file (GET /test/clients/{id}/key).
	generatedKey *rsa.PrivateKey
}

const (
	clientPublic       = "public"
	clientConfidential = "confidential"

	authNone              = "none"
	authClientSecretBasic = "client_secret_basic"
	authPrivateKeyJWT     = "private_key_jwt"

	tokenJWT    = "jwt"
	tokenOpaque = "opaque"
)

func loadConfig(path string) (*Config, error) {
	cfg := &Config{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(cfg); err != nil {
			return nil, fmt.Errorf("parsing config %s: %w", path, err)
		}
	}
	if err := cfg.applyDefaults(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func (c *Config) applyDefaults() error {
	if c.Org.ID == "" {
		c.Org.ID = "300000000000000001"
	}
	if c.Org.Domain == "" {
		c.Org.Domain = "pgrator.test"
	}
	if c.Project.ID == "" {
		c.Project.ID = "300000000000000010"
	}
	if c.Project.Name == "" {
		c.Project.Name = "pgrator"
	}
	if c.AccessTokenLifetime <= 0 {
		c.AccessTokenLifetime = 12 * 3600 // Zitadel's default access token lifetime
	}
	if c.IDTokenLifetime <= 0 {
		c.IDTokenLifetime = 12 * 3600
	}
	if c.Device.LifetimeSeconds <= 0 {
		c.Device.LifetimeSeconds = 300
	}
	if c.Device.IntervalSeconds <= 0 {
		c.Device.IntervalSeconds = 1
	}
	if c.Users == nil {
		c.Users = []UserConfig{
			{Username: "alice", Roles: []string{"team-a"}},
			{Username: "bob", Roles: []string{}},
		}
	}
	if c.Clients == nil {
		c.Clients = []ClientConfig{
			{ClientID: "psql", Type: clientPublic, AccessTokenType: tokenJWT},
			{ClientID: "psql-opaque", Type: clientPublic, AccessTokenType: tokenOpaque},
			{ClientID: "pgrator-validator", Type: clientConfidential, Auth: authClientSecretBasic, Secret: "pgrator-validator-secret"},
		}
	}
	seenUsers := map[string]bool{}
	for i := range c.Users {
		u := &c.Users[i]
		if u.Username == "" {
			return fmt.Errorf("users[%d]: username is required", i)
		}
		if seenUsers[u.Username] {
			return fmt.Errorf("users[%d]: duplicate username %q", i, u.Username)
		}
		seenUsers[u.Username] = true
		if u.Sub == "" {
			u.Sub = numericID(u.Username)
		}
		if strings.Contains(u.Sub, ":") {
			return fmt.Errorf("user %s: sub must not contain ':'", u.Username)
		}
		if u.Email == "" {
			u.Email = u.Username + "@" + c.Org.Domain
		}
		if u.Roles == nil {
			u.Roles = []string{}
		}
	}
	seenClients := map[string]bool{}
	for i := range c.Clients {
		if err := c.Clients[i].applyDefaults(c.Project.ID); err != nil {
			return fmt.Errorf("clients[%d] (%s): %w", i, c.Clients[i].ClientID, err)
		}
		if seenClients[c.Clients[i].ClientID] {
			return fmt.Errorf("clients[%d]: duplicate client_id %q", i, c.Clients[i].ClientID)
		}
		seenClients[c.Clients[i].ClientID] = true
	}
	return nil
}

func (c *ClientConfig) applyDefaults(projectID string) error {
	if c.ClientID == "" {
		return errors.New("client_id is required")
	}
	if strings.Contains(c.ClientID, ":") {
		return errors.New("client_id must not contain ':'")
	}
	switch c.Type {
	case "":
		c.Type = clientPublic
	case clientPublic, clientConfidential:
	default:
		return fmt.Errorf("type must be %q or %q, not %q", clientPublic, clientConfidential, c.Type)
	}
	if c.Auth == "" {
		if c.Type == clientPublic {
			c.Auth = authNone
		} else {
			c.Auth = authClientSecretBasic
		}
	}
	switch {
	case c.Type == clientPublic && c.Auth != authNone:
		return fmt.Errorf("a public client authenticates with %q, not %q", authNone, c.Auth)
	case c.Type == clientConfidential && c.Auth == authClientSecretBasic && c.Secret == "":
		return errors.New("client_secret_basic needs a secret")
	case c.Type == clientConfidential && c.Auth == authPrivateKeyJWT:
		if len(c.JWK) == 0 && c.PublicKeyPEM == "" {
			break // a key is generated at startup (generateClientKeys)
		}
		key, err := parseClientKey(c)
		if err != nil {
			return err
		}
		c.publicKey = key
	case c.Type == clientConfidential && c.Auth != authClientSecretBasic:
		return fmt.Errorf("auth must be %q or %q, not %q", authClientSecretBasic, authPrivateKeyJWT, c.Auth)
	}
	if c.AccessTokenType == "" {
		c.AccessTokenType = tokenOpaque // Zitadel's default for applications
	}
	if c.AccessTokenType != tokenJWT && c.AccessTokenType != tokenOpaque {
		return fmt.Errorf("access_token_type must be %q or %q", tokenJWT, tokenOpaque)
	}
	if c.GrantTypes == nil {
		if c.Type == clientPublic {
			c.GrantTypes = []string{string(oidc.GrantTypeDeviceCode), string(oidc.GrantTypeCode)}
		} else {
			c.GrantTypes = []string{}
		}
	}
	for _, g := range c.GrantTypes {
		if g != string(oidc.GrantTypeDeviceCode) && g != string(oidc.GrantTypeCode) && g != string(oidc.GrantTypeRefreshToken) {
			return fmt.Errorf("grant type %q is not supported by the test IdP (only device_code, authorization_code and refresh_token)", g)
		}
	}
	if c.ProjectID == "" {
		c.ProjectID = projectID
	}
	return nil
}

func (c *Config) user(username string) (*UserConfig, bool) {
	i := slices.IndexFunc(c.Users, func(u UserConfig) bool { return u.Username == username })
	if i < 0 {
		return nil, false
	}
	return &c.Users[i], true
}

func (c *Config) userBySub(sub string) (*UserConfig, bool) {
	i := slices.IndexFunc(c.Users, func(u UserConfig) bool { return u.Sub == sub })
	if i < 0 {
		return nil, false
	}
	return &c.Users[i], true
}

func (c *Config) client(id string) (*ClientConfig, bool) {
	i := slices.IndexFunc(c.Clients, func(cl ClientConfig) bool { return cl.ClientID == id })
	if i < 0 {
		return nil, false
	}
	return &c.Clients[i], true
}

func (c *Config) deviceLifetime() time.Duration {
	return time.Duration(c.Device.LifetimeSeconds) * time.Second
}

func (c *Config) accessTokenLifetime(client *ClientConfig) time.Duration {
	if client != nil && client.AccessTokenLifetime > 0 {
		return time.Duration(client.AccessTokenLifetime) * time.Second
	}
	return time.Duration(c.AccessTokenLifetime) * time.Second
}

// numericID derives a stable 18-digit id from a name, shaped like Zitadel's resource ids.
func numericID(name string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return fmt.Sprintf("3%017d", h.Sum64()%100_000_000_000_000_000)
}
