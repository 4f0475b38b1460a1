package node

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// Replication is a database's replication setting. The zero value
// replicates the whole database with every peer that holds one of the same
// name.
type Replication struct {
	Off      bool   // do not replicate this database
	IDPrefix string // partial view: only documents whose id has this prefix
	Where    []Cond // partial view: only documents matching every condition
}

// replMeta is Replication as stored in the catalog.
type replMeta struct {
	_        struct{} `cbor:",toarray"`
	Off      bool
	IDPrefix string
	Where    []storedCond
}

// storedCond is one condition of a stored replication filter: a CBOR
// array [path, op, value]. It is node's own type, not the sync protocol's
// bsync.Cond (which had the same encoding when settings were first
// stored), so a change to the wire cannot change what a data dir holds;
// filter converts to the wire type at the edge.
type storedCond struct {
	_     struct{} `cbor:",toarray"`
	Path  string
	Op    string
	Value any
}

func (r Replication) filter() *bsync.Filter {
	if r.IDPrefix == "" && len(r.Where) == 0 {
		return nil
	}
	f := &bsync.Filter{IDPrefix: r.IDPrefix}
	for _, c := range r.Where {
		f.Where = append(f.Where, bsync.Cond{Path: c.Path, Op: c.Op, Value: c.Value})
	}
	return f
}

func (r Replication) meta() *replMeta {
	m := &replMeta{Off: r.Off, IDPrefix: r.IDPrefix}
	for _, c := range r.Where {
		m.Where = append(m.Where, storedCond{Path: c.Path, Op: c.Op, Value: c.Value})
	}
	return m
}

func (m *replMeta) replication() Replication {
	if m == nil {
		return Replication{}
	}
	r := Replication{Off: m.Off, IDPrefix: m.IDPrefix}
	for _, c := range m.Where {
		v, _ := crdt.Normalize(c.Value)
		r.Where = append(r.Where, Cond{Path: c.Path, Op: c.Op, Value: v})
	}
	return r
}

// replication holds a database's current setting; read without locks.
type replication = atomic.Pointer[Replication]

// Replication returns the database's replication setting.
func (d *DB) Replication() Replication {
	if r := d.repl.Load(); r != nil {
		return *r
	}
	return Replication{}
}

// SetReplication changes a database's replication setting and persists it.
// A filter makes the database a partial view: it pulls only matching
// documents from now on (documents it already holds stay).
func (n *Node) SetReplication(ctx context.Context, name string, r Replication) error {
	d, err := n.DB(name)
	if err != nil {
		return err
	}
	if _, err := d.filterFunc(r.filter()); err != nil {
		return err
	}
	for i, c := range r.Where {
		v, err := crdt.Normalize(c.Value)
		if err != nil {
			return invalid("query", "filter: %v", err)
		}
		r.Where[i].Value = v
	}
	was, err := n.storeReplication(d, r)
	if err != nil {
		return err
	}
	switch {
	case was.Off && !r.Off:
		n.joinNetwork(name)
	case !was.Off && r.Off:
		n.leaveNetwork(name)
	}
	n.replicationChanged() // watchers show the new setting
	return nil
}

// storeReplication persists and installs a setting; it returns the old one.
func (n *Node) storeReplication(d *DB, r Replication) (Replication, error) {
	name := d.name
	n.mu.Lock()
	defer n.mu.Unlock()
	meta, err := crdt.Marshal(&dbMeta{ID: d.id, Created: d.created, Repl: r.meta()})
	if err != nil {
		return Replication{}, fmt.Errorf("set replication of %s: %w", name, err)
	}
	b := n.store.NewBatch()
	defer b.Close()
	b.Set(layout.CatalogKey(name), meta)
	if err := b.Commit(); err != nil {
		return Replication{}, fmt.Errorf("set replication of %s: %w", name, err)
	}
	was := d.Replication()
	d.repl.Store(&r)
	return was, nil
}
