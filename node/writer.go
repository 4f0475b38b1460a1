package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/index"
	bsync "github.com/barrel-db/barrel/sync"
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

// group is the state of one group commit: the batch and the documents and
// changes it has touched, so later writes in the group read earlier ones.
type group struct {
	d       *DB
	prev    *group // the group being committed while this one is prepared, or nil
	batch   *datastore.Batch
	docs    map[string]*docEntry
	changes map[crdt.ID]*crdt.Change
	seq     uint64
	count   int64
	written int
	hlc     crdt.HLC
	digest  crdt.ID // XOR of all change ids held after this group
	nchange uint64
	start   time.Time

	unpend [][]byte // pending-transaction keys to delete: their transaction is applied
	broken error    // set when the batch holds part of a failed request: commit nothing

	committed chan struct{} // closed when the commit finished; err is then set
	err       error
}

type docEntry struct {
	state *crdt.State
	added []crdt.ID // changes of this document not yet in the store
}

// prepared is a change ready to apply to its document.
type prepared struct {
	ent    *docEntry
	change *crdt.Change
	from   []byte // the peer a received change came from; nil for local writes
}

func (d *DB) newGroup(prev *group) *group {
	g := &group{
		d:         d,
		prev:      prev,
		batch:     d.store.NewWriteBatch(),
		docs:      map[string]*docEntry{},
		changes:   map[crdt.ID]*crdt.Change{},
		seq:       d.seq.Load(),
		count:     d.count.Load(),
		start:     time.Now(),
		committed: make(chan struct{}),
	}
	if prev != nil {
		g.seq, g.count = prev.seq, prev.count
		g.digest, g.nchange = prev.digest, prev.nchange
	} else {
		g.digest, g.nchange = d.Digest()
	}
	return g
}

// commit runs in its own goroutine, owned by run (which waits on
// g.committed): it syncs the group's batch and answers its callers.
func (d *DB) commit(g *group, reqs []*request, resps []response) {
	defer close(g.committed)
	defer g.batch.Close()
	g.err = g.finish()
	if g.err != nil {
		d.log.Error("group commit failed", "err", g.err, "changes", g.written)
		d.reply(reqs, resps, fmt.Errorf("commit: %w", g.err))
		return
	}
	if g.written > 0 {
		d.seq.Store(g.seq)
		d.count.Store(g.count)
		d.digest.Lock()
		d.digest.xor, d.digest.count = g.digest, g.nchange
		d.digest.Unlock()
		d.notifyCommit()
		d.announce()
		m := d.node.metrics
		m.commit.Observe(time.Since(g.start).Seconds())
		m.groupSize.Observe(float64(g.written))
	}
	d.reply(reqs, resps, nil)
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

// item is one document write of a group on its way through prepare, seal
// and apply.
type item struct {
	req, doc int
	p        *prepared
	err      error
}

// handleAll runs every request of the group and returns their responses.
//
// Writes go in waves: each write is prepared in order (it needs the state
// left by the writes before it), then the wave's changes are sealed (CBOR,
// SHA-256, ed25519: most of a write's CPU) in parallel on every core, then
// applied in order. A wave ends where a document repeats, because that
// write's parents are the id of the earlier one. An atomic request lies
// within one wave, so it can be dropped whole if any of its writes fails.
func (g *group) handleAll(reqs []*request) []response {
	resps := make([]response, len(reqs))
	for i, r := range reqs {
		resps[i].results = make([]BulkResult, len(r.docs))
		for j, w := range r.docs {
			resps[i].results[j].ID = w.id
		}
	}
	var wave []*item
	inWave := map[string]bool{}
	flush := func() {
		g.flush(reqs, resps, wave)
		wave = wave[:0]
		clear(inWave)
	}
	for ri, r := range reqs {
		if r.remote != nil {
			flush()
			resps[ri] = g.applyRemote(r)
			continue
		}
		var tx *crdt.Tx
		if r.atomic {
			tx = &crdt.Tx{ID: newTxID(), Count: uint32(len(r.docs))}
			for _, w := range r.docs {
				if inWave[w.id] {
					flush()
					break
				}
			}
		}
		for di, w := range r.docs {
			if inWave[w.id] {
				flush()
			}
			it := &item{req: ri, doc: di}
			it.p, it.err = g.prepare(w, tx)
			wave = append(wave, it)
			inWave[w.id] = true
		}
	}
	flush()
	return resps
}

// flush seals a wave's changes in parallel, drops atomic requests with a
// failed write, and applies the rest in order.
func (g *group) flush(reqs []*request, resps []response, wave []*item) {
	sealAll(wave, g.d.node.key)
	for _, it := range wave {
		if it.err != nil && reqs[it.req].atomic {
			resps[it.req].err = ErrTxAborted
		}
	}
	// The documents of a wave are distinct, so their merges run in parallel;
	// recording (sequence numbers, batch) stays in order.
	ms := make([]*merged, len(wave))
	parallel(len(wave), func(i int) {
		it := wave[i]
		if it.err != nil || resps[it.req].err != nil {
			return
		}
		ms[i], it.err = g.merge(it.p)
	})
	for _, it := range wave {
		if it.err != nil && reqs[it.req].atomic {
			resps[it.req].err = ErrTxAborted // all or nothing, even on a storage error
		}
	}
	for i, it := range wave {
		res := &resps[it.req].results[it.doc]
		switch {
		case it.err != nil:
			res.Error = it.err // a storage error in merge fails only this write
		case resps[it.req].err != nil: // an atomic request with a failed write
			res.Error = ErrTxAborted
		default:
			g.record(ms[i])
			res.Rev = it.p.change.ID().String()
		}
	}
}

// sealAll validates and hashes a wave's changes on every core, then signs
// them in Merkle groups, one signature per group (crdt.SignGroup).
func sealAll(wave []*item, key crdt.Signer) {
	parallel(len(wave), func(i int) {
		it := wave[i]
		if it.err != nil {
			return
		}
		if err := it.p.change.Seal(nil); err != nil {
			if errors.Is(err, crdt.ErrInvalidChange) {
				err = invalid("body", "%v", err)
			}
			it.err = err
		}
	})
	var ok []*crdt.Change
	var owners []*item
	for _, it := range wave {
		if it.err == nil {
			ok = append(ok, it.p.change)
			owners = append(owners, it)
		}
	}
	const group = 1 << crdt.MaxProof
	chunks := (len(ok) + group - 1) / group
	parallel(chunks, func(i int) {
		lo, hi := i*group, min((i+1)*group, len(ok))
		if err := crdt.SignGroup(ok[lo:hi], key); err != nil {
			for _, it := range owners[lo:hi] {
				it.err = err
			}
		}
	})
}

// parallel runs fn(0..n-1) on every core and returns when all are done.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				fn(int(i))
			}
		}()
	}
	wg.Wait()
}

// applyRemote applies changes received from a peer, parents first,
// skipping those already held. It stops at the first change whose parents
// are missing (a *bsync.MissingError). An atomic request (one transaction)
// is checked whole before any of it is applied.
func (g *group) applyRemote(r *request) response {
	var todo []*crdt.Change
	known := map[crdt.ID]bool{}
	var missing []crdt.ID
	for _, c := range r.remote {
		has, err := g.has(c.ID())
		if err != nil {
			return response{err: err}
		}
		if has || known[c.ID()] {
			continue
		}
		for _, p := range c.Parents {
			if known[p] {
				continue
			}
			ok, err := g.has(p)
			if err != nil {
				return response{err: err}
			}
			if !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			break
		}
		known[c.ID()] = true
		todo = append(todo, c)
	}
	if len(missing) > 0 && r.atomic {
		return response{err: &bsync.MissingError{IDs: missing}}
	}
	applied := len(todo)
	// Waves of distinct documents merge in parallel, as local writes do;
	// a change's parents are of its own document, so a wave holds no
	// dependency.
	for len(todo) > 0 {
		seen := map[string]bool{}
		var wave []*prepared
		for _, c := range todo {
			if seen[c.Doc] {
				break
			}
			seen[c.Doc] = true
			g.d.observeRemoteClock(c.Clock)
			ent, err := g.load(c.Doc)
			if err != nil {
				return response{err: err}
			}
			wave = append(wave, &prepared{ent: ent, change: c, from: r.from})
		}
		todo = todo[len(wave):]
		ms := make([]*merged, len(wave))
		errs := make([]error, len(wave))
		parallel(len(wave), func(i int) { ms[i], errs[i] = g.merge(wave[i]) })
		if err := errors.Join(errs...); err != nil {
			// Earlier waves are in the batch already: fail the whole group
			// rather than commit part of a request.
			g.broken = err
			return response{err: err}
		}
		for _, m := range ms {
			g.record(m)
		}
	}
	g.unpend = append(g.unpend, r.unpend...)
	resp := response{applied: applied}
	if len(missing) > 0 {
		resp.err = &bsync.MissingError{IDs: missing}
	}
	return resp
}

// has reports whether the database holds a change, counting this group and
// the one being committed.
func (g *group) has(id crdt.ID) (bool, error) {
	if _, ok := g.changes[id]; ok {
		return true, nil
	}
	if g.prev != nil {
		if _, ok := g.prev.changes[id]; ok {
			return true, nil
		}
	}
	return g.d.store.Has(g.d.keys.change(id))
}

// load returns a document's state as of this point of the group.
func (g *group) load(id string) (*docEntry, error) {
	if e, ok := g.docs[id]; ok {
		return e, nil
	}
	if g.prev != nil {
		if pe, ok := g.prev.docs[id]; ok {
			e := &docEntry{state: pe.state, added: slices.Clone(pe.added)}
			g.docs[id] = e
			return e, nil
		}
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
	if g.prev != nil {
		if c, ok := g.prev.changes[id]; ok {
			return c, nil
		}
	}
	return g.d.readChange(id)
}

// prepare builds the change for one write; flush seals and applies it.
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
	m, err := g.merge(p)
	if err != nil {
		return err
	}
	g.record(m)
	return nil
}

// merged is a change merged into its document and encoded, ready for
// record to give it a sequence number and add it to the batch.
type merged struct {
	p               *prepared
	st              *crdt.State
	enc, stEnc      []byte
	feed            []byte
	del, put        [][]byte
	wasLive, isLive bool
}

// merge does the CPU work of applying a change: the CRDT merge (or replay),
// the encodings and the index delta. It touches only its own document, so
// merges of different documents run in parallel; it reads the group's maps
// but does not write them.
func (g *group) merge(p *prepared) (*merged, error) {
	d, c, ent := g.d, p.change, p.ent
	var oldBody map[string]any
	if live := liveBody(ent.state); live != nil {
		oldBody = crdt.Copy(live).(map[string]any) // ApplyNext mutates the state in place
	}
	st := ent.state
	if !st.ApplyNext(c) {
		all, err := g.docChanges(c.Doc, ent)
		if err != nil {
			return nil, err
		}
		if st, err = crdt.Replay(append(all, c)); err != nil {
			return nil, fmt.Errorf("replay %s: %w", c.Doc, err)
		}
	}
	m := &merged{p: p, st: st, wasLive: oldBody != nil}
	var err error
	if m.enc, err = c.Encode(); err != nil {
		return nil, fmt.Errorf("encode change: %w", err)
	}
	if m.stEnc, err = st.Encode(); err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	if m.feed, err = crdt.Marshal(&feedEntry{Doc: c.Doc, Rev: c.ID(), Deleted: st.Deleted, From: p.from}); err != nil {
		return nil, fmt.Errorf("encode feed entry: %w", err)
	}
	newBody := liveBody(st)
	m.isLive = newBody != nil
	if m.del, m.put, err = index.Diff(d.keys.index(), c.Doc, oldBody, newBody); err != nil {
		return nil, fmt.Errorf("index %s: %w", c.Doc, err)
	}
	return m, nil
}

// record gives a merged change the next local sequence number and adds
// everything it writes to the group's batch: the change, the feed entry,
// the history entry, the document state and the index delta. Records run
// one at a time, in order.
func (g *group) record(m *merged) {
	d, c, ent := g.d, m.p.change, m.p.ent
	g.seq++
	id := c.ID()
	b := g.batch
	b.Set(d.keys.change(id), m.enc)
	b.Set(d.keys.feed(g.seq), m.feed)
	b.Set(binary.BigEndian.AppendUint64(d.keys.history(c.Doc), g.seq), id[:])
	b.Set(d.keys.doc(c.Doc), append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(m.stEnc)), g.seq), m.stEnc...))
	for _, k := range m.del {
		b.Delete(k)
	}
	for _, k := range m.put {
		b.Set(k, nil)
	}
	switch {
	case !m.wasLive && m.isLive:
		g.count++
	case m.wasLive && !m.isLive:
		g.count--
	}
	ent.state = m.st
	ent.added = append(ent.added, id)
	g.changes[id] = c
	g.written++
	for i := range g.digest {
		g.digest[i] ^= id[i]
	}
	g.nchange++
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
	if g.broken != nil {
		return g.broken
	}
	if g.written == 0 {
		return nil
	}
	d := g.d
	hlc, err := crdt.Marshal(g.hlc)
	if err != nil {
		return err
	}
	g.batch.Set(d.keys.meta(metaSeq), binary.BigEndian.AppendUint64(nil, g.seq))
	g.batch.Set(d.keys.meta(metaCount), binary.BigEndian.AppendUint64(nil, uint64(g.count)))
	g.batch.Set(d.keys.meta(metaClock), hlc)
	g.batch.Set(d.keys.meta(metaDigest), binary.BigEndian.AppendUint64(slices.Clone(g.digest[:]), g.nchange))
	for _, k := range g.unpend {
		g.batch.Delete(k)
	}
	return g.batch.Commit()
}

// feedEntry is the value of a feed key.
type feedEntry struct {
	_       struct{} `cbor:",toarray"`
	Doc     string
	Rev     crdt.ID
	Deleted bool
	From    []byte // the peer the change was received from; nil for local writes
}

func liveBody(st *crdt.State) map[string]any {
	if !st.Exists() || st.Deleted {
		return nil
	}
	return st.Body
}
