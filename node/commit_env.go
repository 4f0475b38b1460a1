package node

import (
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/commit"
	"github.com/barrel-db/barrel/node/internal/layout"
	"github.com/libp2p/go-libp2p/core/peer"
)

// commitEnv is what the database's writer (node/internal/commit) reads of
// the database and calls back into it: the database seen from its commit
// pipeline, kept apart so that DB's public API does not grow its methods.
type commitEnv struct{ d *DB }

var _ commit.Env = commitEnv{}

func (e commitEnv) Name() string            { return e.d.name }
func (e commitEnv) Author() peer.ID         { return e.d.node.peerID }
func (e commitEnv) Signer() crdt.Signer     { return e.d.node.key }
func (e commitEnv) Clock() *crdt.Clock      { return &e.d.clock }
func (e commitEnv) Now() time.Time          { return e.d.node.cfg.Now() }
func (e commitEnv) Store() *datastore.Store { return e.d.store }
func (e commitEnv) Keys() layout.Keys       { return e.d.keys }
func (e commitEnv) Logger() *slog.Logger    { return e.d.log }

func (e commitEnv) State(doc string) (*crdt.State, error) {
	st, _, err := e.d.readState(doc)
	return st, err
}

func (e commitEnv) DocSeq(doc string) (uint64, error) {
	_, seq, err := e.d.readState(doc)
	return seq, err
}

func (e commitEnv) Fold(doc string) (*crdt.State, crdt.HLC, error) { return e.d.readFold(doc) }
func (e commitEnv) Change(id crdt.ID) (*crdt.Change, error)        { return e.d.readChange(id) }
func (e commitEnv) History(doc string) ([]crdt.ID, error)          { return e.d.historyIDs(doc) }
func (e commitEnv) Rejected(id crdt.ID) (bool, error)              { return e.d.rejected(id) }
func (e commitEnv) Purged() crdt.HLC                               { return e.d.purged }
func (e commitEnv) Owner() peer.ID                                 { return e.d.owner() }
func (e commitEnv) MaxClockDrift() time.Duration                   { return maxClockDrift }
func (e commitEnv) FoldWritten()                                   { e.d.anyFold.Store(true) }
func (e commitEnv) Views() bool                                    { return e.d.live.following() }

func (e commitEnv) Counters() commit.Counters {
	d := e.d
	xor, n := d.changesDigest()
	return commit.Counters{Seq: d.seq.Load(), Count: d.count.Load(), Revs: d.revisions.Load(),
		Tombs: d.tombstones.Load(), Digest: xor, NChange: n}
}

func (e commitEnv) CheckpointEpoch() uint64 {
	d := e.d
	d.checkpoints.Lock()
	defer d.checkpoints.Unlock()
	return d.checkpoints.epoch
}

// Committed makes a committed group visible: sequence, counts, digest,
// waiters and announcements.
func (e commitEnv) Committed(c commit.Committed) {
	d := e.d
	d.live.offer(c.Views) // Before the seq moves: the dispatcher it wakes finds them.
	d.seq.Store(c.Seq)
	d.count.Store(c.Count)
	d.revisions.Store(c.Revs)
	d.tombstones.Store(c.Tombs)
	d.digest.Lock()
	d.digest.xor, d.digest.count = c.Digest, c.NChange
	d.digest.Unlock()
	d.notifyCommit()
	d.announce()
	if c.ACLChanged {
		select {
		case d.acl <- struct{}{}: // reconsiderLoop runs it
		default: // one is pending already: it reads the ACL as it is then
		}
	}
	m := d.node.metrics
	m.commit.Observe(c.Took.Seconds())
	m.groupSize.Observe(float64(c.Written))
}

func (e commitEnv) Answered(ok, failed int) {
	m := e.d.node.metrics.writes
	if ok > 0 {
		m.WithLabelValues(e.d.name, "ok").Add(float64(ok))
	}
	if failed > 0 {
		m.WithLabelValues(e.d.name, "error").Add(float64(failed))
	}
}

// Refused counts and logs, once per request, the received changes the
// writer rejected.
func (e commitEnv) Refused(from peer.ID, counts map[string]int) {
	d := e.d
	n := 0
	for _, c := range counts {
		n += c
	}
	attrs := []any{"peer", from.String(), "changes", n}
	for _, reason := range slices.Sorted(maps.Keys(counts)) {
		d.node.metrics.rejected.WithLabelValues(d.name, reason).Add(float64(counts[reason]))
		attrs = append(attrs, reason, counts[reason])
	}
	d.log.Warn("rejected received changes", attrs...)
}
