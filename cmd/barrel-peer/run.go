package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
	"github.com/barrel-db/barrel/ui"
)

// shutdownTimeout bounds how long in-flight requests may finish on exit.
const shutdownTimeout = 10 * time.Second

func (a *app) runCmd() *cobra.Command {
	var configPath string
	var files addrFiles
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the barrel daemon: open the data dir, join the network and serve the HTTP API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath, cmd.Flags())
			if err != nil {
				return err
			}
			if files.p2p != "" && cfg.P2P.Off {
				return errors.New("--p2p-addr-file needs networking, which --no-network (p2p.off) turns off")
			}
			return a.serve(cmd.Context(), cfg, files)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration file (see configs/barrel.yaml)")
	f.String("data", "", "data directory (default $XDG_DATA_HOME/barrel or ~/.local/share/barrel)")
	f.String("http", "", "HTTP listen address (default 127.0.0.1:7080; port 0 picks a free port)")
	f.String("http-token", "", "bearer token the HTTP API requires (default none)")
	f.String("http-tls-cert", "", "PEM certificate: serve HTTPS (HTTP/2 by ALPN) with --http-tls-key (default cleartext HTTP/1.1 and h2c)")
	f.String("http-tls-key", "", "PEM private key of --http-tls-cert")
	f.Int64("max-body-bytes", 0, "largest accepted request body in bytes (default and most 8 MiB)")
	f.String("durability", "", "sync (fsync before acknowledging, default) or batch")
	f.String("log-level", "", "debug, info, warn or error (default info)")
	f.Int("write-queue", 0, "per-database write queue capacity (default 4096)")
	f.Int64("cache-bytes", 0, "Pebble block cache in bytes, the bulk of the daemon's memory (default 128 MiB)")
	f.Int64("memtable-bytes", 0, "Pebble memtable in bytes; up to 4 are held under heavy writes (default 32 MiB)")
	f.StringVar(&files.http, "http-addr-file", "", "write the bound HTTP address to this file once listening")

	f.Bool("no-network", false, "no networking at all: a single-node barrel")
	f.StringArray("listen", nil, "libp2p listen multiaddr, repeatable (default "+strings.Join(node.DefaultListen, " and ")+")")
	f.StringArray("bootstrap", nil, "peer multiaddr with /p2p/ID to dial at start and redial, repeatable (default none)")
	f.Bool("no-mdns", false, "disable mDNS discovery on the LAN")
	f.Bool("no-dht", false, "disable the Kademlia DHT and its per-database rendezvous")
	f.Bool("allow-private-addrs", false, "let the DHT keep private and loopback addresses (a LAN, or tests on one machine)")
	f.Bool("nat-portmap", false, "map the listen port on the router (UPnP/NAT-PMP)")
	f.Bool("hole-punching", false, "enable DCUtR hole punching")
	f.Bool("relay-client", false, "dial peers through circuit relays")
	f.Duration("anti-entropy", 0, "pull from every connected peer this often (default 30s)")
	f.Duration("heartbeat", 0, "re-announce every database's heads this often (default 10s)")
	f.String("swarm-key", "", "join the private network of this swarm key file (IPFS format, mode 0600); TCP only (default none: the public network)")
	f.StringVar(&files.p2p, "p2p-addr-file", "", "write the node's libp2p addresses with /p2p/ID, one per line, loopback IPv4 first, once listening")
	return cmd
}

// addrFiles are the files the daemon writes its addresses to once it
// listens, so scripts and tests can find a daemon started on port 0.
type addrFiles struct {
	http string // the bound HTTP address
	p2p  string // the libp2p multiaddrs, one per line
}

// serve runs the daemon until ctx is done (SIGINT/SIGTERM), then shuts the
// HTTP server down and closes the node.
func (a *app) serve(ctx context.Context, cfg fileConfig, files addrFiles) error {
	level, _ := cfg.level() // validated
	log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	n, err := node.Open(ctx, node.Config{
		DataDir:    cfg.DataDir,
		Durability: cfg.Durability,
		WriteQueue: cfg.WriteQueue,
		CacheBytes: cfg.CacheBytes,
		MemTable:   cfg.MemTable,
		P2P:        cfg.P2P.node(),
		Retention:  &cfg.Retention,
		Logger:     log,
	})
	if err != nil {
		return openError(cfg.DataDir, err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			log.Error("close node", "err", err)
		}
	}()
	if cfg.P2P.SwarmKeyFile != "" && !cfg.P2P.Off {
		log.Info("private network: only peers holding the swarm key can connect, over TCP only", "swarm_key_file", cfg.P2P.SwarmKeyFile)
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	addr := ln.Addr().String()
	if !isLoopback(cfg.HTTP.Addr) && cfg.HTTP.Token == "" {
		log.Warn("HTTP API reachable beyond loopback without a token: anyone who can connect can read and write", "addr", addr)
	}

	// Long-lived streams (feed=sse) end when the server shuts down.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	// Header, URL and body sizes and the timeouts are httpapi's defaults;
	// see NewServer for why there is no WriteTimeout.
	var conns []couch.Connector
	for _, c := range cfg.Connectors {
		cc, err := c.connector()
		if err != nil {
			return err
		}
		conns = append(conns, cc)
	}
	cs := couch.New(n, couch.Config{Token: cfg.HTTP.Token, CORSOrigins: cfg.HTTP.CORSOrigins, Logger: log})
	hcfg := httpapi.Config{
		Logger:            log,
		Token:             cfg.HTTP.Token,
		MaxBodyBytes:      cfg.HTTP.MaxBodyBytes,
		MemoryBudgetBytes: cfg.HTTP.MemoryBudgetBytes,
		MaxInFlightWrites: cfg.HTTP.MaxInFlightWrites,
		MaxUploads:        cfg.HTTP.MaxUploads,
		MinBodyRate:       cfg.HTTP.MinBodyRate,
		BodyRateGrace:     cfg.HTTP.BodyRateGrace,
		MaxConnections:    cfg.HTTP.MaxConnections,
		ClientRate:        cfg.HTTP.ClientRate,
		ClientBurst:       cfg.HTTP.ClientBurst,
		Couch:             cs,
		UI:                ui.Handler(),
		Connectors: func(db string) any {
			if st := cs.Connectors(db); len(st) > 0 {
				return st
			}
			return nil
		},
	}
	srv := httpapi.NewServer(n, hcfg)
	srv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	srv.RegisterOnShutdown(cancelBase)

	served := make(chan error, 1)
	scheme := "http"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https"
		// Read the pair now: a bad file is a startup error, not a failed
		// handshake for every client.
		cert, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("http.tls_cert %s, http.tls_key %s: %w", cfg.HTTP.TLSCert, cfg.HTTP.TLSKey, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		go func() { served <- srv.ServeTLS(httpapi.LimitListener(ln, hcfg), "", "") }()
	} else {
		go func() { served <- srv.Serve(httpapi.LimitListener(ln, hcfg)) }()
	}
	log.Info("HTTP API listening", "addr", addr, "scheme", scheme, "peer", n.Info().PeerID, "data_dir", cfg.DataDir)
	// The p2p file comes first: a reader waiting for the HTTP file finds
	// both.
	if files.p2p != "" {
		if err := writeFileAtomic(files.p2p, []byte(p2pAddrLines(n.Addrs()))); err != nil {
			_ = srv.Close()
			<-served //nolint:errcheck // http.ErrServerClosed: the error returned is the file's
			return fmt.Errorf("write p2p address file: %w", err)
		}
	}
	if files.http != "" {
		if err := writeFileAtomic(files.http, []byte(addr+"\n")); err != nil {
			_ = srv.Close()
			<-served //nolint:errcheck // http.ErrServerClosed: the error returned is the file's
			return fmt.Errorf("write address file: %w", err)
		}
	}

	// Connectors stop with ctx (or a failed server), and are waited for
	// before the node closes.
	cctx, stopConnectors := context.WithCancel(ctx)
	defer func() { stopConnectors(); cs.WaitConnectors() }()
	if err := cs.StartConnectors(cctx, conns); err != nil {
		_ = srv.Close()
		<-served //nolint:errcheck // http.ErrServerClosed
		return err
	}
	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("HTTP shutdown incomplete, closing connections", "err", err)
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("HTTP server stopped with an error", "err", err)
	}
	log.Info("stopped")
	return nil
}

// openError says why the node in dataDir did not open, in the words a user
// acts on.
func openError(dataDir string, err error) error {
	var locked *datastore.LockedError
	switch {
	case errors.As(err, &locked) && locked.PID > 0:
		return fmt.Errorf("data dir %s is in use by another barrel-peer (pid %d): stop it first, or give this one another --data", dataDir, locked.PID)
	case errors.As(err, &locked):
		return fmt.Errorf("data dir %s is in use by another barrel-peer: stop it first, or give this one another --data", dataDir)
	case errors.Is(err, node.ErrCorrupt):
		return fmt.Errorf("data dir %s is damaged; nothing was changed or deleted. Restore it from a backup, or move it away and re-sync the databases from a peer: %w", dataDir, err)
	}
	return fmt.Errorf("open node in %s: %w", dataDir, err)
}

// p2pAddrLines returns addrs one per line, those on 127.0.0.1 first (TCP
// before QUIC, as the node sorts them), so the first line is one a peer on
// the same machine can dial.
func p2pAddrLines(addrs []string) string {
	addrs = slices.Clone(addrs)
	slices.SortStableFunc(addrs, func(x, y string) int {
		lx, ly := strings.HasPrefix(x, "/ip4/127.0.0.1/"), strings.HasPrefix(y, "/ip4/127.0.0.1/")
		switch {
		case lx == ly:
			return 0
		case lx:
			return -1
		default:
			return 1
		}
	})
	var b strings.Builder
	for _, a := range addrs {
		b.WriteString(a)
		b.WriteByte('\n')
	}
	return b.String()
}

// isLoopback says whether a listen address only accepts local connections.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// writeFileAtomic writes data to path through a rename, so a reader never
// sees a partial file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
