package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// signingKey is one key of the provider. It serves both as op.SigningKey (private side) and, through
// publicKey, as op.Key in the JWKS.
type signingKey struct {
	id      string
	alg     jose.SignatureAlgorithm
	private crypto.Signer
	created time.Time
}

func (k *signingKey) ID() string                                  { return k.id }
func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.private }

// publicKey is the JWKS view of a signing key.
type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return p.k.alg }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.private.Public() }

// supportedAlgs are the algorithms Zitadel can sign with; RS256 is its default.
var supportedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

func newSigningKey(alg jose.SignatureAlgorithm) (*signingKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q (supported: %v)", alg, supportedAlgs)
	}
	if err != nil {
		return nil, fmt.Errorf("generating %s key: %w", alg, err)
	}
	return &signingKey{id: randomNumericID(), alg: alg, private: priv, created: time.Now().UTC()}, nil
}

// keyRing holds the current signing key, the keys published in the JWKS (current first) and retired keys, which
// are no longer published but can still sign minted test tokens.
type keyRing struct {
	mu      sync.RWMutex
	current *signingKey
	listed  []*signingKey
	retired []*signingKey
}

func newKeyRing(alg jose.SignatureAlgorithm) (*keyRing, error) {
	k, err := newSigningKey(alg)
	if err != nil {
		return nil, err
	}
	return &keyRing{current: k, listed: []*signingKey{k}}, nil
}

func (r *keyRing) signing() *signingKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// published returns the JWKS keys as op.Key values.
func (r *keyRing) published() []op.Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	keys := make([]op.Key, len(r.listed))
	for i, k := range r.listed {
		keys[i] = publicKey{k}
	}
	return keys
}

func (r *keyRing) algorithms() []jose.SignatureAlgorithm {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var algs []jose.SignatureAlgorithm
	for _, k := range r.listed {
		if !slices.Contains(algs, k.alg) {
			algs = append(algs, k.alg)
		}
	}
	return algs
}

// rotate makes a new key current. The previous keys stay in the JWKS unless retireOld is set.
func (r *keyRing) rotate(alg jose.SignatureAlgorithm, retireOld bool) (*signingKey, error) {
	k, err := newSigningKey(alg)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current = k
	if retireOld {
		r.retired = append(r.retired, r.listed...)
		r.listed = []*signingKey{k}
	} else {
		r.listed = append([]*signingKey{k}, r.listed...)
	}
	return k, nil
}

// find returns a known key (published or retired) by kid.
func (r *keyRing) find(kid string) (*signingKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range slices.Concat(r.listed, r.retired) {
		if k.id == kid {
			return k, true
		}
	}
	return nil, false
}

type keyInfo struct {
	Kid     string `json:"kid"`
	Alg     string `json:"alg"`
	Status  string `json:"status"`
	Created int64  `json:"created"`
}

func (r *keyRing) describe() []keyInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []keyInfo
	for _, k := range r.listed {
		status := "published"
		if k == r.current {
			status = "current"
		}
		out = append(out, keyInfo{k.id, string(k.alg), status, k.created.Unix()})
	}
	for _, k := range r.retired {
		out = append(out, keyInfo{k.id, string(k.alg), "retired", k.created.Unix()})
	}
	return out
}

// storedKey is the persisted form of a signing key (state dir).
type storedKey struct {
	ID      string    `json:"id"`
	Alg     string    `json:"alg"`
	PEM     string    `json:"pem"`
	Created time.Time `json:"created"`
	Status  string    `json:"status"`
}

func (r *keyRing) export() ([]storedKey, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []storedKey
	add := func(k *signingKey, status string) error {
		der, err := x509.MarshalPKCS8PrivateKey(k.private)
		if err != nil {
			return err
		}
		pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		out = append(out, storedKey{k.id, string(k.alg), pemText, k.created, status})
		return nil
	}
	for _, k := range r.listed {
		status := "published"
		if k == r.current {
			status = "current"
		}
		if err := add(k, status); err != nil {
			return nil, err
		}
	}
	for _, k := range r.retired {
		if err := add(k, "retired"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func importKeyRing(stored []storedKey) (*keyRing, error) {
	r := &keyRing{}
	for _, s := range stored {
		block, _ := pem.Decode([]byte(s.PEM))
		if block == nil {
			return nil, fmt.Errorf("key %s: no PEM block", s.ID)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", s.ID, err)
		}
		signer, ok := parsed.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key %s: not a signing key", s.ID)
		}
		k := &signingKey{id: s.ID, alg: jose.SignatureAlgorithm(s.Alg), private: signer, created: s.Created}
		switch s.Status {
		case "current":
			r.current = k
			r.listed = append(r.listed, k)
		case "published":
			r.listed = append(r.listed, k)
		default:
			r.retired = append(r.retired, k)
		}
	}
	if r.current == nil {
		return nil, fmt.Errorf("no current key in the stored key ring")
	}
	return r, nil
}

// randomNumericID returns an 18-digit id like Zitadel's resource ids.
func randomNumericID() string {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000_000_000_000))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return fmt.Sprintf("3%017d", n)
}

// randomToken returns 32 random bytes, base64url: an opaque secret such as a refresh token.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
