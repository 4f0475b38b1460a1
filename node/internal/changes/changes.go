// Package changes stores a database's changes: each under its id, either
// whole (its signed encoding) or, when its whole signing group is stored in
// the same batch, as a member of the group, whose record holds the
// signature and the leaves once (layout.ChangeRecord, layout.GroupRecord).
//
// A group of 64 changes signed together carries, in each change, the same
// 64-byte signature and a Merkle proof of six 32-byte hashes: about 270
// bytes of a 500-byte change, which a member record leaves out and a
// reader rebuilds from the group's leaves (crdt.Tree). A reader always gets
// the signed encoding back, byte for byte, so peers receive what they
// would receive from a store of whole records.
package changes

import (
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Stored is a change about to be stored: its signed encoding, and the local
// seq its feed entry has.
type Stored struct {
	Change *crdt.Change
	Enc    []byte
	Seq    uint64
}

// Write adds the records of cs, all new to the database and stored by one
// batch, to b. Those that make up a whole signing group (every leaf of it
// is in cs, signed by the same author with the same signature) are written
// as members of one group record, keyed by the seq of its first member in
// cs; every other change is written whole.
func Write(b *datastore.Batch, keys layout.Keys, cs []Stored) {
	groups := map[string][]int{} // signature -> indexes in cs
	var order []string
	for i, s := range cs {
		if len(s.Change.Proof) == 0 {
			continue
		}
		k := string(s.Change.Sig)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	member := make([]bool, len(cs))
	for _, k := range order {
		idx := groups[k]
		rec, ok := wholeGroup(cs, idx)
		if !ok {
			continue
		}
		group := cs[idx[0]].Seq
		recs := make([][]byte, len(idx))
		for j, i := range idx {
			r, err := layout.MemberRecord(group, cs[i].Change, cs[i].Enc)
			if err != nil {
				ok = false
				break
			}
			recs[j] = r
		}
		if !ok {
			continue
		}
		enc, err := crdt.Marshal(rec)
		if err != nil {
			continue
		}
		b.Set(keys.Group(group), enc)
		for j, i := range idx {
			b.Set(keys.Change(cs[i].Change.ID()), recs[j])
			member[i] = true
		}
	}
	for i, s := range cs {
		if !member[i] {
			b.Set(keys.Change(s.Change.ID()), s.Enc)
		}
	}
}

// wholeGroup returns the group record of the changes cs[idx] when they are
// every leaf of their signing group: one author, one depth, distinct
// leaves, and the tree of their ids (zero ids elsewhere) has the root their
// signature covers.
func wholeGroup(cs []Stored, idx []int) (*layout.GroupRecord, bool) {
	first := cs[idx[0]].Change
	depth := len(first.Proof)
	if len(idx) < 2 || depth > crdt.MaxProof {
		return nil, false
	}
	leaves := make([]crdt.ID, 1<<depth)
	seen := make([]bool, 1<<depth)
	n := 0
	for _, i := range idx {
		c := cs[i].Change
		if len(c.Proof) != depth || string(c.Author) != string(first.Author) || int(c.Leaf) >= len(leaves) || seen[c.Leaf] {
			return nil, false
		}
		seen[c.Leaf], leaves[c.Leaf] = true, c.ID()
		n = max(n, int(c.Leaf)+1)
	}
	if string(crdt.NewTree(leaves, depth).Message()) != string(first.SignedMessage()) {
		return nil, false // a leaf of the group is not here (or is not a zero id)
	}
	return &layout.GroupRecord{Sig: first.Sig, Depth: uint8(depth), Leaves: leaves[:n]}, true
}

// Getter reads a key of the store or of a snapshot of it; a missing key is
// an error wrapping datastore.ErrNotFound.
type Getter func(key []byte) ([]byte, error)

// Reader reads change records through get. It keeps the trees of the
// groups it read, so reading many members of one group rebuilds its tree
// once: it is for one call (one page of bodies), not safe for concurrent
// use, and holds at most maxTrees.
type Reader struct {
	get   Getter
	keys  layout.Keys
	trees map[uint64]*group
}

type group struct {
	rec  *layout.GroupRecord
	tree *crdt.Tree
}

const maxTrees = 64

// NewReader returns a reader of the database's changes through get.
func NewReader(keys layout.Keys, get Getter) *Reader { return &Reader{get: get, keys: keys} }

// Encoded returns the signed encoding of change id, or an error wrapping
// datastore.ErrNotFound when the database does not hold it.
func (r *Reader) Encoded(id crdt.ID) ([]byte, error) {
	v, err := r.get(r.keys.Change(id))
	if err != nil {
		return nil, err
	}
	cr, err := layout.ParseChangeRecord(v)
	if err != nil {
		return nil, fmt.Errorf("change %s: %w", id, err)
	}
	if cr.Whole != nil {
		return cr.Whole, nil
	}
	g, err := r.group(cr.Group)
	if errors.Is(err, datastore.ErrNotFound) {
		// Its group's record goes in the batch that deletes its last
		// member: had this member been deleted since it was read, the
		// change is gone. Else the store lost a record.
		if _, gerr := r.get(r.keys.Change(id)); errors.Is(gerr, datastore.ErrNotFound) {
			return nil, gerr
		}
		return nil, fmt.Errorf("change %s: %w: its group %d has no record", id, layout.ErrCorruptRecord, cr.Group)
	}
	if err != nil {
		return nil, fmt.Errorf("change %s: %w", id, err)
	}
	if int(cr.Leaf) >= len(g.rec.Leaves) || g.rec.Leaves[cr.Leaf] != id {
		return nil, fmt.Errorf("change %s: %w: not leaf %d of group %d", id, layout.ErrCorruptRecord, cr.Leaf, cr.Group)
	}
	return cr.Signed(g.rec.Sig, g.tree.Proof(cr.Leaf))
}

// Change returns change id decoded.
func (r *Reader) Change(id crdt.ID) (*crdt.Change, error) {
	enc, err := r.Encoded(id)
	if err != nil {
		return nil, err
	}
	c, err := crdt.Decode(enc)
	if err != nil {
		return nil, fmt.Errorf("change %s: %w", id, err)
	}
	if c.ID() != id {
		return nil, fmt.Errorf("change %s: %w: its record holds change %s", id, layout.ErrCorruptRecord, c.ID())
	}
	return c, nil
}

func (r *Reader) group(key uint64) (*group, error) {
	if g, ok := r.trees[key]; ok {
		return g, nil
	}
	v, err := r.get(r.keys.Group(key))
	if err != nil {
		return nil, err
	}
	rec, err := layout.ParseGroupRecord(v)
	if err != nil {
		return nil, err
	}
	g := &group{rec: rec, tree: crdt.NewTree(rec.Leaves, int(rec.Depth))}
	if r.trees == nil || len(r.trees) >= maxTrees {
		r.trees = map[uint64]*group{}
	}
	r.trees[key] = g
	return g, nil
}

// Dropper deletes changes in one batch, and with them the record of every
// group whose members are then all gone. It reads the store as committed
// before the batch: a deleter runs alone on the database (the writer's
// exclusive jobs), and calls Finish before committing.
type Dropper struct {
	store   *datastore.Store
	keys    layout.Keys
	gone    map[crdt.ID]bool
	touched []uint64
	seen    map[uint64]bool
}

// NewDropper returns a dropper of the database's changes.
func NewDropper(store *datastore.Store, keys layout.Keys) *Dropper {
	return &Dropper{store: store, keys: keys, gone: map[crdt.ID]bool{}, seen: map[uint64]bool{}}
}

// Drop adds the deletion of change id to b (nothing when it is not held).
func (d *Dropper) Drop(b *datastore.Batch, id crdt.ID) error {
	if d.gone[id] {
		return nil
	}
	v, err := d.store.Get(d.keys.Change(id))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cr, err := layout.ParseChangeRecord(v)
	if err != nil {
		return fmt.Errorf("change %s: %w", id, err)
	}
	d.gone[id] = true
	b.Delete(d.keys.Change(id))
	if cr.Whole == nil && !d.seen[cr.Group] {
		d.seen[cr.Group] = true
		d.touched = append(d.touched, cr.Group)
	}
	return nil
}

// Finish adds to b the deletion of the records of the groups Drop left
// without a member.
func (d *Dropper) Finish(b *datastore.Batch) error {
	for _, key := range d.touched {
		v, err := d.store.Get(d.keys.Group(key))
		if errors.Is(err, datastore.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		rec, err := layout.ParseGroupRecord(v)
		if err != nil {
			return err
		}
		live := false
		for _, leaf := range rec.Leaves {
			if leaf == (crdt.ID{}) || d.gone[leaf] {
				continue
			}
			if live, err = d.store.Has(d.keys.Change(leaf)); err != nil {
				return err
			}
			if live {
				break
			}
		}
		if !live {
			b.Delete(d.keys.Group(key))
		}
	}
	d.touched = d.touched[:0]
	return nil
}

// HistoryID returns the change a history entry names: the entry at local
// seq with value v. Format 1 wrote the change id as the value; format 2
// writes none, since the feed entry at the same seq names the change
// already (every history entry has its feed entry: they are written and
// deleted together), and reads it from there through get.
func HistoryID(get Getter, keys layout.Keys, seq uint64, v []byte) (crdt.ID, error) {
	var id crdt.ID
	switch len(v) {
	case len(id):
		copy(id[:], v)
		return id, nil
	case 0:
	default:
		return id, fmt.Errorf("%w: history entry at seq %d of %d bytes", layout.ErrCorruptRecord, seq, len(v))
	}
	fv, err := get(keys.Feed(seq))
	if errors.Is(err, datastore.ErrNotFound) {
		return id, fmt.Errorf("%w: history entry at seq %d has no feed entry", layout.ErrCorruptRecord, seq)
	}
	if err != nil {
		return id, err
	}
	var fe layout.FeedEntry
	if err := crdt.Unmarshal(fv, &fe); err != nil {
		return id, fmt.Errorf("%w: feed entry at seq %d: %v", layout.ErrCorruptRecord, seq, err)
	}
	return fe.Rev, nil
}
