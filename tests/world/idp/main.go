// Command pgrator-test-idp is the test world's OpenID Provider: Zitadel's own OIDC library (zitadel/oidc v3,
// package op) configured the way Zitadel serves it (endpoint paths, opaque or JWT access tokens, introspection
// with client authentication, the device flow, keys rotated on demand), plus a test-only control API under
// /test/. It serves HTTPS only and prints "READY <issuer>" on stdout once it listens.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	addr, issuer, tlsCert, tlsKey, config, stateDir string
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "listen address (host:port)")
	flag.StringVar(&o.issuer, "issuer", "", "issuer URL, served verbatim in discovery (e.g. https://127.0.0.1:8443)")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "PEM server certificate (chain)")
	flag.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of the certificate")
	flag.StringVar(&o.config, "config", "", "JSON configuration: org, project, users, clients (see README.md)")
	flag.StringVar(&o.stateDir, "state-dir", "", "directory that keeps keys and issued tokens across restarts")
	flag.Parse()
	if err := run(o); err != nil {
		slog.Error("pgrator-test-idp failed", "err", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.issuer == "" || o.tlsCert == "" || o.tlsKey == "" {
		return errors.New("--issuer, --tls-cert and --tls-key are required")
	}
	if u, err := url.Parse(o.issuer); err != nil || u.Scheme != "https" {
		return fmt.Errorf("--issuer must be an https URL, got %q", o.issuer)
	}
	cfg, err := loadConfig(o.config)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return fmt.Errorf("loading the TLS certificate: %w", err)
	}

	booted, err := bootState(o.stateDir)
	if err != nil {
		return err
	}
	if err := cfg.generateClientKeys(booted.clientKeys); err != nil {
		return err
	}
	keys := booted.keys
	storage := newStorage(cfg, o.issuer, keys)
	for _, t := range booted.tokens {
		storage.tokens[t.ID] = t
	}
	saver := newStateSaver(o.stateDir, storage, booted.cryptoKey)
	storage.changed = saver.markDirty
	crypt, err := newOpaqueCrypto(booted.cryptoKey)
	if err != nil {
		return err
	}

	provider, err := newProvider(cfg, storage, o.issuer, crypt)
	if err != nil {
		return fmt.Errorf("creating the provider: %w", err)
	}
	faults, counts := newFaults(), newStats()
	handler := routes(storage, provider, &testAPI{storage: storage, crypto: crypt, faults: faults, stats: counts,
		persist: saver.markDirty}, o.issuer)
	handler = logRequests(counts.middleware(faults.middleware(jwksCacheControl(keysPath, handler))))

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(os.Stderr, "http: ", 0),
	}
	tlsLn := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(tlsLn) }()

	stopSaver := make(chan struct{})
	go saver.run(stopSaver)
	saver.markDirty()

	slog.Info("listening", "addr", ln.Addr().String(), "issuer", o.issuer, "users", len(cfg.Users),
		"clients", len(cfg.Clients), "kid", keys.signing().id)
	fmt.Printf("READY %s\n", o.issuer)
	_ = os.Stdout.Sync()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		slog.Info("shutting down", "signal", sig.String())
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	}
	close(faults.shutdown) // let hung requests go
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	close(stopSaver)
	<-saver.done
	return nil
}
