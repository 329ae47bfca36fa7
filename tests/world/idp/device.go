package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// deviceGrant is one pending or finished Device Authorization request (RFC 8628).
type deviceGrant struct {
	clientID   string
	deviceCode string
	userCode   string
	scopes     []string
	audience   []string
	expires    time.Time
	done       bool
	denied     bool
	subject    string
	authTime   time.Time
	created    time.Time
}

// StoreDeviceAuthorization is called by the device authorization endpoint with fresh codes.
func (s *Storage) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	cfg, ok := s.cfg.client(clientID)
	if !ok {
		return fmt.Errorf("client %q: %w", clientID, errNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeExpiredDevicesLocked(time.Now())
	if _, taken := s.userCodes[userCode]; taken {
		return op.ErrDuplicateUserCode
	}
	s.devices[deviceCode] = &deviceGrant{
		clientID:   clientID,
		deviceCode: deviceCode,
		userCode:   userCode,
		scopes:     slices.Clone(scopes),
		audience:   audienceFor(cfg, clientID, scopes),
		expires:    expires,
		created:    time.Now(),
	}
	s.userCodes[userCode] = deviceCode
	return nil
}

// GetDeviceAuthorizatonState is polled by the token endpoint. A finished grant is handed out once: the device
// code is single-use, as RFC 8628 asks.
func (s *Storage) GetDeviceAuthorizatonState(_ context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.devices[deviceCode]
	if !ok || g.clientID != clientID {
		return nil, errors.New("unknown or already used device code")
	}
	state := &op.DeviceAuthorizationState{
		ClientID: g.clientID,
		Audience: slices.Clone(g.audience),
		Scopes:   slices.Clone(g.scopes),
		Expires:  g.expires,
		Done:     g.done,
		Denied:   g.denied,
		Subject:  g.subject,
		AMR:      []string{"pwd"},
		AuthTime: g.authTime,
	}
	if g.done || g.denied {
		delete(s.devices, deviceCode)
		delete(s.userCodes, g.userCode)
	}
	return state, nil
}

func (s *Storage) purgeExpiredDevicesLocked(now time.Time) {
	for code, g := range s.devices {
		// Keep expired grants a while so a late poll still gets expired_token rather than an unknown code.
		if now.After(g.expires.Add(time.Minute)) {
			delete(s.devices, code)
			delete(s.userCodes, g.userCode)
		}
	}
}

// normalizeUserCode accepts codes typed in lower case or without the dash.
func normalizeUserCode(code string) string {
	code = strings.ToUpper(strings.TrimSpace(code))
	code = strings.ReplaceAll(code, " ", "")
	if len(code) == 8 && !strings.Contains(code, "-") {
		code = code[:4] + "-" + code[4:]
	}
	return code
}

// approvalError carries the HTTP status for the test API and the login page.
type approvalError struct {
	status int
	msg    string
}

func (e *approvalError) Error() string { return e.msg }

// decideDevice approves (as username) or denies a pending user code.
func (s *Storage) decideDevice(userCode, username string, deny bool) (*deviceGrant, error) {
	userCode = normalizeUserCode(userCode)
	if userCode == "" {
		return nil, &approvalError{http.StatusBadRequest, "user_code is required"}
	}
	var user *UserConfig
	if !deny {
		u, ok := s.cfg.user(username)
		if !ok {
			return nil, &approvalError{http.StatusNotFound, fmt.Sprintf("unknown user %q", username)}
		}
		user = u
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deviceCode, ok := s.userCodes[userCode]
	if !ok {
		return nil, &approvalError{http.StatusNotFound, fmt.Sprintf("unknown user code %q", userCode)}
	}
	g := s.devices[deviceCode]
	switch {
	case time.Now().After(g.expires):
		return nil, &approvalError{http.StatusGone, fmt.Sprintf("user code %q has expired", userCode)}
	case g.done || g.denied:
		return nil, &approvalError{http.StatusConflict, fmt.Sprintf("user code %q was already decided", userCode)}
	}
	if deny {
		g.denied = true
	} else {
		g.done = true
		g.subject = user.Sub
		g.authTime = time.Now().UTC()
	}
	copied := *g
	return &copied, nil
}

type pendingDevice struct {
	UserCode  string   `json:"user_code"`
	ClientID  string   `json:"client_id"`
	Scopes    []string `json:"scopes"`
	ExpiresIn int      `json:"expires_in"`
}

func (s *Storage) pendingDevices() []pendingDevice {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var grants []*deviceGrant
	for _, g := range s.devices {
		if !g.done && !g.denied && now.Before(g.expires) {
			grants = append(grants, g)
		}
	}
	// Oldest first, so the code a test just caused is the last one.
	slices.SortFunc(grants, func(a, b *deviceGrant) int { return a.created.Compare(b.created) })
	out := make([]pendingDevice, 0, len(grants))
	for _, g := range grants {
		out = append(out, pendingDevice{g.userCode, g.clientID, g.scopes, int(g.expires.Sub(now).Seconds())})
	}
	return out
}
