package sync

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/barrel-db/barrel/crdt"
)

// Range-based set reconciliation (protocol version 2, docs/sync-protocol.md).
//
// The reconciled set is one item per document a database holds (deleted
// ones included): the pair (document id, its sorted heads). Not the set of
// change ids: compaction folds old changes into a base and drops their
// bodies, so two converged peers, one compacted, hold different change
// sets but the same heads. An item's key is the first 64 bits of a hash of
// the document id, so keys spread evenly and a range is a prefix of
// nibbles of the key: the 16 sub-ranges of a range are its prefix followed
// by one more nibble. A range's fingerprint is its count of items and the
// sum (two 64-bit lanes, modulo 2^64) of its items' 128-bit hashes, so it
// is maintained incrementally: adding or removing an item adds or
// subtracts its hash from the ranges that contain it.

// ReconStore is an optional interface of a Store: a Store that implements
// it is served and pulled with protocol version 2 (ReconProtocolID).
type ReconStore interface {
	Store
	// ReconIndex returns db's index caught up with its feed, and the feed
	// sequence it reflects: every change the db held at that sequence is
	// a head, or an ancestor of a head, of an item of the index. The index
	// stays owned by the store; the caller only reads it.
	ReconIndex(ctx context.Context, db string) (*ReconIndex, uint64, error)
	// Heads returns the current heads of each document (nil for one the db
	// no longer holds), in the order asked.
	Heads(ctx context.Context, db string, docs []string) ([][]crdt.ID, error)
}

// ReconReadiness is what a ReconStore may also implement: whether db's
// set is built, so that ReconIndex would answer without scanning the
// database first. A session that would wait for the scan does not: the
// server answers ErrReconNotReady, and a client with a checkpoint lists
// the server's feed after it instead (W4: a reconnecting peer's first
// sessions waited 0.2-0.5 s for the scan of 100,000 documents to move 200).
// A store that does not implement it is always ready.
type ReconReadiness interface {
	ReconReady(db string) bool
}

// reconReady reports whether store's set of db is built.
func reconReady(store ReconStore, db string) bool {
	r, ok := store.(ReconReadiness)
	return !ok || r.ReconReady(db)
}

// Reconciliation constants. Part of the wire format where noted.
const (
	// MaxReconDepth is the deepest range prefix, in nibbles (wire).
	MaxReconDepth = 15
	// reconIndexDepth is the depth of the index's buckets: 16^3 = 4096.
	reconIndexDepth = 3
	// ReconLeafItems: a differing range the server holds at most this many
	// items of is compared item by item instead of split.
	ReconLeafItems = 16
	// MaxLeafItems bounds the item hashes of one leaf, either side (wire).
	MaxLeafItems = 64
	// MaxReconRanges bounds the ranges (splits and leaves) of one Recon
	// request (wire).
	MaxReconRanges = 1024
	// MaxEntryHeads bounds the heads of one listed document (wire).
	MaxEntryHeads = MaxWantIDs
	// shortHashBytes is the size of an item's salted hash at a leaf
	// (wire), fpBytes of a range's salted fingerprint.
	shortHashBytes = 6
	saltBytes      = 8
)

// Range is a range of item keys: the keys whose first Depth nibbles are
// Path (Path holds Depth nibbles in its low bits).
type Range struct {
	Depth uint8
	Path  uint64
}

// contains reports whether key is in r.
func (r Range) contains(key uint64) bool {
	if r.Depth == 0 {
		return true
	}
	return key>>(64-4*uint(r.Depth)) == r.Path
}

// child is r's i-th sub-range.
func (r Range) child(i int) Range { return Range{Depth: r.Depth + 1, Path: r.Path<<4 | uint64(i)} }

// valid reports whether r names a range.
func (r Range) valid() bool {
	return r.Depth <= MaxReconDepth && r.Path>>(4*uint(r.Depth)) == 0
}

// Fingerprint summarizes the items of a range: their count and the sum of
// their hashes.
type Fingerprint struct {
	Count uint64
	Sum   [2]uint64
}

func (f *Fingerprint) add(it reconItem) {
	f.Count++
	f.Sum[0] += it.a
	f.Sum[1] += it.b
}

func (f *Fingerprint) sub(it reconItem) {
	f.Count--
	f.Sum[0] -= it.a
	f.Sum[1] -= it.b
}

// wire is the fingerprint as a session sends it: 32 bits of a hash of the
// session's salt, the range and the fingerprint. Salting makes a
// collision (two different sets that compare equal) a matter of one
// session: the next, with another salt, finds the difference.
func (f Fingerprint) wire(salt []byte, r Range) uint32 {
	var b [saltBytes + 1 + 8 + 8 + 16]byte
	copy(b[:], salt)
	b[saltBytes] = r.Depth
	binary.BigEndian.PutUint64(b[saltBytes+1:], r.Path)
	binary.BigEndian.PutUint64(b[saltBytes+9:], f.Count)
	binary.BigEndian.PutUint64(b[saltBytes+17:], f.Sum[0])
	binary.BigEndian.PutUint64(b[saltBytes+25:], f.Sum[1])
	s := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(s[:4])
}

// reconItem is one document of the set: its key and its hash.
type reconItem struct{ key, a, b uint64 }

// short is the item's salted hash at a leaf.
func (it reconItem) short(salt []byte) [shortHashBytes]byte {
	var b [saltBytes + 16]byte
	copy(b[:], salt)
	binary.BigEndian.PutUint64(b[saltBytes:], it.a)
	binary.BigEndian.PutUint64(b[saltBytes+8:], it.b)
	s := sha256.Sum256(b[:])
	var out [shortHashBytes]byte
	copy(out[:], s[:])
	return out
}

// reconKey is the key of a document's item.
func reconKey(doc string) uint64 {
	h := sha256.New()
	h.Write([]byte("barrel/recon/key\x00"))
	h.Write([]byte(doc))
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// newItem returns the item of a document with the given heads (sorted
// here: a copy is sorted, heads is not changed).
func newItem(doc string, heads []crdt.ID) reconItem {
	hs := slices.Clone(heads)
	slices.SortFunc(hs, func(x, y crdt.ID) int { return slices.Compare(x[:], y[:]) })
	h := sha256.New()
	h.Write([]byte("barrel/recon/item\x00"))
	h.Write([]byte(doc))
	h.Write([]byte{0})
	for _, id := range hs {
		h.Write(id[:])
	}
	s := h.Sum(nil)
	return reconItem{key: reconKey(doc), a: binary.BigEndian.Uint64(s[:8]), b: binary.BigEndian.Uint64(s[8:16])}
}

// ReconIndex is the reconciliation set of one database, kept up to date
// by its store: one item per document in 4096 buckets by key, and the
// fingerprint of every range of depth 0 to 3, so the fingerprint of those
// ranges costs nothing per session and that of a deeper one a scan of
// one bucket. It is safe for concurrent use. Memory: about 60 bytes plus
// the id per document, and 1,365 fingerprints.
type ReconIndex struct {
	mu struct {
		sync.Mutex
		buckets [1 << (4 * reconIndexDepth)]map[string]reconItem
		levels  [reconIndexDepth + 1][]Fingerprint // level l: 16^l ranges
		n       int
		seq     uint64 // the store's bookkeeping: the feed seq the index reflects
	}
}

// NewReconIndex returns an empty index.
func NewReconIndex() *ReconIndex {
	x := new(ReconIndex)
	for l := range x.mu.levels {
		x.mu.levels[l] = make([]Fingerprint, 1<<(4*l))
	}
	return x
}

// Put sets a document's heads (none: the document is removed).
func (x *ReconIndex) Put(doc string, heads []crdt.ID) {
	if len(heads) == 0 {
		x.Remove(doc)
		return
	}
	it := newItem(doc, heads)
	x.mu.Lock()
	defer x.mu.Unlock()
	bi := it.key >> (64 - 4*reconIndexDepth)
	b := x.mu.buckets[bi]
	if b == nil {
		b = map[string]reconItem{}
		x.mu.buckets[bi] = b
	}
	if old, ok := b[doc]; ok {
		if old == it {
			return
		}
		x.updateLocked(old, false)
	} else {
		x.mu.n++
	}
	b[doc] = it
	x.updateLocked(it, true)
}

// Remove drops a document.
func (x *ReconIndex) Remove(doc string) {
	key := reconKey(doc)
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.mu.buckets[key>>(64-4*reconIndexDepth)]
	old, ok := b[doc]
	if !ok {
		return
	}
	delete(b, doc)
	x.mu.n--
	x.updateLocked(old, false)
}

func (x *ReconIndex) updateLocked(it reconItem, add bool) {
	for l := range x.mu.levels {
		i := uint64(0)
		if l > 0 {
			i = it.key >> (64 - 4*uint(l))
		}
		if add {
			x.mu.levels[l][i].add(it)
		} else {
			x.mu.levels[l][i].sub(it)
		}
	}
}

// Len is the number of documents in the index.
func (x *ReconIndex) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.mu.n
}

// Seq and SetSeq keep the store's note of the feed sequence the index
// reflects; the index itself does not interpret it.
func (x *ReconIndex) Seq() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.mu.seq
}

// SetSeq records the feed sequence the index reflects.
func (x *ReconIndex) SetSeq(seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.mu.seq = seq
}

// Fingerprint returns the fingerprint of r.
func (x *ReconIndex) Fingerprint(r Range) Fingerprint {
	x.mu.Lock()
	defer x.mu.Unlock()
	if int(r.Depth) <= reconIndexDepth {
		return x.mu.levels[r.Depth][r.Path]
	}
	var f Fingerprint
	for _, it := range x.mu.buckets[r.Path>>(4*(uint(r.Depth)-reconIndexDepth))] {
		if r.contains(it.key) {
			f.add(it)
		}
	}
	return f
}

// Children returns the fingerprints of r's 16 sub-ranges, in one pass
// over a bucket when they are deeper than the stored levels.
func (x *ReconIndex) Children(r Range) [16]Fingerprint {
	var out [16]Fingerprint
	if int(r.Depth) < reconIndexDepth {
		x.mu.Lock()
		defer x.mu.Unlock()
		copy(out[:], x.mu.levels[r.Depth+1][r.Path<<4:r.Path<<4+16])
		return out
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	shift := 64 - 4*uint(r.Depth+1)
	for _, it := range x.mu.buckets[r.Path>>(4*(uint(r.Depth)-reconIndexDepth))] {
		if r.contains(it.key) {
			out[(it.key>>shift)&15].add(it)
		}
	}
	return out
}

// reconDoc is one item with its document id.
type reconDoc struct {
	doc string
	it  reconItem
}

// items returns r's items, or ok false (and none) when it has more than
// max.
func (x *ReconIndex) items(r Range, max int) (out []reconDoc, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if int(r.Depth) <= reconIndexDepth && x.mu.levels[r.Depth][r.Path].Count > uint64(max) {
		return nil, false
	}
	var lo, hi uint64 // the buckets r spans
	if int(r.Depth) <= reconIndexDepth {
		shift := 4 * (reconIndexDepth - uint(r.Depth))
		lo, hi = r.Path<<shift, (r.Path+1)<<shift
	} else {
		lo = r.Path >> (4 * (uint(r.Depth) - reconIndexDepth))
		hi = lo + 1
	}
	for bi := lo; bi < hi; bi++ {
		for doc, it := range x.mu.buckets[bi] {
			if !r.contains(it.key) {
				continue
			}
			if len(out) == max {
				return nil, false
			}
			out = append(out, reconDoc{doc: doc, it: it})
		}
	}
	slices.SortFunc(out, func(a, b reconDoc) int { return cmpUint(a.it.key, b.it.key) })
	return out, true
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
