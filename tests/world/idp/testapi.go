package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// testAPI is the control surface that exists only in this test program (see README.md): it approves device
// codes, rotates keys, mints tokens, injects faults and reports request counts.
type testAPI struct {
	storage *Storage
	crypto  op.Crypto
	faults  *faults
	stats   *stats
	persist func()
}

func (t *testAPI) register(mux *http.ServeMux) {
	mux.HandleFunc("POST /test/approve", t.approve)
	mux.HandleFunc("GET /test/device/pending", t.pending)
	mux.HandleFunc("POST /test/rotate", t.rotate)
	mux.HandleFunc("GET /test/keys", t.keys)
	mux.HandleFunc("POST /test/mint", t.mint)
	mux.HandleFunc("POST /test/fault", t.fault)
	mux.HandleFunc("GET /test/fault", t.faultList)
	mux.HandleFunc("GET /test/stats", t.statsGet)
	mux.HandleFunc("POST /test/stats/reset", t.statsReset)
	mux.HandleFunc("GET /test/clients/{id}/key", t.clientKey)
}

// clientKey hands out the generated key of a private_key_jwt client as Zitadel's JSON key file.
func (t *testAPI) clientKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := t.storage.cfg.client(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown client %q", id))
		return
	}
	kf, ok := c.keyFile()
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("client %q has no generated key (auth %s)", id, c.Auth))
		return
	}
	writeJSON(w, http.StatusOK, kf)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Error("writing a JSON answer", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// readJSON decodes a request body strictly, so a misspelt field fails loudly instead of being ignored.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad JSON body: %v", err))
		return false
	}
	return true
}

func (t *testAPI) approve(w http.ResponseWriter, r *http.Request) {
	var body struct {
		UserCode string `json:"user_code"`
		User     string `json:"user"`
		Deny     bool   `json:"deny"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	g, err := t.storage.decideDevice(body.UserCode, body.User, body.Deny)
	if err != nil {
		writeError(w, approvalStatus(err), err.Error())
		return
	}
	result := "approved"
	if body.Deny {
		result = "denied"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code": g.userCode, "client_id": g.clientID, "result": result, "sub": g.subject,
	})
}

func (t *testAPI) pending(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, t.storage.pendingDevices())
}

func (t *testAPI) rotate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RetireOld bool   `json:"retire_old"`
		Alg       string `json:"alg"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	alg := jose.SignatureAlgorithm(body.Alg)
	if alg == "" {
		alg = jose.RS256
	}
	k, err := t.storage.keys.rotate(alg, body.RetireOld)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	t.persist()
	slog.Info("signing key rotated", "kid", k.id, "alg", k.alg, "retire_old", body.RetireOld)
	writeJSON(w, http.StatusOK, map[string]any{"kid": k.id, "alg": k.alg, "keys": t.storage.keys.describe()})
}

func (t *testAPI) keys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, t.storage.keys.describe())
}

func (t *testAPI) mint(w http.ResponseWriter, r *http.Request) {
	var body mintRequest
	if !readJSON(w, r, &body) {
		return
	}
	resp, err := t.storage.mint(&body, t.crypto)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, errMint) {
			status = http.StatusBadRequest
		}
		writeError(w, status, err.Error())
		return
	}
	slog.Info("token minted", "kid", resp.Kid, "alg", resp.Alg, "opaque", body.Opaque)
	writeJSON(w, http.StatusOK, resp)
}

func (t *testAPI) fault(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Mode  string   `json:"mode"`
		Paths []string `json:"paths"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if err := t.faults.set(body.Mode, body.Paths); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	slog.Info("fault set", "mode", body.Mode, "paths", body.Paths)
	writeJSON(w, http.StatusOK, map[string]any{"faults": t.faults.describe()})
}

func (t *testAPI) faultList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": t.faults.describe()})
}

func (t *testAPI) statsGet(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, t.stats.snapshot())
}

func (t *testAPI) statsReset(w http.ResponseWriter, _ *http.Request) {
	t.stats.reset()
	writeJSON(w, http.StatusOK, t.stats.snapshot())
}
