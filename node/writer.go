package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// run is the database's writer loop: the only code that mutates it. It
// takes every request waiting in the queue (up to MaxBatch), applies them to
// one batch and commits it with one sync (group commit), then answers every
// caller.
//
// Commits are pipelined: while group N is being synced by its commit
// goroutine, the loop already prepares group N+1 on top of N's uncommitted
// states (group.prev). N+1 is handed to the store only after N committed, so
// the feed stays gapless and in order; if N fails, N+1 fails with it. Without
// the pipeline the loop sat idle during every fsync and groups stayed small.
func (d *DB) run() {
	defer close(d.done)
	var inflight *group
	defer func() {
		if inflight != nil {
			<-inflight.committed
		}
	}()
	for {
		var first *request
		select {
		case <-d.quit:
			d.drainClosed()
			return
		case first = <-d.queue:
		case j := <-d.jobs:
			if inflight != nil {
				<-inflight.committed // its callers are answered by its commit
				inflight = nil
			}
			j.done <- j.fn()
			continue
		}
		reqs := []*request{first}
	fill:
		for len(reqs) < d.node.cfg.MaxBatch {
			select {
			case r := <-d.queue:
				reqs = append(reqs, r)
			default:
				break fill
			}
		}
		if inflight != nil {
			select {
			case <-inflight.committed:
				if inflight.err != nil {
					// It failed and its callers were answered: build on
					// the store, or this group would fail with it (a
					// write after a full disk was freed got the old
					// ErrNoSpace).
					inflight = nil
				}
			default:
			}
		}
		g := d.newGroup(inflight)
		resps := g.handleAll(reqs)
		g.hlc = d.clock.Last()
		// g is prepared: it no longer reads its predecessor, and keeping the
		// link would chain every group ever built into memory.
		g.prev = nil
		if inflight != nil {
			<-inflight.committed
			if inflight.err != nil {
				g.batch.Close()
				d.reply(reqs, resps, fmt.Errorf("commit: %w", inflight.err))
				inflight = nil
				continue
			}
		}
		inflight = g
		go d.commit(g, reqs, resps)
	}
}

func (d *DB) drainClosed() {
	for {
		select {
		case r := <-d.queue:
			r.reply <- response{err: ErrClosed}
		default:
			return
		}
	}
}

// commit runs in its own goroutine, owned by run (which waits on
// g.committed): it syncs the group's batch and answers its callers.
func (d *DB) commit(g *group, reqs []*request, resps []response) {
	defer close(g.committed)
	defer g.batch.Close()
	g.err = g.finish()
	switch {
	case errors.Is(g.err, ErrNoSpace):
		// Every writer meets it until space is freed, and each caller is
		// answered with it: log the state once, not each refused group
		// (a log line per write fills the disk further).
		if !d.noSpace.Swap(true) {
			d.log.Error("writes refused: the disk is full; they resume once space is freed", "err", g.err)
		}
	case g.err != nil:
		d.log.Error("group commit failed", "err", g.err, "changes", g.written)
	case d.noSpace.Swap(false):
		d.log.Info("writes resumed: the disk has room again")
	}
	if g.err != nil {
		d.reply(reqs, resps, fmt.Errorf("commit: %w", g.err))
		return
	}
	if g.written > 0 {
		d.publish(g)
	}
	d.reply(reqs, resps, nil)
}

// publish makes a committed group visible: sequence, counts, digest,
// waiters and announcements.
func (d *DB) publish(g *group) {
	d.seq.Store(g.seq)
	d.count.Store(g.count)
	d.digest.Lock()
	d.digest.xor, d.digest.count = g.digest, g.nchange
	d.digest.Unlock()
	d.notifyCommit()
	d.announce()
	if g.aclChanged {
		select {
		case d.acl <- struct{}{}: // reconsiderLoop runs it
		default: // one is pending already: it reads the ACL as it is then
		}
	}
	m := d.node.metrics
	m.commit.Observe(time.Since(g.start).Seconds())
	m.groupSize.Observe(float64(g.written))
}

// reply answers every request of a group; err, when set, replaces them all.
func (d *DB) reply(reqs []*request, resps []response, err error) {
	for i, r := range reqs {
		if err != nil {
			resps[i] = response{results: errorResults(r.docs, err), err: err}
		}
		for _, res := range resps[i].results {
			result := "ok"
			if res.Error != nil {
				result = "error"
			}
			d.node.metrics.writes.WithLabelValues(d.name, result).Inc()
		}
		r.reply <- resps[i]
	}
}

// finish writes the database metadata and commits the batch: one sync for
// the whole group (DESIGN.md invariant 2: nothing is acknowledged before it).
func (g *group) finish() error {
	if g.broken != nil {
		return g.broken
	}
	if g.written == 0 && g.others == 0 {
		return nil
	}
	d := g.d
	if g.written == 0 { // checkpoints only: the counters did not move
		return g.batch.Commit()
	}
	hlc, err := crdt.Marshal(g.hlc)
	if err != nil {
		return err
	}
	g.batch.Set(d.keys.Meta(layout.MetaSeq), layout.Uint64(g.seq))
	g.batch.Set(d.keys.Meta(layout.MetaCount), layout.Uint64(uint64(g.count)))
	g.batch.Set(d.keys.Meta(layout.MetaRevisions), layout.Uint64(uint64(g.revs)))
	g.batch.Set(d.keys.Meta(layout.MetaTombs), layout.Uint64(uint64(g.tombs)))
	g.batch.Set(d.keys.Meta(layout.MetaClock), hlc)
	g.batch.Set(d.keys.Meta(layout.MetaDigest), layout.Digest(g.digest, g.nchange))
	for _, k := range g.unpend {
		g.batch.Delete(k)
	}
	if err := g.batch.Commit(); err != nil {
		return err
	}
	// The counters only Info reads are published here rather than by the
	// callers, so that every group committed (writer or exclusive job)
	// publishes them.
	d.revisions.Store(g.revs)
	d.tombstones.Store(g.tombs)
	return nil
}
