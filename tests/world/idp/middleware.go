package main

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const testPrefix = "/test/"

// isControlPath: the test API and the health probe are never counted nor faulted, so tests can always reach them.
func isControlPath(path string) bool {
	return strings.HasPrefix(path, testPrefix) || path == "/healthz"
}

// statusRecorder remembers the status a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// logRequests writes one structured line per request: method, path (never the query, which may carry a token),
// status and duration.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = 499 // the client went away before an answer (e.g. a hang fault)
		}
		slog.Info("request", "method", r.Method, "path", r.URL.Path, "status", status,
			"ms", time.Since(start).Milliseconds())
	})
}

// stats counts requests per path.
type stats struct {
	mu     sync.Mutex
	counts map[string]int64
	since  time.Time
}

func newStats() *stats { return &stats{counts: map[string]int64{}, since: time.Now().UTC()} }

func (s *stats) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isControlPath(r.URL.Path) {
			s.mu.Lock()
			s.counts[r.URL.Path]++
			s.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

type statsSnapshot struct {
	Total int64            `json:"total"`
	Paths map[string]int64 `json:"paths"`
	Since int64            `json:"since"`
}

func (s *stats) snapshot() statsSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int64
	for _, n := range s.counts {
		total += n
	}
	return statsSnapshot{Total: total, Paths: maps.Clone(s.counts), Since: s.since.Unix()}
}

func (s *stats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = map[string]int64{}
	s.since = time.Now().UTC()
}

// faults makes chosen endpoints misbehave: hang (no answer until the client gives up or the fault is lifted),
// down (503), slow (a delay before the normal answer) or status (a fixed error status).
type faults struct {
	mu       sync.Mutex
	rules    map[string]*faultRule // by exact path; allPaths for every non-control path
	shutdown chan struct{}
}

const allPaths = "*"

type faultRule struct {
	mode     string
	delay    time.Duration
	status   int
	released chan struct{} // closed when the rule is replaced, so hung requests continue
}

func newFaults() *faults {
	return &faults{rules: map[string]*faultRule{}, shutdown: make(chan struct{})}
}

func parseFault(mode string) (*faultRule, error) {
	rule := &faultRule{mode: mode, released: make(chan struct{})}
	switch {
	case mode == "none" || mode == "hang" || mode == "down":
	case strings.HasPrefix(mode, "slow:"):
		ms, err := strconv.Atoi(strings.TrimPrefix(mode, "slow:"))
		if err != nil || ms < 0 {
			return nil, fmt.Errorf("bad delay in %q (want slow:<milliseconds>)", mode)
		}
		rule.delay = time.Duration(ms) * time.Millisecond
	case strings.HasPrefix(mode, "status:"):
		code, err := strconv.Atoi(strings.TrimPrefix(mode, "status:"))
		if err != nil || code < 100 || code > 599 {
			return nil, fmt.Errorf("bad status in %q (want status:<100-599>)", mode)
		}
		rule.status = code
	default:
		return nil, fmt.Errorf("unknown fault mode %q (none, hang, down, slow:<ms>, status:<code>)", mode)
	}
	return rule, nil
}

// set applies mode to paths (all non-control paths when empty). "none" lifts the fault; with no paths it lifts
// every fault.
func (f *faults) set(mode string, paths []string) error {
	rule, err := parseFault(mode)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("path %q must start with /", p)
		}
		if isControlPath(p) {
			return fmt.Errorf("path %q is a control path and cannot be faulted", p)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(paths) == 0 {
		if mode == "none" {
			for p, old := range f.rules {
				close(old.released)
				delete(f.rules, p)
			}
			return nil
		}
		paths = []string{allPaths}
	}
	for _, p := range paths {
		if old, ok := f.rules[p]; ok {
			close(old.released)
			delete(f.rules, p)
		}
		if mode != "none" {
			// Each path gets its own release channel so lifting one path releases only its requests.
			r := *rule
			r.released = make(chan struct{})
			f.rules[p] = &r
		}
	}
	return nil
}

func (f *faults) lookup(path string) *faultRule {
	if isControlPath(path) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.rules[path]; ok {
		return r
	}
	return f.rules[allPaths]
}

func (f *faults) describe() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for p, r := range f.rules {
		out[p] = r.mode
	}
	return out
}

func (f *faults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rule := f.lookup(r.URL.Path)
		if rule == nil {
			next.ServeHTTP(w, r)
			return
		}
		switch {
		case rule.mode == "hang":
			select {
			case <-r.Context().Done():
				return
			case <-f.shutdown:
				return
			case <-rule.released:
			}
		case rule.mode == "down":
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": "temporarily_unavailable", "error_description": "fault injected by the test API",
			})
			return
		case rule.status != 0:
			writeJSON(w, rule.status, map[string]string{
				"error": "server_error", "error_description": "fault injected by the test API",
			})
			return
		case rule.delay > 0:
			select {
			case <-r.Context().Done():
				return
			case <-f.shutdown:
				return
			case <-time.After(rule.delay):
			}
		}
		next.ServeHTTP(w, r)
	})
}

// jwksCacheControl sets Zitadel's caching header on the key set.
func jwksCacheControl(path string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path {
			w.Header().Set("Cache-Control", "max-age=300")
		}
		next.ServeHTTP(w, r)
	})
}
