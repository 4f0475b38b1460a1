package history

import (
	"fmt"
	"slices"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
	"github.com/barrel-db/barrel/index"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/commit"
)

// PurgeDoc adds to b the removal of one document: everything stored under
// its id, its changes (through drops, whose Finish the caller runs before
// committing b) and feed entries, its index entries, and a rejection
// record for each change id it knows (kept changes and the heads of its
// folded base). It returns the document's state (empty when the database
// does not hold it), the number of history entries removed, the number of
// change ids recorded as rejected and the latest
// clock folded into its base (zero without one): old changes of the
// document whose ids are gone with the fold are refused as stale below it
// (commit's isStale), as after a purged tombstone. reason is what the
// rejection records say.
func PurgeDoc(env Env, b *datastore.Batch, drops *changes.Dropper, id, reason string) (st *crdt.State, n, refused int, clock crdt.HLC, err error) {
	keys := env.Keys()
	st, recSeq, err := env.View(id)
	if err != nil || !st.Exists() {
		return st, 0, 0, crdt.HLC{}, err
	}
	refuse := map[crdt.ID]bool{}
	prefix := keys.History(id)
	err = env.Store().Range(prefix, datastore.PrefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		seq, _, err := tuple.ReadUint64(k[len(prefix):])
		if err != nil {
			return false, fmt.Errorf("history of %s: corrupt entry", id)
		}
		cid, err := changes.HistoryID(env.Store().Get, keys, seq, v)
		if err != nil {
			return false, fmt.Errorf("history of %s: %w", id, err)
		}
		if err := drops.Drop(b, cid); err != nil {
			return false, err
		}
		b.Delete(keys.Feed(seq))
		b.Delete(slices.Clone(k))
		refuse[cid] = true
		n++
		return true, nil
	})
	if err != nil {
		return nil, 0, 0, crdt.HLC{}, err
	}
	b.Delete(keys.Feed(recSeq)) // compaction keeps the latest entry without its history key
	fold, err := env.FoldRecord(id)
	if err != nil {
		return nil, 0, 0, crdt.HLC{}, err
	}
	if fold != nil {
		base, err := crdt.DecodeView(fold.Base)
		if err != nil {
			return nil, 0, 0, crdt.HLC{}, fmt.Errorf("purge %s: base: %w", id, err)
		}
		for _, h := range base.Heads {
			refuse[h] = true
		}
		clock = fold.Clock
		b.Delete(keys.Fold(id))
	}
	for _, h := range st.Heads {
		refuse[h] = true
	}
	for cid := range refuse {
		b.Set(keys.Rejected(cid), []byte(reason))
	}
	del, _ := index.Diff(keys.Index(), id, commit.LiveBody(st), nil)
	for _, k := range del {
		b.Delete(k)
	}
	b.Delete(keys.Doc(id))
	return st, n, len(refuse), clock, nil
}
