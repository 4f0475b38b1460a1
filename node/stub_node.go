package node

// TEMPORARY STUB: replaced by the real engine. Signatures are the contract.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var errStub = errors.New("node: not implemented yet")

// Config configures a node. The zero value of every field means its default.
type Config struct {
	DataDir    string       // required: directory for the identity key and the store
	Durability string       // "sync" (default: fsync before acknowledging) or "batch"
	WriteQueue int          // per-database write queue capacity; default 4096
	MaxBatch   int          // most writes merged into one group commit; default 1024
	Logger     *slog.Logger // nil: slog.Default()
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now
}

// Node is an open barrel: one identity, one store, many databases.
type Node struct{}

// DB is one database of a node. Safe for concurrent use.
type DB struct{}

func Open(ctx context.Context, cfg Config) (*Node, error)       { return nil, errStub }
func (n *Node) Close() error                                    { return nil }
func (n *Node) Info() Info                                      { return Info{} }
func (n *Node) Gatherer() prometheus.Gatherer                   { return prometheus.NewRegistry() }
func (n *Node) CreateDB(ctx context.Context, name string) error { return errStub }
func (n *Node) DropDB(ctx context.Context, name string) error   { return errStub }
func (n *Node) ListDBs(ctx context.Context) ([]string, error)   { return nil, errStub }
func (n *Node) DB(name string) (*DB, error)                     { return nil, errStub }

func (d *DB) Info(ctx context.Context) (DBInfo, error) { return DBInfo{}, errStub }
func (d *DB) Put(ctx context.Context, id string, body map[string]any, rev string) (Result, error) {
	return Result{}, errStub
}
func (d *DB) Patch(ctx context.Context, id string, p Patch) (Result, error) { return Result{}, errStub }
func (d *DB) Delete(ctx context.Context, id, rev string) (Result, error)    { return Result{}, errStub }
func (d *DB) Bulk(ctx context.Context, docs []DocOp, atomic bool) ([]BulkResult, error) {
	return nil, errStub
}
func (d *DB) Get(ctx context.Context, id string) (Document, error)          { return Document{}, errStub }
func (d *DB) GetPath(ctx context.Context, id, path string) (any, error)     { return nil, errStub }
func (d *DB) List(ctx context.Context, o ListOptions) ([]DocSummary, error) { return nil, errStub }
func (d *DB) History(ctx context.Context, id string) ([]Revision, error)    { return nil, errStub }
func (d *DB) Changes(ctx context.Context, since uint64, limit int) ([]Change, uint64, error) {
	return nil, 0, errStub
}
func (d *DB) WaitChanges(ctx context.Context, since uint64) error     { return errStub }
func (d *DB) Query(ctx context.Context, q Query) (QueryResult, error) { return QueryResult{}, errStub }
