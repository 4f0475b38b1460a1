package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/index"
)

// run is the database's writer loop: the only code that mutates it. It
// takes every request waiting in the queue (up to MaxBatch), applies them in
// one batch and syncs once (group commit), then answers every caller.
func (d *DB) run() {
	defer close(d.done)
	for {
		var first *request
		select {
		case <-d.quit:
			d.drainClosed()
			return
		case first = <-d.queue:
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
		d.commitGroup(reqs)
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

// group is the state of one group commit: the batch and the documents and
// changes it has touched, so later writes in the group read earlier ones.
type group struct {
	d       *DB
	batch   *datastore.Batch
	docs    map[string]*docEntry
	changes map[crdt.ID]*crdt.Change
	seq     uint64
	count   int64
	written int
}

type docEntry struct {
	state *crdt.State
	added []crdt.ID // changes of this document written in this group
}

// prepared is a change ready to apply to its document.
type prepared struct {
	ent    *docEntry
	change *crdt.Change
}

func (d *DB) commitGroup(reqs []*request) {
	start := time.Now()
	g := &group{
		d:       d,
		batch:   d.store.NewBatch(),
		docs:    map[string]*docEntry{},
		changes: map[crdt.ID]*crdt.Change{},
		seq:     d.seq.Load(),
		count:   d.count.Load(),
	}
	defer g.batch.Close()
	resps := make([]response, len(reqs))
	for i, r := range reqs {
		resps[i] = g.handle(r)
	}
	err := g.finish()
	if err != nil {
		d.log.Error("group commit failed", "err", err, "changes", g.written)
		for i := range resps {
			resps[i] = response{err: fmt.Errorf("commit: %w", err)}
		}
	} else if g.written > 0 {
		d.seq.Store(g.seq)
		d.count.Store(g.count)
		d.notifyCommit()
		m := d.node.metrics
		m.commit.Observe(time.Since(start).Seconds())
		m.groupSize.Observe(float64(g.written))
	}
	for i, r := range reqs {
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

func (g *group) handle(r *request) response {
	if !r.atomic {
		out := make([]BulkResult, len(r.docs))
		for i, w := range r.docs {
			out[i].ID = w.id
			p, err := g.prepare(w, nil)
			if err == nil {
				err = g.apply(p)
			}
			if err != nil {
				out[i].Error = err
				continue
			}
			out[i].Rev = p.change.ID().String()
		}
		return response{results: out}
	}
	tx := &crdt.Tx{ID: newTxID(), Count: uint32(len(r.docs))}
	ps := make([]*prepared, len(r.docs))
	out := make([]BulkResult, len(r.docs))
	failed := false
	for i, w := range r.docs {
		out[i].ID = w.id
		p, err := g.prepare(w, tx)
		if err != nil {
			out[i].Error, failed = err, true
			continue
		}
		ps[i] = p
	}
	if failed {
		for i := range out {
			if out[i].Error == nil {
				out[i].Error = ErrTxAborted
			}
		}
		return response{results: out, err: ErrTxAborted}
	}
	for i, p := range ps {
		if err := g.apply(p); err != nil {
			// apply fails only on storage errors, which fail the whole group.
			return response{results: errorResults(r.docs, err), err: err}
		}
		out[i].Rev = p.change.ID().String()
	}
	return response{results: out}
}

// load returns a document's state as of this point of the group.
func (g *group) load(id string) (*docEntry, error) {
	if e, ok := g.docs[id]; ok {
		return e, nil
	}
	st, _, err := g.d.readState(id)
	if err != nil {
		return nil, err
	}
	e := &docEntry{state: st}
	g.docs[id] = e
	return e, nil
}

// change returns a change of this database from the group or the store.
func (g *group) change(id crdt.ID) (*crdt.Change, error) {
	if c, ok := g.changes[id]; ok {
		return c, nil
	}
	return g.d.readChange(id)
}

// prepare builds and signs the change for one write without applying it.
func (g *group) prepare(w docWrite, tx *crdt.Tx) (*prepared, error) {
	if err := crdt.ValidateName("doc id", w.id); err != nil {
		return nil, invalid("doc id", "%v", err)
	}
	ent, err := g.load(w.id)
	if err != nil {
		return nil, err
	}
	st := ent.state
	base, parents := st, st.Heads
	if w.rev != "" {
		rid, err := crdt.ParseID(w.rev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.rev, ErrRevMismatch)
		}
		c, err := g.change(rid)
		if errors.Is(err, ErrNotFound) || (err == nil && c.Doc != w.id) {
			return nil, fmt.Errorf("document %s has no revision %s: %w", w.id, w.rev, ErrRevMismatch)
		}
		if err != nil {
			return nil, err
		}
		// The current revision stands for the merged document the caller
		// read: its base is every head. An older revision is the state as of
		// that change.
		if rid != st.Last {
			if base, err = g.stateAt(rid); err != nil {
				return nil, err
			}
			parents = []crdt.ID{rid}
		}
	}
	baseBody := base.Body
	if base.Deleted || !base.Exists() {
		baseBody = map[string]any{}
	}
	var ops []crdt.Op
	switch {
	case w.del:
		if !st.Exists() || (st.Deleted && w.rev == "") {
			return nil, fmt.Errorf("document %s: %w", w.id, ErrNotFound)
		}
		ops = []crdt.Op{{Kind: crdt.OpDeleteDoc}}
	case w.patch != nil:
		if !st.Exists() || (st.Deleted && w.rev == "") {
			return nil, fmt.Errorf("document %s: %w", w.id, ErrNotFound)
		}
		ops = patchOps(baseBody, w.patch)
	default:
		ops = crdt.Diff(baseBody, w.body, func(p string) bool { _, ok := base.Sets[p]; return ok })
	}
	c := &crdt.Change{
		DB:      g.d.name,
		Doc:     w.id,
		Parents: slices.Clone(parents),
		Clock:   g.d.clock.Now(g.d.node.cfg.Now().UnixNano()),
		Author:  []byte(g.d.node.peerID),
		Ops:     ops,
		Tx:      tx,
	}
	if err := c.Seal(g.d.node.key); err != nil {
		if errors.Is(err, crdt.ErrInvalidChange) {
			return nil, invalid("body", "%v", err)
		}
		return nil, err
	}
	return &prepared{ent: ent, change: c}, nil
}

func patchOps(base map[string]any, p *Patch) []crdt.Op {
	ops := crdt.MergePatch(base, p.Merge)
	for _, path := range sortedKeys(p.Incr) {
		ops = append(ops, crdt.Op{Kind: crdt.OpIncr, Path: path, Value: p.Incr[path]})
	}
	for _, path := range sortedKeys(p.Add) {
		for _, e := range p.Add[path] {
			ops = append(ops, crdt.Op{Kind: crdt.OpAdd, Path: path, Value: e})
		}
	}
	for _, path := range sortedKeys(p.Remove) {
		for _, e := range p.Remove[path] {
			ops = append(ops, crdt.Op{Kind: crdt.OpRemove, Path: path, Value: e})
		}
	}
	return ops
}

// stateAt materializes a document as of one of its revisions: the replay of
// that revision and its ancestors.
func (g *group) stateAt(rev crdt.ID) (*crdt.State, error) {
	var all []*crdt.Change
	seen := map[crdt.ID]bool{rev: true}
	stack := []crdt.ID{rev}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		c, err := g.change(id)
		if err != nil {
			return nil, fmt.Errorf("load ancestor %s: %w", id, err)
		}
		all = append(all, c)
		for _, p := range c.Parents {
			if !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return crdt.Replay(all)
}

// apply merges a prepared change into its document and adds everything it
// writes to the group's batch: the change, the feed entry, the history
// entry, the document state and the index delta.
func (g *group) apply(p *prepared) error {
	d, c, ent := g.d, p.change, p.ent
	var oldBody map[string]any
	if live := liveBody(ent.state); live != nil {
		oldBody = crdt.Copy(live).(map[string]any) // ApplyNext mutates the state in place
	}
	st := ent.state
	if !st.ApplyNext(c) {
		all, err := g.docChanges(c.Doc, ent)
		if err != nil {
			return err
		}
		if st, err = crdt.Replay(append(all, c)); err != nil {
			return fmt.Errorf("replay %s: %w", c.Doc, err)
		}
	}
	enc, err := c.Encode()
	if err != nil {
		return fmt.Errorf("encode change: %w", err)
	}
	stEnc, err := st.Encode()
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	feed, err := crdt.Marshal(&feedEntry{Doc: c.Doc, Rev: c.ID(), Deleted: st.Deleted})
	if err != nil {
		return fmt.Errorf("encode feed entry: %w", err)
	}
	newBody := liveBody(st)
	del, put, err := index.Diff(d.keys.index(), c.Doc, oldBody, newBody)
	if err != nil {
		return fmt.Errorf("index %s: %w", c.Doc, err)
	}
	g.seq++
	id := c.ID()
	b := g.batch
	b.Set(d.keys.change(id), enc)
	b.Set(d.keys.feed(g.seq), feed)
	b.Set(binary.BigEndian.AppendUint64(d.keys.history(c.Doc), g.seq), id[:])
	b.Set(d.keys.doc(c.Doc), append(binary.BigEndian.AppendUint64(nil, g.seq), stEnc...))
	for _, k := range del {
		b.Delete(k)
	}
	for _, k := range put {
		b.Set(k, nil)
	}
	switch {
	case oldBody == nil && newBody != nil:
		g.count++
	case oldBody != nil && newBody == nil:
		g.count--
	}
	ent.state = st
	ent.added = append(ent.added, id)
	g.changes[id] = c
	g.written++
	return nil
}

// docChanges loads every change of a document: those in the store and those
// written earlier in this group.
func (g *group) docChanges(doc string, ent *docEntry) ([]*crdt.Change, error) {
	ids, err := g.d.historyIDs(doc)
	if err != nil {
		return nil, err
	}
	ids = append(ids, ent.added...)
	out := make([]*crdt.Change, 0, len(ids))
	for _, id := range ids {
		c, err := g.change(id)
		if err != nil {
			return nil, fmt.Errorf("load change %s of %s: %w", id, doc, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// finish writes the database metadata and commits the batch: one sync for
// the whole group (DESIGN.md invariant 2: nothing is acknowledged before it).
func (g *group) finish() error {
	if g.written == 0 {
		return nil
	}
	d := g.d
	hlc, err := crdt.Marshal(d.clock.Last())
	if err != nil {
		return err
	}
	g.batch.Set(d.keys.meta(metaSeq), binary.BigEndian.AppendUint64(nil, g.seq))
	g.batch.Set(d.keys.meta(metaCount), binary.BigEndian.AppendUint64(nil, uint64(g.count)))
	g.batch.Set(d.keys.meta(metaClock), hlc)
	return g.batch.Commit()
}

// feedEntry is the value of a feed key.
type feedEntry struct {
	_       struct{} `cbor:",toarray"`
	Doc     string
	Rev     crdt.ID
	Deleted bool
}

func liveBody(st *crdt.State) map[string]any {
	if !st.Exists() || st.Deleted {
		return nil
	}
	return st.Body
}
