package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// persistedState is what --state-dir keeps across restarts: the signing keys, the key that encrypts opaque
// tokens, and the issued tokens, so tokens stay valid (and keys stay the same) when the IdP is restarted.
type persistedState struct {
	CryptoKey  string                     `json:"crypto_key"`
	Keys       []storedKey                `json:"keys"`
	Tokens     []*tokenRecord             `json:"tokens"`
	ClientKeys map[string]storedClientKey `json:"client_keys"`
}

const stateFile = "idp-state.json"

// bootedState is what the IdP starts from: saved state, or fresh keys.
type bootedState struct {
	keys       *keyRing
	cryptoKey  [32]byte
	tokens     []*tokenRecord
	clientKeys map[string]storedClientKey
}

// bootState loads the state from dir, or makes fresh keys when there is no dir or no saved state yet.
func bootState(dir string) (*bootedState, error) {
	if dir != "" {
		raw, err := os.ReadFile(filepath.Join(dir, stateFile))
		switch {
		case err == nil:
			var st persistedState
			if err := json.Unmarshal(raw, &st); err != nil {
				return nil, fmt.Errorf("parsing saved state: %w", err)
			}
			keys, err := importKeyRing(st.Keys)
			if err != nil {
				return nil, err
			}
			booted := &bootedState{keys: keys, tokens: st.Tokens, clientKeys: st.ClientKeys}
			ck, err := base64.StdEncoding.DecodeString(st.CryptoKey)
			if err != nil || len(ck) != len(booted.cryptoKey) {
				return nil, errors.New("saved state has a bad crypto_key")
			}
			copy(booted.cryptoKey[:], ck)
			slog.Info("state restored", "dir", dir, "keys", len(st.Keys), "tokens", len(st.Tokens))
			return booted, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading saved state: %w", err)
		}
	}
	keys, err := newKeyRing(jose.RS256)
	if err != nil {
		return nil, err
	}
	booted := &bootedState{keys: keys}
	_, _ = rand.Read(booted.cryptoKey[:])
	return booted, nil
}

// stateSaver writes the state after changes, at most every 200 ms, and once more at shutdown.
type stateSaver struct {
	dir       string
	storage   *Storage
	cryptoKey [32]byte
	dirty     chan struct{}
	done      chan struct{}
}

func newStateSaver(dir string, storage *Storage, cryptoKey [32]byte) *stateSaver {
	return &stateSaver{dir: dir, storage: storage, cryptoKey: cryptoKey,
		dirty: make(chan struct{}, 1), done: make(chan struct{})}
}

// markDirty never blocks: one pending save covers any number of changes.
func (s *stateSaver) markDirty() {
	if s.dir == "" {
		return
	}
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *stateSaver) run(stop <-chan struct{}) {
	defer close(s.done)
	if s.dir == "" {
		<-stop
		return
	}
	for {
		select {
		case <-stop:
			s.save()
			return
		case <-s.dirty:
			time.Sleep(200 * time.Millisecond)
			s.save()
		}
	}
}

func (s *stateSaver) save() {
	if err := s.write(); err != nil {
		slog.Error("saving state", "dir", s.dir, "err", err)
	}
}

func (s *stateSaver) write() error {
	keys, err := s.storage.keys.export()
	if err != nil {
		return err
	}
	s.storage.mu.Lock()
	tokens := make([]*tokenRecord, 0, len(s.storage.tokens))
	for _, t := range s.storage.tokens {
		copied := *t
		tokens = append(tokens, &copied)
	}
	s.storage.mu.Unlock()
	raw, err := json.Marshal(persistedState{
		CryptoKey:  base64.StdEncoding.EncodeToString(s.cryptoKey[:]),
		Keys:       keys,
		Tokens:     tokens,
		ClientKeys: s.storage.cfg.exportClientKeys(),
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, stateFile))
}
