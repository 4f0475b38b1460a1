package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
)

// fileConfig is the daemon's configuration as written in the YAML file
// (see configs/barrel.yaml). Precedence: flags > file > defaults.
type fileConfig struct {
	DataDir    string     `koanf:"data_dir"`
	HTTP       httpConfig `koanf:"http"`
	Durability string     `koanf:"durability"`
	WriteQueue int        `koanf:"write_queue"`
	CacheBytes int64      `koanf:"cache_bytes"`    // Pebble block cache; 0: 128 MiB
	MemTable   int64      `koanf:"memtable_bytes"` // Pebble memtable; 0: 32 MiB
	LogLevel   string     `koanf:"log_level"`
	P2P        p2pConfig  `koanf:"p2p"`
	// Retention is the history every database keeps; it starts from
	// node.DefaultRetention, so a file sets only the keys it changes.
	Retention node.Retention `koanf:"retention"`
	// Connectors are replications with CouchDB-protocol servers the daemon
	// keeps running (couch.Connector).
	Connectors []connectorConfig `koanf:"connectors"`
}

// connectorConfig is one entry of connectors: in the configuration file.
type connectorConfig struct {
	Name         string        `koanf:"name"`
	DB           string        `koanf:"db"`
	URL          string        `koanf:"url"`
	Direction    string        `koanf:"direction"` // pull, push or both (default)
	Live         bool          `koanf:"live"`
	Interval     time.Duration `koanf:"interval"`
	User         string        `koanf:"user"`
	PasswordFile string        `koanf:"password_file"`
	PasswordEnv  string        `koanf:"password_env"`
	DocIDs       []string      `koanf:"doc_ids"`
}

// connector turns a connectors: entry into the couch endpoint's, reading
// its password from the file or the environment variable it names.
func (c connectorConfig) connector() (couch.Connector, error) {
	out := couch.Connector{Name: c.Name, DB: c.DB, URL: c.URL, Live: c.Live, Interval: c.Interval, DocIDs: c.DocIDs}
	if out.Name == "" {
		out.Name = c.DB
	}
	if c.DB == "" || c.URL == "" {
		return out, fmt.Errorf("connector %q: db and url are required", out.Name)
	}
	switch c.Direction {
	case "", "both":
		out.Pull, out.Push = true, true
	case "pull":
		out.Pull = true
	case "push":
		out.Push = true
	default:
		return out, fmt.Errorf("connector %q: direction %q: want pull, push or both", out.Name, c.Direction)
	}
	if c.Interval < 0 {
		return out, fmt.Errorf("connector %q: negative interval", out.Name)
	}
	out.Auth.User = c.User
	switch {
	case c.PasswordFile != "" && c.PasswordEnv != "":
		return out, fmt.Errorf("connector %q: password_file or password_env, not both", out.Name)
	case c.PasswordFile != "":
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return out, fmt.Errorf("connector %q: password file: %w", out.Name, err)
		}
		out.Auth.Password = strings.TrimRight(string(b), "\r\n")
	case c.PasswordEnv != "":
		v, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return out, fmt.Errorf("connector %q: environment variable %s is not set", out.Name, c.PasswordEnv)
		}
		out.Auth.Password = v
	}
	if out.Auth.Password != "" && out.Auth.User == "" {
		out.Auth.User = "barrel"
	}
	return out, nil
}

// httpConfig is the http section of the configuration file.
type httpConfig struct {
	Addr         string `koanf:"addr"`
	Token        string `koanf:"token"`
	MaxBodyBytes int64  `koanf:"max_body_bytes"`
	// The bounds below are httpapi.Config's; zero means its default.
	MaxConnections    int           `koanf:"max_connections"`
	MemoryBudgetBytes int64         `koanf:"memory_budget_bytes"`
	MaxInFlightWrites int           `koanf:"max_inflight_writes"`
	MaxUploads        int           `koanf:"max_uploads"`
	MinBodyRate       int64         `koanf:"min_body_rate"` // bytes/s; negative: off
	BodyRateGrace     time.Duration `koanf:"body_rate_grace"`
	// CORSOrigins are the browser origins the CouchDB endpoint (/couch/)
	// answers, for PouchDB in a web page; none by default.
	CORSOrigins []string `koanf:"cors_origins"`
	// TLSCert and TLSKey, both set, serve HTTPS (HTTP/2 and HTTP/1.1 by
	// ALPN) instead of cleartext HTTP/1.1 and h2c: PEM files.
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// ClientRate and ClientBurst are each client's request budget
	// (requests/s, 0: off; burst, 0: twice the rate).
	ClientRate  float64 `koanf:"client_rate"`
	ClientBurst int     `koanf:"client_burst"`
}

// p2pConfig is the p2p section of the configuration file: the node as a
// libp2p peer. Zero values mean node.P2PConfig's defaults; lists are nil
// by default (rather than node.DefaultListen) because decoding a file's
// list into a non-empty slice would keep the default's extra elements.
type p2pConfig struct {
	Off               bool          `koanf:"off"` // no networking at all
	Listen            []string      `koanf:"listen"`
	Bootstrap         []string      `koanf:"bootstrap"`
	NoMDNS            bool          `koanf:"no_mdns"`
	NoDHT             bool          `koanf:"no_dht"`
	AllowPrivateAddrs bool          `koanf:"allow_private_addrs"`
	NATPortMap        bool          `koanf:"nat_portmap"`
	HolePunching      bool          `koanf:"hole_punching"`
	RelayClient       bool          `koanf:"relay_client"`
	ConnLow           int           `koanf:"conn_low"`
	ConnHigh          int           `koanf:"conn_high"`
	MaxMemoryBytes    int64         `koanf:"max_memory_bytes"`
	MaxFDs            int           `koanf:"max_fds"`
	Debounce          time.Duration `koanf:"debounce"`
	Heartbeat         time.Duration `koanf:"heartbeat"`
	AntiEntropy       time.Duration `koanf:"anti_entropy"`
	Rendezvous        time.Duration `koanf:"rendezvous"`
	SyncIdle          time.Duration `koanf:"sync_idle"`              // a served sync session idle this long is closed
	SyncPeerStreams   int           `koanf:"sync_peer_streams"`      // sync streams one peer may hold open here
	SyncPeerBodies    int64         `koanf:"sync_peer_bodies_per_s"` // change bodies sent to one peer per second; 0: 100000, negative: unlimited
	SyncPeerBytes     int64         `koanf:"sync_peer_bytes_per_s"`  // bytes sent to one peer per second; 0: 64 MiB, negative: unlimited
	SwarmKeyFile      string        `koanf:"swarm_key_file"`         // private network key, IPFS format
}

// node returns the node's P2P configuration: nil when networking is off.
func (c p2pConfig) node() *node.P2PConfig {
	if c.Off {
		return nil
	}
	return &node.P2PConfig{
		Listen:               c.Listen,
		Bootstrap:            c.Bootstrap,
		NoMDNS:               c.NoMDNS,
		NoDHT:                c.NoDHT,
		AllowPrivateAddrs:    c.AllowPrivateAddrs,
		NATPortMap:           c.NATPortMap,
		HolePunching:         c.HolePunching,
		RelayClient:          c.RelayClient,
		ConnLow:              c.ConnLow,
		ConnHigh:             c.ConnHigh,
		MaxMemoryBytes:       c.MaxMemoryBytes,
		MaxFDs:               c.MaxFDs,
		Debounce:             c.Debounce,
		Heartbeat:            c.Heartbeat,
		AntiEntropy:          c.AntiEntropy,
		Rendezvous:           c.Rendezvous,
		SyncIdle:             c.SyncIdle,
		SyncPeerStreams:      c.SyncPeerStreams,
		SyncPeerBodiesPerSec: c.SyncPeerBodies,
		SyncPeerBytesPerSec:  c.SyncPeerBytes,
		SwarmKeyFile:         c.SwarmKeyFile,
	}
}

// defaultConfig returns the defaults: data in $XDG_DATA_HOME/barrel or
// ~/.local/share/barrel, HTTP on 127.0.0.1:7080, sync durability.
func defaultConfig() fileConfig {
	return fileConfig{
		DataDir:    defaultDataDir(),
		HTTP:       httpConfig{Addr: "127.0.0.1:7080"},
		Durability: "sync",
		LogLevel:   "info",
		Retention:  node.DefaultRetention,
	}
}

func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "barrel")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "" // validate reports the missing data dir
	}
	return filepath.Join(home, ".local", "share", "barrel")
}

// loadConfig applies the file at path (if path is not empty) over the
// defaults, then every flag the user set in flags. Unknown keys in the file
// are errors, so a typo does not silently fall back to a default.
func loadConfig(path string, flags *pflag.FlagSet) (fileConfig, error) {
	cfg := defaultConfig()
	if path != "" {
		k := koanf.New(".")
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return cfg, fmt.Errorf("read config %s: %w", path, err)
		}
		err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{
			Tag: "koanf",
			DecoderConfig: &mapstructure.DecoderConfig{
				ErrorUnused:      true,
				WeaklyTypedInput: false,
				// Durations are written as Go durations: 30s, 1m30s.
				DecodeHook: mapstructure.StringToTimeDurationHookFunc(),
			},
		})
		if err != nil {
			return cfg, fmt.Errorf("decode config %s: %w", path, err)
		}
	}
	if err := applyFlags(&cfg, flags); err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// applyFlags copies the flags the user set onto cfg.
func applyFlags(cfg *fileConfig, flags *pflag.FlagSet) error {
	var err error
	flags.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "data":
			cfg.DataDir = f.Value.String()
		case "http":
			cfg.HTTP.Addr = f.Value.String()
		case "http-token":
			cfg.HTTP.Token = f.Value.String()
		case "http-tls-cert":
			cfg.HTTP.TLSCert = f.Value.String()
		case "http-tls-key":
			cfg.HTTP.TLSKey = f.Value.String()
		case "durability":
			cfg.Durability = f.Value.String()
		case "log-level":
			cfg.LogLevel = f.Value.String()
		case "write-queue":
			cfg.WriteQueue, err = flags.GetInt("write-queue")
		case "memtable-bytes":
			cfg.MemTable, err = flags.GetInt64("memtable-bytes")
		case "cache-bytes":
			cfg.CacheBytes, err = flags.GetInt64("cache-bytes")
		case "max-body-bytes":
			cfg.HTTP.MaxBodyBytes, err = flags.GetInt64("max-body-bytes")
		case "no-network":
			cfg.P2P.Off = f.Value.String() == "true"
		case "listen":
			cfg.P2P.Listen, err = flags.GetStringArray("listen")
		case "bootstrap":
			cfg.P2P.Bootstrap, err = flags.GetStringArray("bootstrap")
		case "no-mdns":
			cfg.P2P.NoMDNS = f.Value.String() == "true"
		case "no-dht":
			cfg.P2P.NoDHT = f.Value.String() == "true"
		case "allow-private-addrs":
			cfg.P2P.AllowPrivateAddrs = f.Value.String() == "true"
		case "nat-portmap":
			cfg.P2P.NATPortMap = f.Value.String() == "true"
		case "hole-punching":
			cfg.P2P.HolePunching = f.Value.String() == "true"
		case "relay-client":
			cfg.P2P.RelayClient = f.Value.String() == "true"
		case "anti-entropy":
			cfg.P2P.AntiEntropy, err = flags.GetDuration("anti-entropy")
		case "heartbeat":
			cfg.P2P.Heartbeat, err = flags.GetDuration("heartbeat")
		case "swarm-key":
			cfg.P2P.SwarmKeyFile = f.Value.String()
		}
	})
	return err
}

// validate reports every contradiction in cfg at once.
func (c fileConfig) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty and no home directory is known: set --data"))
	}
	if c.HTTP.Addr == "" {
		errs = append(errs, errors.New("http.addr is empty"))
	}
	switch c.Durability {
	case "sync", "batch":
	default:
		errs = append(errs, fmt.Errorf("durability %q: want sync or batch", c.Durability))
	}
	if c.CacheBytes < 0 || c.MemTable < 0 {
		errs = append(errs, fmt.Errorf("cache_bytes %d, memtable_bytes %d: want >= 0", c.CacheBytes, c.MemTable))
	}
	if c.WriteQueue < 0 {
		errs = append(errs, fmt.Errorf("write_queue %d: want >= 0", c.WriteQueue))
	}
	if r := c.Retention; r.KeepRevisions < 0 || r.KeepFor < 0 || r.TombstonesFor < 0 || r.Interval < 0 {
		errs = append(errs, fmt.Errorf("retention %+v: keep_revisions, keep_for, tombstones_for and interval want >= 0", r))
	}
	if c.HTTP.MaxBodyBytes < 0 || c.HTTP.MaxBodyBytes > httpapi.MaxBodyBytesLimit {
		errs = append(errs, fmt.Errorf("http.max_body_bytes %d: want 0..%d (a larger document could not replicate: peers refuse changes over %d bytes)",
			c.HTTP.MaxBodyBytes, httpapi.MaxBodyBytesLimit, crdt.MaxChangeBytes))
	}
	for _, n := range []struct {
		key string
		v   int64
	}{{"max_connections", int64(c.HTTP.MaxConnections)}, {"memory_budget_bytes", c.HTTP.MemoryBudgetBytes}, {"max_inflight_writes", int64(c.HTTP.MaxInFlightWrites)},
		{"max_uploads", int64(c.HTTP.MaxUploads)}, {"body_rate_grace", int64(c.HTTP.BodyRateGrace)}, {"client_burst", int64(c.HTTP.ClientBurst)}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("http.%s %d: want >= 0", n.key, n.v))
		}
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		errs = append(errs, fmt.Errorf("http.tls_cert %q, http.tls_key %q: set both to serve HTTPS, or neither", c.HTTP.TLSCert, c.HTTP.TLSKey))
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.P2P.validate()...)
	return errors.Join(errs...)
}

// level parses LogLevel (debug, info, warn, error).
func (c fileConfig) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// validate reports the p2p settings that are wrong whatever the node says;
// the node checks the addresses themselves when it opens.
func (c p2pConfig) validate() []error {
	var errs []error
	if c.Off && c.SwarmKeyFile != "" {
		errs = append(errs, errors.New("p2p.swarm_key_file (--swarm-key) needs networking, which p2p.off (--no-network) turns off"))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"debounce", c.Debounce}, {"heartbeat", c.Heartbeat}, {"anti_entropy", c.AntiEntropy}, {"rendezvous", c.Rendezvous}, {"sync_idle", c.SyncIdle}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("p2p.%s %v: want >= 0", d.key, d.v))
		}
	}
	for _, n := range []struct {
		key string
		v   int64
	}{{"conn_low", int64(c.ConnLow)}, {"conn_high", int64(c.ConnHigh)}, {"max_memory_bytes", c.MaxMemoryBytes}, {"max_fds", int64(c.MaxFDs)}, {"sync_peer_streams", int64(c.SyncPeerStreams)}} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("p2p.%s %d: want >= 0", n.key, n.v))
		}
	}
	return errs
}
