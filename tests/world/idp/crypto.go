package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// opaqueCrypto encrypts "<token id>:<subject>" into an opaque access token, like Zitadel: one base64url string
// without dots, so it cannot be mistaken for a JWT (the library's default AES-GCM crypto makes a five-part JWE).
// AES-256-GCM; the token is nonce || ciphertext.
type opaqueCrypto struct {
	aead cipher.AEAD
}

var _ op.Crypto = (*opaqueCrypto)(nil)

func newOpaqueCrypto(key [32]byte) (*opaqueCrypto, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("opaque token cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("opaque token cipher: %w", err)
	}
	return &opaqueCrypto{aead: aead}, nil
}

func (c *opaqueCrypto) Encrypt(plain string) (string, error) {
	nonce := make([]byte, c.aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := c.aead.Seal(nonce, nonce, []byte(plain), nil)
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

var errNotOpaqueToken = errors.New("not an opaque token of this IdP")

func (c *opaqueCrypto) Decrypt(token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < c.aead.NonceSize() {
		return "", errNotOpaqueToken
	}
	n := c.aead.NonceSize()
	plain, err := c.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", errNotOpaqueToken
	}
	return string(plain), nil
}
