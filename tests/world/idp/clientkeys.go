package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Keys of private_key_jwt clients: configured public keys, or key pairs the IdP generates and hands out as
// Zitadel key files.

// parseClientKey reads the public key of a private_key_jwt client from a JWK or a PEM public key plus key_id.
func parseClientKey(c *ClientConfig) (*jose.JSONWebKey, error) {
	key := &jose.JSONWebKey{}
	switch {
	case len(c.JWK) > 0:
		if err := key.UnmarshalJSON(c.JWK); err != nil {
			return nil, fmt.Errorf("jwk: %w", err)
		}
		if !key.IsPublic() {
			pub := key.Public()
			key = &pub
		}
		if key.KeyID == "" {
			key.KeyID = c.KeyID
		}
	case c.PublicKeyPEM != "":
		block, _ := pem.Decode([]byte(c.PublicKeyPEM))
		if block == nil {
			return nil, errors.New("public_key_pem: no PEM block")
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_key_pem: %w", err)
		}
		key.Key = pub
		key.KeyID = c.KeyID
	default:
		return nil, errors.New("private_key_jwt needs jwk or public_key_pem")
	}
	if key.KeyID == "" {
		return nil, errors.New("private_key_jwt needs a key id (key_id or kid in the jwk)")
	}
	c.KeyID = key.KeyID
	key.Use = "sig"
	return key, nil
}

// generateClientKeys gives every private_key_jwt client without a configured key an RSA key, reusing the keys
// saved in the state dir so key files handed out before a restart stay valid.
func (c *Config) generateClientKeys(saved map[string]storedClientKey) error {
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.Auth != authPrivateKeyJWT || cl.publicKey != nil {
			continue
		}
		var priv *rsa.PrivateKey
		if s, ok := saved[cl.ClientID]; ok {
			block, _ := pem.Decode([]byte(s.PEM))
			if block == nil {
				return fmt.Errorf("saved key of client %s: no PEM block", cl.ClientID)
			}
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return fmt.Errorf("saved key of client %s: %w", cl.ClientID, err)
			}
			priv, cl.KeyID = k, s.KeyID
		} else {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return fmt.Errorf("generating the key of client %s: %w", cl.ClientID, err)
			}
			priv = k
			if cl.KeyID == "" {
				cl.KeyID = randomNumericID()
			}
		}
		cl.generatedKey = priv
		cl.publicKey = &jose.JSONWebKey{Key: priv.Public(), KeyID: cl.KeyID, Algorithm: "RS256", Use: "sig"}
	}
	return nil
}

// storedClientKey is a generated client key as kept in the state dir.
type storedClientKey struct {
	KeyID string `json:"key_id"`
	PEM   string `json:"pem"`
}

func (c *Config) exportClientKeys() map[string]storedClientKey {
	out := map[string]storedClientKey{}
	for _, cl := range c.Clients {
		if cl.generatedKey != nil {
			out[cl.ClientID] = storedClientKey{cl.KeyID, pkcs1PEM(cl.generatedKey)}
		}
	}
	return out
}

func pkcs1PEM(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
}

// zitadelKeyFile is the JSON key file Zitadel hands out for an application key.
type zitadelKeyFile struct {
	Type     string `json:"type"`
	KeyID    string `json:"keyId"`
	Key      string `json:"key"`
	AppID    string `json:"appId"`
	ClientID string `json:"clientId"`
}

func (c *ClientConfig) keyFile() (*zitadelKeyFile, bool) {
	if c.generatedKey == nil {
		return nil, false
	}
	return &zitadelKeyFile{"application", c.KeyID, pkcs1PEM(c.generatedKey), numericID("app:" + c.ClientID), c.ClientID}, true
}
