package node

import (
	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/history"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// historyEnv is the database as compaction and purge
// (node/internal/history) read it.
type historyEnv struct{ d *DB }

var _ history.Env = historyEnv{}

func (e historyEnv) Store() *datastore.Store                       { return e.d.store }
func (e historyEnv) Keys() layout.Keys                             { return e.d.keys }
func (e historyEnv) State(doc string) (*crdt.State, uint64, error) { return e.d.readState(doc) }
func (e historyEnv) View(doc string) (*crdt.State, uint64, error)  { return e.d.readView(doc) }
func (e historyEnv) FoldRecord(doc string) (*layout.FoldRecord, error) {
	return e.d.readFoldRecord(doc)
}
func (e historyEnv) Change(id crdt.ID) (*crdt.Change, error) { return e.d.readChange(id) }
func (e historyEnv) FoldWritten()                            { e.d.anyFold.Store(true) }
