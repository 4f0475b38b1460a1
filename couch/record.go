package couch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// A record is what this node has shown CouchDB clients of one document:
// the revision tree they hold of it, as far as barrel needs it. barrel's
// documents are merged states with a set of heads, not revision trees, so
// the tree is made here and kept (a local record, never replicated):
//
//   - the current revision stands for the document at Heads. When the
//     heads move (a local write, a replicated change, a merge), the next
//     revision is a child of the current one: a linear history, so a
//     client that pulls sees an edit of the revision it has, never a
//     conflict, whatever barrel merged;
//   - a revision a client pushed becomes the current one when its change
//     is the only head after the write (no concurrent change), so the
//     client has nothing to pull back;
//   - a pushed revision that was merged with concurrent changes stays a
//     leaf in that client's tree; it is closed by a deleted child
//     (Closed), which the client pulls with the merged revision, so it is
//     left with one live leaf: the merged document. The losing values of
//     the merge stay in barrel's _conflicts.
//
// docs/couch-protocol.md has the whole design.
type record struct {
	Gen     uint64   `json:"g"`
	Hash    string   `json:"h"`
	Heads   []string `json:"s,omitempty"` // the barrel heads the current revision stands for
	Deleted bool     `json:"d,omitempty"` // the current revision is a tombstone
	Anc     []string `json:"a,omitempty"` // hashes of generations Gen-1, Gen-2, ...: the current revision's ancestry
	Known   []known  `json:"k,omitempty"` // earlier revisions and the heads they stood for, newest first
	Closed  []closed `json:"c,omitempty"` // deleted leaves that close merged branches, newest first
}

// known is a revision a client may still edit from: its edit's base.
type known struct {
	Rev   string   `json:"r"`
	Heads []string `json:"s,omitempty"`
}

// closed is a deleted leaf, child of a branch barrel merged.
type closed struct {
	Gen  uint64   `json:"g"`
	Hash string   `json:"h"`
	Anc  []string `json:"a"` // hashes from the parent down
}

// Bounds of a record: the ancestry sent as _revisions, the revisions
// remembered as edit bases and the closing leaves kept. A client whose
// base was forgotten writes a detached change (merged, nothing lost); a
// client that never pulled a forgotten closing leaf keeps that branch as
// a conflict, as with CouchDB's revs_limit.
const (
	keepAncestry = 100
	keepKnown    = 16
	keepClosed   = 32
	closedAnc    = 8
)

func (r *record) rev() string { return Rev{Gen: r.Gen, Hash: r.Hash}.String() }

// revisions is the current revision's _revisions.
func (r *record) revisions() Revisions {
	return Revisions{Start: r.Gen, IDs: append([]string{r.Hash}, r.Anc...)}
}

func (c closed) rev() string { return Rev{Gen: c.Gen, Hash: c.Hash}.String() }

func (c closed) revisions() Revisions {
	return Revisions{Start: c.Gen, IDs: append([]string{c.Hash}, c.Anc...)}
}

// leaves are the revisions a client replicating everything ends with:
// the current one, then the closing leaves.
func (r *record) leaves() []string {
	out := []string{r.rev()}
	for _, c := range r.Closed {
		out = append(out, c.rev())
	}
	return out
}

// has reports whether the client-visible tree holds rev: the current
// revision or an ancestor, a known revision, a closing leaf or one of
// its ancestors.
func (r *record) has(v Rev) bool {
	if r == nil {
		return false
	}
	if inChain(r.Gen, r.Hash, r.Anc, v) {
		return true
	}
	s := v.String()
	for _, k := range r.Known {
		if k.Rev == s {
			return true
		}
	}
	for _, c := range r.Closed {
		if inChain(c.Gen, c.Hash, c.Anc, v) {
			return true
		}
	}
	return false
}

// inChain: v is the revision gen-hash or one of its listed ancestors.
func inChain(gen uint64, hash string, anc []string, v Rev) bool {
	if v.Gen > gen {
		return false
	}
	if v.Gen == gen {
		return v.Hash == hash
	}
	i := gen - v.Gen - 1
	return i < uint64(len(anc)) && anc[i] == v.Hash
}

// base returns the heads a client's edit was made on: those of the first
// of its ancestors this record knows the heads of. ok is false when none
// is known: the edit is detached.
func (r *record) base(ancestors []Rev) (heads []string, ok bool) {
	if r == nil {
		return nil, false
	}
	for _, a := range ancestors {
		s := a.String()
		if s == r.rev() {
			return r.Heads, true
		}
		for _, k := range r.Known {
			if k.Rev == s {
				return k.Heads, true
			}
		}
	}
	return nil, false
}

// present returns the record for the document at heads (deleted when it
// is a tombstone): r itself when it already stands for them, else r with
// the next revision. A nil r is a document no client was shown yet.
func present(r *record, heads []string, deleted bool) (*record, bool) {
	heads = sortedHeads(heads)
	if r == nil {
		return &record{Gen: 1, Hash: revHash("", heads), Heads: heads, Deleted: deleted}, true
	}
	if slices.Equal(r.Heads, heads) && r.Deleted == deleted {
		return r, false
	}
	n := &record{
		Gen:     r.Gen + 1,
		Hash:    revHash(r.rev(), heads),
		Heads:   heads,
		Deleted: deleted,
		Anc:     bound(append([]string{r.Hash}, r.Anc...), keepAncestry),
		Known:   remember(r.Known, known{Rev: r.rev(), Heads: r.Heads}),
		Closed:  r.Closed,
	}
	return n, true
}

// pushed returns the record after a client's revision v (ancestry anc:
// the hashes of v's ancestors, parent first) was written as barrel
// change c, leaving the document at heads (deleted: a tombstone). c is ""
// when nothing was written (a tombstone of a document this node never
// had).
func pushed(r *record, v Rev, anc []string, c string, heads []string, deleted bool) *record {
	heads = sortedHeads(heads)
	var prev []known
	var prevClosed []closed
	if r != nil {
		prev = remember(r.Known, known{Rev: r.rev(), Heads: r.Heads})
		prevClosed = r.Closed
	}
	if c == "" || slices.Equal(heads, []string{c}) {
		// No concurrent change: v is the document as barrel has it.
		n := &record{Gen: v.Gen, Hash: v.Hash, Heads: heads, Deleted: deleted,
			Anc: bound(slices.Clone(anc), keepAncestry), Known: prev, Closed: prevClosed}
		if r != nil && !inChain(v.Gen, v.Hash, anc, Rev{Gen: r.Gen, Hash: r.Hash}) && len(r.Heads) > 0 {
			// What was current is merged into v (v saw every head): close it.
			n.Closed = closeLeaf(n.Closed, Rev{Gen: r.Gen, Hash: r.Hash}, r.Anc)
		}
		return n
	}
	// v was merged with concurrent changes: remember it as c's revision,
	// close its branch, and move the current revision on to the merge.
	cur := r
	if cur == nil {
		cur = &record{}
	} else {
		cur = &record{Gen: r.Gen, Hash: r.Hash, Heads: r.Heads, Deleted: r.Deleted, Anc: r.Anc, Known: r.Known, Closed: r.Closed}
	}
	cur.Known = remember(cur.Known, known{Rev: v.String(), Heads: []string{c}})
	cur.Closed = closeLeaf(cur.Closed, v, anc)
	if r == nil {
		n, _ := present(nil, heads, deleted)
		n.Known, n.Closed = cur.Known, cur.Closed
		return n
	}
	n, _ := present(cur, heads, deleted)
	return n
}

// closeLeaf adds the deleted child of v (ancestry anc) to cl, unless it
// is there.
func closeLeaf(cl []closed, v Rev, anc []string) []closed {
	c := closed{Gen: v.Gen + 1, Hash: revHash("close "+v.String(), nil), Anc: bound(append([]string{v.Hash}, anc...), closedAnc)}
	for _, x := range cl {
		if x.Hash == c.Hash && x.Gen == c.Gen {
			return cl
		}
	}
	return bound(append([]closed{c}, cl...), keepClosed)
}

// remember puts k first in ks (once), keeping keepKnown.
func remember(ks []known, k known) []known {
	out := []known{k}
	for _, x := range ks {
		if x.Rev != k.Rev {
			out = append(out, x)
		}
	}
	return bound(out, keepKnown)
}

func bound[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n:n]
	}
	return s
}

// revHash is the hash part of a revision barrel makes: a function of its
// parent and the heads it stands for, so every node that made the same
// step names it alike.
func revHash(parent string, heads []string) string {
	h := sha256.Sum256([]byte(parent + "\n" + strings.Join(heads, ",")))
	return hex.EncodeToString(h[:16])
}

func sortedHeads(h []string) []string {
	out := slices.Clone(h)
	slices.Sort(out)
	return slices.Compact(out)
}

func decodeRecord(v []byte) (*record, error) {
	r := new(record)
	if err := json.Unmarshal(v, r); err != nil {
		return nil, fmt.Errorf("couch revision record: %w", err)
	}
	return r, nil
}

func (r *record) encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // strings, slices and numbers only
	}
	return b
}
