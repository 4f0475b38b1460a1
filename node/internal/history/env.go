package history

import (
	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Env is what compaction and purge read of their database: the store as
// committed, its key layout, and the hook that says a fold record is about
// to be written. node's DB implements it (node/history_env.go).
type Env interface {
	Store() *datastore.Store
	Keys() layout.Keys
	State(doc string) (*crdt.State, uint64, error) // the full state and its record's seq; crdt.NewState() when absent
	View(doc string) (*crdt.State, uint64, error)  // the same without merge bookkeeping
	FoldRecord(doc string) (*layout.FoldRecord, error)
	Change(id crdt.ID) (*crdt.Change, error)
	FoldWritten() // a fold record is in a batch about to commit
}
