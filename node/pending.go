package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
)

// maxPendingTx bounds the received changes a database keeps in all while
// waiting for the rest of their transactions (Config.PendingPeerChanges
// bounds them per peer).
const maxPendingTx = 100_000

// rejectPendingFull is the rejection reason of a transaction change
// refused because its peer already made this database hold
// Config.PendingPeerChanges or PendingPeerBytes (not recorded: the next
// pull offers it again).
const rejectPendingFull = "pending_full"

// pendingMark starts a pending value that records the peer it came from:
// 0x00, uvarint length of the peer id, the peer id, the change's encoding.
// A change's CBOR encoding never starts with 0x00, so a value without the
// mark (written before) is the bare encoding, from an unknown peer.
const pendingMark = 0x00

// pendingUse is what one peer made a database hold pending.
type pendingUse struct {
	n     int
	bytes int64
}

// pendingGroup is a complete transaction read back from its pending keys.
type pendingGroup struct {
	changes []*crdt.Change
	unpend  [][]byte  // its pending keys, deleted with the group's commit
	from    []peer.ID // per change, the peer it came from
	size    []int64   // per change, its pending value's bytes
}

func encodePending(from peer.ID, enc []byte) []byte {
	v := make([]byte, 0, 1+binary.MaxVarintLen64+len(from)+len(enc))
	v = append(v, pendingMark)
	v = binary.AppendUvarint(v, uint64(len(from)))
	v = append(v, from...)
	return append(v, enc...)
}

// decodePendingFrom reads the peer a pending value came from and the
// change's encoding.
func decodePendingFrom(v []byte) (peer.ID, []byte, error) {
	if len(v) == 0 || v[0] != pendingMark {
		return "", v, nil
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n > uint64(len(v)-1-k) {
		return "", nil, errors.New("pending change: corrupt peer")
	}
	from := peer.ID(v[1+k : 1+k+int(n)])
	return from, v[1+k+int(n):], nil
}

// refuseNonWriters records as rejected (reason not_writer or revoked) the
// transaction changes whose author may not write as of the committed ACL,
// before any of them is kept pending, and returns their ids. It decides in
// the writer loop (exclusive), so an ACL change and its reconsideration
// are ordered with it: a grant that commits first is seen, one that
// commits after forgets this rejection like any other. Changes of _acl
// follow their own rule (as of their parents) and are left to the writer.
func (d *DB) refuseNonWriters(ctx context.Context, from peer.ID, changes []*crdt.Change, partial bool) (map[crdt.ID]bool, error) {
	if partial || !slices.ContainsFunc(changes, func(c *crdt.Change) bool { return c.Tx != nil && c.Tx.Count > 1 }) {
		return nil, nil
	}
	a, err := d.currentACL()
	if err != nil {
		return nil, err
	}
	if a.AnyWrite && len(a.Revoked) == 0 {
		return nil, nil // open mode: every author may write
	}
	var suspects []*crdt.Change
	for _, c := range changes {
		if c.Tx != nil && c.Tx.Count > 1 && c.Doc != ACLDocID && a.MayWrite(peer.ID(c.Author), c.Clock) != "" {
			suspects = append(suspects, c)
		}
	}
	if len(suspects) == 0 {
		return nil, nil
	}
	refused := map[crdt.ID]bool{}
	err = d.writer.Exclusive(ctx, func() error {
		a, err := d.currentACL()
		if err != nil {
			return err
		}
		reasons := map[crdt.ID]string{}
		for _, c := range suspects {
			if reason := a.MayWrite(peer.ID(c.Author), c.Clock); reason != "" {
				reasons[c.ID()] = reason
				refused[c.ID()] = true
			}
		}
		return d.writer.Reject(from, reasons)
	})
	if err != nil {
		return nil, fmt.Errorf("refuse changes of non-writers: %w", err)
	}
	return refused, nil
}

// addPending keeps a received change of a transaction on disk until the
// whole transaction is here; memory holds only counts. It returns the
// complete group once the last change came (read back from disk), nil
// before. A peer beyond Config.PendingPeerChanges or PendingPeerBytes, or
// a database holding maxPendingTx, gets ErrOverloaded and nothing is kept.
func (d *DB) addPending(from peer.ID, c *crdt.Change) (*pendingGroup, error) {
	enc, err := c.Encode()
	if err != nil {
		return nil, err
	}
	key := d.keys.Pending(c.Tx.ID, c.ID())
	v := encodePending(from, enc)
	// The store is read and written outside the lock, which guards the
	// counts only: a change is counted (reserved) before it is stored and
	// uncounted if storing fails, and a key being stored by another puller
	// counts as held.
	held, err := d.store.Has(key)
	if err != nil {
		return nil, fmt.Errorf("read pending change: %w", err)
	}
	if !held {
		inflight, err := d.reservePending(from, string(key), int64(len(v)))
		if err != nil {
			return nil, err
		}
		if inflight {
			return nil, nil // the puller storing it hands out the group if it completes one
		}
		b := d.store.NewBatch()
		b.Set(key, v)
		err = b.Commit()
		b.Close()
		d.pendingTx.Lock()
		delete(d.pendingTx.adding, string(key))
		if err != nil {
			d.uncount(from, int64(len(v)))
		} else {
			d.pendingTx.byTx[c.Tx.ID]++ // counted once durable: the group is read back from disk
		}
		d.pendingTx.Unlock()
		if err != nil {
			return nil, fmt.Errorf("keep pending change: %w", err)
		}
	}
	// A duplicate of a complete group (whose apply failed before) hands
	// the group out again.
	d.pendingTx.Lock()
	complete := uint32(d.pendingTx.byTx[c.Tx.ID]) >= c.Tx.Count
	d.pendingTx.Unlock()
	if !complete {
		return nil, nil
	}
	return d.readPendingGroup(c.Tx.ID)
}

// reservePending counts a pending change about to be stored, or answers
// ErrOverloaded past the bounds; inflight is true when another puller is
// storing the same key now (it counted it).
func (d *DB) reservePending(from peer.ID, key string, size int64) (inflight bool, err error) {
	d.pendingTx.Lock()
	defer d.pendingTx.Unlock()
	if d.pendingTx.adding[key] {
		return true, nil
	}
	u := d.pendingTx.byPeer[from]
	if u == nil {
		u = &pendingUse{}
	}
	cfg := d.node.cfg
	if d.pendingTx.n >= maxPendingTx || u.n >= cfg.PendingPeerChanges || u.bytes+size > cfg.PendingPeerBytes {
		d.node.metrics.rejected.WithLabelValues(d.name, rejectPendingFull).Inc()
		return false, fmt.Errorf("%w: %d changes (%d bytes) from %s and %d in all wait for their transactions",
			ErrOverloaded, u.n, u.bytes, from, d.pendingTx.n)
	}
	if d.pendingTx.adding == nil {
		d.pendingTx.adding = map[string]bool{}
	}
	d.pendingTx.adding[key] = true
	d.pendingTx.byPeer[from] = u
	u.n++
	u.bytes += size
	d.pendingTx.n++
	return false, nil
}

// uncount takes back the reservation of a pending change that was not
// stored. The caller holds d.pendingTx.
func (d *DB) uncount(from peer.ID, size int64) {
	d.pendingTx.n--
	if u := d.pendingTx.byPeer[from]; u != nil {
		u.n--
		u.bytes -= size
		if u.n <= 0 {
			delete(d.pendingTx.byPeer, from)
		}
	}
}

// readPendingGroup reads a transaction's pending changes back from disk.
func (d *DB) readPendingGroup(tx string) (*pendingGroup, error) {
	g := &pendingGroup{}
	base := tuple.AppendString(d.keys.Pendings(), tx)
	err := d.store.Range(base, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		from, enc, err := decodePendingFrom(v)
		if err != nil {
			return false, err
		}
		c, err := crdt.Decode(append([]byte(nil), enc...))
		if err != nil || c.Tx == nil || c.Tx.ID != tx {
			return false, fmt.Errorf("pending change: corrupt: %v", err)
		}
		g.changes = append(g.changes, c)
		g.unpend = append(g.unpend, append([]byte(nil), k...))
		g.from = append(g.from, from)
		g.size = append(g.size, int64(len(v)))
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pending transaction: %w", err)
	}
	g.parentsFirst()
	return g, nil
}

// parentsFirst orders the group so that a change comes after those of its
// parents in the group (disk order is by id, not arrival), keeping the
// order otherwise. An honest transaction changes each document once, so
// its changes have no parents among each other; a crafted one may.
func (g *pendingGroup) parentsFirst() {
	at := make(map[crdt.ID]int, len(g.changes))
	for i, c := range g.changes {
		at[c.ID()] = i
	}
	done := make([]bool, len(g.changes))
	order := make([]int, 0, len(g.changes))
	var visit func(i int)
	visit = func(i int) {
		if done[i] {
			return
		}
		done[i] = true
		for _, p := range g.changes[i].Parents {
			if j, ok := at[p]; ok {
				visit(j)
			}
		}
		order = append(order, i)
	}
	for i := range g.changes {
		visit(i)
	}
	changes, unpend, from, size := g.changes, g.unpend, g.from, g.size
	g.changes, g.unpend, g.from, g.size = nil, nil, nil, nil
	for _, i := range order {
		g.changes = append(g.changes, changes[i])
		g.unpend = append(g.unpend, unpend[i])
		g.from = append(g.from, from[i])
		g.size = append(g.size, size[i])
	}
}

// dropPending forgets the counts of a transaction whose group was applied
// (or rejected): its keys went with the group's commit.
func (d *DB) dropPending(tx string, g *pendingGroup) {
	d.pendingTx.Lock()
	defer d.pendingTx.Unlock()
	d.pendingTx.n -= d.pendingTx.byTx[tx]
	delete(d.pendingTx.byTx, tx)
	for i, from := range g.from {
		if u := d.pendingTx.byPeer[from]; u != nil {
			u.n--
			u.bytes -= g.size[i]
			if u.n <= 0 {
				delete(d.pendingTx.byPeer, from)
			}
		}
	}
}

// loadPending counts the pending transaction changes kept before a
// restart. Their bodies stay on disk until their transaction completes.
func (d *DB) loadPending() error {
	d.pendingTx.byTx = map[string]int{}
	d.pendingTx.byPeer = map[peer.ID]*pendingUse{}
	base := d.keys.Pendings()
	return d.store.Range(base, datastore.PrefixEnd(base), false, func(k, v []byte) (bool, error) {
		tx, _, err := tuple.ReadString(k[len(base):])
		if err != nil {
			return false, fmt.Errorf("pending change: corrupt key: %v", err)
		}
		from, _, err := decodePendingFrom(v)
		if err != nil {
			return false, err
		}
		u := d.pendingTx.byPeer[from]
		if u == nil {
			u = &pendingUse{}
			d.pendingTx.byPeer[from] = u
		}
		u.n++
		u.bytes += int64(len(v))
		d.pendingTx.byTx[tx]++
		d.pendingTx.n++
		return true, nil
	})
}
