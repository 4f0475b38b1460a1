package commit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/changes"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Writer is a database's single writer: the only code that mutates it.
// Callers Submit requests and run exclusive jobs through it; Run is its
// loop.
type Writer struct {
	env      Env
	maxBatch int
	queue    chan *Request
	jobs     chan *job
	quit     <-chan struct{} // closed when the database closes
	done     chan struct{}   // closed when Run has returned
	noSpace  atomic.Bool     // the last group commit was refused for disk space (logged once, not per group)
}

// NewWriter returns the writer of env's database: a queue of queueLen
// requests, groups of at most maxBatch. quit, closed when the database
// closes, makes Submit answer ErrClosed; Run must be started.
func NewWriter(env Env, queueLen, maxBatch int, quit <-chan struct{}) *Writer {
	return &Writer{env: env, maxBatch: max(maxBatch, 1), queue: make(chan *Request, queueLen),
		jobs: make(chan *job), quit: quit, done: make(chan struct{})}
}

// Submit queues a request and waits for its answer. A full queue answers
// ErrOverloaded at once unless wait is set (replication waits for room:
// the puller is where back-pressure should slow the sender). The request
// may still commit after ctx ends; the caller gave up waiting.
func (w *Writer) Submit(ctx context.Context, r *Request, wait bool) Response {
	r.reply = make(chan Response, 1)
	select {
	case <-w.quit:
		return Response{Err: ErrClosed}
	default:
	}
	if wait {
		select {
		case w.queue <- r:
		case <-ctx.Done():
			return Response{Err: ctx.Err()}
		case <-w.quit:
			return Response{Err: ErrClosed}
		}
	} else {
		select {
		case w.queue <- r:
		default:
			return Response{Err: ErrOverloaded}
		}
	}
	select {
	case resp := <-r.reply:
		return resp
	case <-ctx.Done():
		return Response{Err: ctx.Err()}
	}
}

// Exclusive runs fn on the writer goroutine between two group commits,
// with no group in flight: fn may read and rewrite any document.
func (w *Writer) Exclusive(ctx context.Context, fn func() error) error {
	j := &job{fn: fn, done: make(chan error, 1)}
	select {
	case w.jobs <- j:
	case <-w.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-w.done:
		return ErrClosed
	}
}

type job struct {
	fn   func() error
	done chan error
}

// Run is the writer loop: the only code that mutates it. It
// takes every request waiting in the queue (up to MaxBatch), applies them to
// one batch and commits it with one sync (group commit), then answers every
// caller.
//
// Commits are pipelined: while group N is being synced by its commit
// goroutine, the loop already prepares group N+1 on top of N's uncommitted
// states (group.prev). N+1 is handed to the store only after N committed, so
// the feed stays gapless and in order; if N fails, N+1 fails with it. Without
// the pipeline the loop sat idle during every fsync and groups stayed small.
func (w *Writer) Run() {
	defer close(w.done)
	var inflight *Group
	defer func() {
		if inflight != nil {
			<-inflight.committed
		}
	}()
	for {
		var first *Request
		select {
		case <-w.quit:
			w.drainClosed()
			return
		case first = <-w.queue:
		case j := <-w.jobs:
			if inflight != nil {
				<-inflight.committed // its callers are answered by its commit
				inflight = nil
			}
			j.done <- j.fn()
			continue
		}
		reqs := []*Request{first}
	fill:
		for len(reqs) < w.maxBatch {
			select {
			case r := <-w.queue:
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
		g := w.newGroup(inflight)
		resps := g.handleAll(reqs)
		g.hlc = w.env.Clock().Last()
		// g is prepared: it no longer reads its predecessor, and keeping the
		// link would chain every group ever built into memory.
		g.prev = nil
		if inflight != nil {
			<-inflight.committed
			if inflight.err != nil {
				g.batch.Close()
				w.reply(reqs, resps, fmt.Errorf("commit: %w", inflight.err))
				inflight = nil
				continue
			}
		}
		inflight = g
		go w.commit(g, reqs, resps)
	}
}

func (w *Writer) drainClosed() {
	for {
		select {
		case r := <-w.queue:
			r.reply <- Response{Err: ErrClosed}
		default:
			return
		}
	}
}

// commit runs in its own goroutine, owned by run (which waits on
// g.committed): it syncs the group's batch and answers its callers.
func (w *Writer) commit(g *Group, reqs []*Request, resps []Response) {
	defer close(g.committed)
	defer g.batch.Close()
	g.err = g.finish()
	switch {
	case errors.Is(g.err, datastore.ErrNoSpace):
		// Every writer meets it until space is freed, and each caller is
		// answered with it: log the state once, not each refused group
		// (a log line per write fills the disk further).
		if !w.noSpace.Swap(true) {
			w.env.Logger().Error("writes refused: the disk is full; they resume once space is freed", "err", g.err)
		}
	case g.err != nil:
		w.env.Logger().Error("group commit failed", "err", g.err, "changes", g.written)
	case w.noSpace.Swap(false):
		w.env.Logger().Info("writes resumed: the disk has room again")
	}
	if g.err != nil {
		w.reply(reqs, resps, fmt.Errorf("commit: %w", g.err))
		return
	}
	if g.written > 0 {
		w.publish(g)
	}
	w.reply(reqs, resps, nil)
}

// publish hands a committed group's counters to the database.
func (w *Writer) publish(g *Group) {
	w.env.Committed(Committed{Counters: g.counters(), ACLChanged: g.aclChanged, Written: g.written, Took: time.Since(g.start), Views: g.views})
}

// reply answers every request of a group; err, when set, replaces them all.
func (w *Writer) reply(reqs []*Request, resps []Response, err error) {
	for i, r := range reqs {
		if err != nil {
			resps[i] = Response{Results: errorResults(r.Docs, err), Err: err}
		}
		failed := 0
		for _, res := range resps[i].Results {
			if res.Error != nil {
				failed++
			}
		}
		if n := len(resps[i].Results); n > 0 {
			w.env.Answered(n-failed, failed)
		}
		r.reply <- resps[i]
	}
}

// errorResults marks every result with err, keeping the ids.
func errorResults(ws []DocWrite, err error) []Result {
	out := make([]Result, len(ws))
	for i, w := range ws {
		out[i] = Result{ID: w.ID, Error: err}
	}
	return out
}

// finish writes the database metadata and commits the batch: one sync for
// the whole group (DESIGN.md invariant 2: nothing is acknowledged before it).
func (g *Group) finish() error {
	if g.broken != nil {
		return g.broken
	}
	if g.written == 0 && g.others == 0 {
		return nil
	}
	keys := g.env.Keys()
	changes.Write(g.batch, keys, g.stored)
	if g.drops != nil {
		if err := g.drops.Finish(g.batch); err != nil {
			return err
		}
	}
	if g.written == 0 { // checkpoints only: the counters did not move
		return g.batch.Commit()
	}
	hlc, err := crdt.Marshal(g.hlc)
	if err != nil {
		return err
	}
	g.batch.Set(keys.Meta(layout.MetaSeq), layout.Uint64(g.seq))
	g.batch.Set(keys.Meta(layout.MetaCount), layout.Uint64(uint64(g.count)))
	g.batch.Set(keys.Meta(layout.MetaRevisions), layout.Uint64(uint64(g.revs)))
	g.batch.Set(keys.Meta(layout.MetaTombs), layout.Uint64(uint64(g.tombs)))
	g.batch.Set(keys.Meta(layout.MetaClock), hlc)
	g.batch.Set(keys.Meta(layout.MetaDigest), layout.Digest(g.digest, g.nchange))
	for _, k := range g.unpend {
		g.batch.Delete(k)
	}
	if err := g.batch.Commit(); err != nil {
		return err
	}
	return nil
}

// CommitNow commits a group built by an exclusive job (NewGroup) and
// publishes it as the writer's commit does. The caller still closes the
// group.
func (w *Writer) CommitNow(g *Group) error {
	g.hlc = w.env.Clock().Last()
	err := g.finish()
	if err == nil && g.written == 0 {
		err = g.batch.Commit()
	}
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if g.written > 0 {
		w.publish(g)
	}
	return nil
}
