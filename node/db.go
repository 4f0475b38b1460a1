package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/blobstore"
	"github.com/barrel-db/barrel/node/internal/commit"
	"github.com/barrel-db/barrel/node/internal/layout"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"
)

// DB is one database of a node. Its methods are safe for concurrent use:
// writes go through the database's single writer goroutine, reads go to the
// store directly.
type DB struct {
	id      uint64
	created int64
	repl    replication
	name    string
	node    *Node
	store   *datastore.Store
	keys    layout.Keys
	log     *slog.Logger

	writer *commit.Writer  // the only code that mutates the database (node/internal/commit)
	quit   <-chan struct{} // closed when the database closes: its context's Done
	stop   context.CancelFunc
	tasks  *errgroup.Group // the database's goroutines (start); close waits for them all
	acl    chan struct{}   // buffered 1: the _acl document changed, reconsider rejections

	seq        atomic.Uint64 // last committed local sequence number
	count      atomic.Int64  // live documents
	revisions  atomic.Int64  // history entries held (changes not folded away)
	tombstones atomic.Int64  // deleted documents whose tombstone is held

	clock crdt.Clock // owned by the writer goroutine

	recon reconState // the sync protocol's reconciliation set (recon.go)

	digest struct { // guards the change-set digest announced to peers
		sync.Mutex
		xor   crdt.ID
		count uint64
	}

	pendingTx struct { // counts of the received changes of incomplete transactions (their bodies stay on disk); held for no I/O
		sync.Mutex
		adding map[string]bool         // keys being stored now, counted already
		byTx   map[string]int          // changes held per transaction
		byPeer map[peer.ID]*pendingUse // what each peer made this database hold
		n      int                     // changes held in all
	}

	mu struct { // guards notify
		sync.Mutex
		notify chan struct{} // closed and replaced after every commit
	}
	horizon    atomic.Uint64 // highest feed seq whose change was folded: pulls from before it need a snapshot
	purged     crdt.HLC      // latest clock of a purged tombstone; owned by the writer
	compactRun sync.Mutex    // one Compact at a time
	anyFold    atomic.Bool   // some document has a fold record (set before the first is written)

	checkpoints struct { // orders sync checkpoint writes against their reset (reconsider); held for no I/O
		sync.Mutex
		epoch  uint64             // resets so far; raised by the writer
		readAt map[peer.ID]uint64 // per peer, the epoch its last pull started in
	}
	bases struct { // per source peer, the highest seq of a base installed from its snapshots
		sync.Mutex
		from map[peer.ID]uint64
	}

	blobs     blobstore.Pins // pins and uploads shared by blob writers and CompactBlobs
	compactMu sync.Mutex     // one CompactBlobs at a time
	live      *liveHub       // live queries (live.go)
	closeOnce sync.Once
}

func openDB(n *Node, name string, m dbMeta) (*DB, error) {
	d := &DB{
		id:      m.ID,
		created: m.Created,
		name:    name,
		node:    n,
		store:   n.store,
		keys:    layout.NewKeys(m.ID),
		log:     n.log.With("db", name),
		acl:     make(chan struct{}, 1),
	}
	d.mu.notify = make(chan struct{})
	d.live = newLiveHub(d)
	r := m.Repl.replication()
	d.repl.Store(&r)
	if v, err := d.readMeta(layout.MetaSeq); err != nil {
		return nil, err
	} else if v != nil {
		d.seq.Store(binary.BigEndian.Uint64(v))
	}
	if v, err := d.readMeta(layout.MetaCount); err != nil {
		return nil, err
	} else if v != nil {
		d.count.Store(int64(binary.BigEndian.Uint64(v)))
	}
	if err := d.loadCounters(); err != nil {
		return nil, err
	}
	if v, err := d.readMeta(layout.MetaDigest); err != nil {
		return nil, err
	} else if v != nil {
		if d.digest.xor, d.digest.count, err = layout.ParseDigest(v); err != nil {
			return nil, fmt.Errorf("database %s: %w", name, err)
		}
	}
	if v, err := d.readMeta(layout.MetaHorizon); err != nil {
		return nil, err
	} else if v != nil {
		d.horizon.Store(binary.BigEndian.Uint64(v))
	}
	if v, err := d.readMeta(layout.MetaPurged); err != nil {
		return nil, err
	} else if v != nil {
		if err := crdt.Unmarshal(v, &d.purged); err != nil {
			return nil, fmt.Errorf("open db %s: purge clock: %w", name, err)
		}
	}
	z := d.keys.Folds()
	if err := d.store.Range(z, datastore.PrefixEnd(z), false, func(_, _ []byte) (bool, error) {
		d.anyFold.Store(true)
		return false, nil
	}); err != nil {
		return nil, fmt.Errorf("open db %s: %w", name, err)
	}
	if err := d.loadBases(); err != nil {
		return nil, err
	}
	if err := d.loadPending(); err != nil {
		return nil, err
	}
	if v, err := d.readMeta(layout.MetaClock); err != nil {
		return nil, err
	} else if v != nil {
		var h crdt.HLC
		if err := crdt.Unmarshal(v, &h); err != nil {
			return nil, fmt.Errorf("open db %s: clock: %w", name, err)
		}
		d.clock.Observe(h)
	}
	d.start()
	return d, nil
}

// start runs the database's goroutines until it closes, in one errgroup:
// the writer, the compaction ticker and the reconsideration of rejected
// changes after an ACL change. close cancels their context and waits for
// them all, so none outlives the database (or touches a closed store).
func (d *DB) start() {
	ctx, cancel := context.WithCancel(context.Background())
	d.quit, d.stop = ctx.Done(), cancel
	d.writer = commit.NewWriter(commitEnv{d}, d.node.cfg.WriteQueue, d.node.cfg.MaxBatch, d.quit)
	d.tasks = new(errgroup.Group)
	d.tasks.Go(func() error { d.writer.Run(); return nil })
	if r := d.node.cfg.retention(); r.Interval > 0 {
		d.tasks.Go(func() error { d.compactLoop(ctx, r.Interval); return nil })
	}
	d.tasks.Go(func() error { d.reconsiderLoop(ctx); return nil })
	d.tasks.Go(func() error { d.reconWarm(ctx); return nil })
	d.tasks.Go(func() error { d.live.run(ctx); return nil })
}

func (d *DB) readMeta(name string) ([]byte, error) {
	v, err := d.store.Get(d.keys.Meta(name))
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open db %s: read %s: %w", d.name, name, err)
	}
	if want := map[string]int{layout.MetaSeq: 8, layout.MetaCount: 8, layout.MetaDigest: 40, layout.MetaHorizon: 8, layout.MetaRevisions: 8, layout.MetaTombs: 8}[name]; want != 0 && len(v) != want {
		return nil, fmt.Errorf("open db %s: %s: corrupt value", d.name, name)
	}
	return v, nil
}

// loadCounters reads the revision and tombstone counts. A database written
// before they were kept counts them once, from its history and documents,
// and stores them.
func (d *DB) loadCounters() error {
	revs, err := d.readMeta(layout.MetaRevisions)
	if err != nil {
		return err
	}
	tombs, err := d.readMeta(layout.MetaTombs)
	if err != nil {
		return err
	}
	if revs != nil && tombs != nil {
		d.revisions.Store(int64(binary.BigEndian.Uint64(revs)))
		d.tombstones.Store(int64(binary.BigEndian.Uint64(tombs)))
		return nil
	}
	var nrev, ntomb int64
	h := d.keys.Histories()
	if err := d.store.Range(h, datastore.PrefixEnd(h), false, func(k, v []byte) (bool, error) {
		nrev++
		return true, nil
	}); err != nil {
		return fmt.Errorf("open db %s: count revisions: %w", d.name, err)
	}
	docs := d.keys.Docs()
	if err := d.store.Range(docs, datastore.PrefixEnd(docs), false, func(k, v []byte) (bool, error) {
		if len(v) < 8 {
			return false, fmt.Errorf("corrupt document record")
		}
		st, err := crdt.DecodeView(v[8:])
		if err != nil {
			return false, err
		}
		if st.Exists() && st.Deleted {
			ntomb++
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("open db %s: count tombstones: %w", d.name, err)
	}
	b := d.store.NewWriteBatch()
	defer b.Close()
	b.Set(d.keys.Meta(layout.MetaRevisions), layout.Uint64(uint64(nrev)))
	b.Set(d.keys.Meta(layout.MetaTombs), layout.Uint64(uint64(ntomb)))
	if err := b.Commit(); err != nil {
		return fmt.Errorf("open db %s: store counters: %w", d.name, err)
	}
	d.revisions.Store(nrev)
	d.tombstones.Store(ntomb)
	return nil
}

// changesDigest returns a digest of the set of changes the database holds (XOR of
// their ids) and their number: two databases with the same changes have the
// same digest, whatever order they arrived in.
func (d *DB) changesDigest() (crdt.ID, uint64) {
	d.digest.Lock()
	defer d.digest.Unlock()
	return d.digest.xor, d.digest.count
}

// Name is the database's name.
func (d *DB) Name() string { return d.name }

// close stops the database's goroutines: the writer after the group in
// flight (queued requests get ErrClosed), a compaction between two steps,
// a reconsideration between two jobs. It returns when all have stopped.
func (d *DB) close() {
	d.closeOnce.Do(d.stop)
	_ = d.tasks.Wait() // its goroutines return no error
	d.live.wait()
}

func (d *DB) notifyCommit() {
	d.mu.Lock()
	close(d.mu.notify)
	d.mu.notify = make(chan struct{})
	d.mu.Unlock()
}

func (d *DB) waitChan() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mu.notify
}
