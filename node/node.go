package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Version is the barrel release this build reports.
const Version = "0.1.0"

// Node is an open barrel: one identity, one store, many databases. Its
// methods are safe for concurrent use.
type Node struct {
	cfg        Config
	log        *slog.Logger
	store      *datastore.Store
	key        crypto.PrivKey
	peerID     peer.ID
	gather     prometheus.Gatherer
	registerer prometheus.Registerer
	metrics    *metrics
	net        atomic.Pointer[netParts] // nil without networking

	mu struct { // guards the catalog of open databases
		sync.Mutex
		dbs    map[string]*DB
		closed bool
	}
}

// dbMeta is a catalog entry.
type dbMeta struct {
	_       struct{} `cbor:",toarray"`
	ID      uint64
	Created int64 // unix nanoseconds
	Repl    *replMeta
}

// Open opens (creating if needed) the node in cfg.DataDir: its identity key,
// its store and every database in its catalog.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	// A data dir with an identity has a store: the identity is created only
	// after the store recorded its format (below), so a store missing next
	// to an identity was lost, and opening a new, empty one in its place
	// would serve nothing as if that were the truth (DESIGN.md invariant 8).
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, identityFile))
	hasIdentity := statErr == nil
	dur, _ := datastore.ParseDurability(cfg.Durability)
	storeDir := filepath.Join(cfg.DataDir, "store")
	store, err := datastore.Open(storeDir, datastore.Config{Durability: dur, CacheBytes: cfg.CacheBytes, MemTableBytes: cfg.MemTable,
		MustExist: hasIdentity && (cfg.PebbleOptions == nil || cfg.PebbleOptions.FS == nil), Logger: cfg.Logger, PebbleOptions: cfg.PebbleOptions})
	if errors.Is(err, datastore.ErrNoStore) {
		return nil, fmt.Errorf("open node %s: %w: it has an identity (%s) but no store (%s): the store was deleted or moved; restore it, or move %s away too to start a new, empty node with a new identity",
			cfg.DataDir, ErrCorrupt, identityFile, storeDir, identityFile)
	}
	if err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	if err := checkFormat(store, hasIdentity, cfg.Logger); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open node %s: %w", cfg.DataDir, err)
	}
	key, err := loadIdentity(cfg.DataDir)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open node: %w", err)
	}
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open node: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, store: store, key: key, peerID: pid}
	reg := cfg.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, n.gather = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		n.gather = g
	} else {
		n.gather = prometheus.NewRegistry()
	}
	n.registerer = reg
	if n.metrics, err = newMetrics(reg, store); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open node: metrics: %w", err)
	}
	n.mu.dbs = map[string]*DB{}
	err = store.Range(layout.CatalogPrefix, datastore.PrefixEnd(layout.CatalogPrefix), false, func(k, v []byte) (bool, error) {
		name, _, err := tuple.ReadString(k[len(layout.CatalogPrefix):])
		if err != nil {
			return false, err
		}
		var m dbMeta
		if err := crdt.Unmarshal(v, &m); err != nil {
			return false, fmt.Errorf("catalog entry %q: %w", name, err)
		}
		db, err := openDB(n, name, m)
		if err != nil {
			return false, err
		}
		n.mu.dbs[name] = db
		return true, nil
	})
	if err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("open node: %w", err)
	}
	if cfg.P2P != nil {
		if err := n.startNetwork(); err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("open node: %w", err)
		}
	}
	n.log.Info("node open", "peer", pid.String(), "dir", cfg.DataDir, "dbs", len(n.mu.dbs), "durability", cfg.Durability)
	return n, nil
}

// Close stops every database's writer and closes the store. It is idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil
	}
	n.mu.closed = true
	n.mu.Unlock()
	n.stopNetwork() // no more received changes or announcements
	n.mu.Lock()
	dbs := n.mu.dbs
	n.mu.dbs = nil
	n.mu.Unlock()
	for _, db := range dbs {
		db.close()
	}
	return n.store.Close()
}

// Info describes the node.
func (n *Node) Info() Info {
	return Info{PeerID: n.peerID.String(), Version: BuildVersion(), Addrs: n.Addrs(), Components: n.Components(), Store: n.storeHealth()}
}

// storeHealth returns the store's troubles, nil when it has had none.
func (n *Node) storeHealth() *StoreHealth {
	h := n.store.Health()
	if h.Corruptions == 0 && !h.NoSpace {
		return nil
	}
	sh := &StoreHealth{Corruptions: h.Corruptions, LastCorruption: h.LastCorruption, NoSpace: h.NoSpace}
	var advice []string
	if h.Corruptions > 0 {
		advice = append(advice, "the store is damaged (see last_corruption): reads of a damaged part fail and the rest is served; re-sync the affected databases from a peer, or restore the data dir from a backup")
	}
	if h.NoSpace {
		advice = append(advice, "the disk is full: writes are refused until space is freed")
	}
	sh.Advice = strings.Join(advice, "; ")
	return sh
}

// PeerID is the node's libp2p identity.
func (n *Node) PeerID() peer.ID { return n.peerID }

// Gatherer serves the node's Prometheus metrics.
func (n *Node) Gatherer() prometheus.Gatherer { return n.gather }

// Registerer is where the node's metrics are registered, for the layers
// above it (couch/) to register theirs beside them in /metrics.
func (n *Node) Registerer() prometheus.Registerer { return n.registerer }

var dbNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,127}$`)

func validDBName(name string) error {
	if !dbNameRE.MatchString(name) {
		return invalid("db name", "%q: want 1-128 of a-z 0-9 _ . -, starting with a letter or digit", name)
	}
	return nil
}

// CreateDB creates an empty database. ErrDBExists if it exists.
func (n *Node) CreateDB(ctx context.Context, name string) error {
	if err := n.createDB(name); err != nil {
		return err
	}
	n.joinNetwork(name) // after n.mu is released: it reads the catalog
	return nil
}

func (n *Node) createDB(name string) error {
	if err := validDBName(name); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return ErrClosed
	}
	if _, ok := n.mu.dbs[name]; ok {
		return fmt.Errorf("create %s: %w", name, ErrDBExists)
	}
	var next uint64 = 1
	if v, err := n.store.Get(layout.NextDBKey); err == nil && len(v) == 8 {
		next = binary.BigEndian.Uint64(v)
	} else if err != nil && !errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("create %s: %w", name, err)
	}
	m := &dbMeta{ID: next, Created: n.cfg.Now().UnixNano()}
	meta, err := crdt.Marshal(m)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	b := n.store.NewBatch()
	b.Set(layout.CatalogKey(name), meta)
	b.Set(layout.NextDBKey, layout.Uint64(next+1))
	b.Set(layout.NewKeys(next).Meta(metaOwner), []byte(n.peerID)) // the creator owns it
	if err := b.Commit(); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	db, err := openDB(n, name, *m)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	n.mu.dbs[name] = db
	n.log.Info("database created", "db", name)
	return nil
}

// DropDB deletes a database and all its documents. ErrDBNotFound if absent.
func (n *Node) DropDB(ctx context.Context, name string) error {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	db, ok := n.mu.dbs[name]
	if ok {
		delete(n.mu.dbs, name)
	}
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("drop %s: %w", name, ErrDBNotFound)
	}
	n.leaveNetwork(name)
	db.close()
	lo, hi := db.keys.All()
	b := n.store.NewBatch()
	b.Delete(layout.CatalogKey(name))
	b.DeleteRange(lo, hi)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	if err := n.store.Compact(lo, hi); err != nil {
		n.log.Warn("compact dropped database", "db", name, "err", err)
	}
	n.log.Info("database dropped", "db", name)
	return nil
}

// ListDBs returns the names of all databases, sorted.
func (n *Node) ListDBs(ctx context.Context) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return nil, ErrClosed
	}
	names := make([]string, 0, len(n.mu.dbs))
	for name := range n.mu.dbs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// DB returns an open database. ErrDBNotFound if it does not exist.
func (n *Node) DB(name string) (*DB, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mu.closed {
		return nil, ErrClosed
	}
	db, ok := n.mu.dbs[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrDBNotFound)
	}
	return db, nil
}
