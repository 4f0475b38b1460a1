package node

import (
	"context"
	"errors"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	bsync "github.com/barrel-db/barrel/sync"
)

// The node as the sync protocol sees it: syncStore (bsync.Store,
// SnapshotStore, Horizoner, read authorization) and blobStore
// (bsync.BlobStore) resolve the database a peer names and hand the call
// to the DB method that does the work (replica.go, snapshot.go, acl.go,
// blob_replica.go). Every entry point of peer input into node is here.

// syncStore is the node as the sync protocol sees it (bsync.Store).
type syncStore struct{ n *Node }

var (
	_ bsync.Store         = syncStore{}
	_ bsync.SnapshotStore = syncStore{}
	_ bsync.Horizoner     = syncStore{}
	_ bsync.ReconStore    = syncStore{}
	_ bsync.BlobStore     = blobStore{}
)

func (s syncStore) db(name string) (*DB, error) {
	d, err := s.n.DB(name)
	if errors.Is(err, ErrDBNotFound) {
		return nil, bsync.ErrNoDB
	}
	return d, err
}

// Databases implements bsync.Store.
func (s syncStore) Databases(ctx context.Context) ([]bsync.Replicated, error) {
	names, err := s.n.ListDBs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]bsync.Replicated, 0, len(names))
	for _, name := range names {
		d, err := s.n.DB(name)
		if err != nil {
			continue // dropped meanwhile
		}
		r := d.Replication()
		if r.Off {
			continue
		}
		out = append(out, bsync.Replicated{DB: name, Filter: r.filter()})
	}
	return out, nil
}

// Feed implements bsync.Store.
func (s syncStore) Feed(ctx context.Context, db string, since uint64, limit int, f *bsync.Filter) ([]bsync.Entry, uint64, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, 0, err
	}
	return d.syncFeed(ctx, since, limit, f)
}

// Has implements bsync.Store. A change this database rejected counts as
// held: the puller must not fetch it again.
func (s syncStore) Has(ctx context.Context, db string, ids []crdt.ID) ([]bool, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, err
	}
	return d.syncHas(ctx, ids)
}

// Changes implements bsync.Store.
func (s syncStore) Changes(ctx context.Context, db string, ids []crdt.ID) ([][]byte, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, err
	}
	return d.syncChanges(ctx, ids)
}

// Apply implements bsync.Store.
func (s syncStore) Apply(ctx context.Context, db string, from peer.ID, changes []*crdt.Change) (int, error) {
	d, err := s.db(db)
	if err != nil {
		return 0, err
	}
	return d.syncApply(ctx, from, changes)
}

// Checkpoint implements bsync.Store.
func (s syncStore) Checkpoint(ctx context.Context, db string, remote peer.ID) (uint64, error) {
	d, err := s.db(db)
	if err != nil {
		return 0, err
	}
	return d.syncCheckpoint(ctx, remote)
}

// SetCheckpoint implements bsync.Store.
func (s syncStore) SetCheckpoint(ctx context.Context, db string, remote peer.ID, seq uint64) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	return d.syncSetCheckpoint(ctx, remote, seq)
}

// Horizon implements bsync.Horizoner: the compaction horizon, and the
// highest seq of a base installed from a peer other than remote (remote
// has those documents' history itself: its own changes skip it anyway).
func (s syncStore) Horizon(ctx context.Context, db string, remote peer.ID) (uint64, error) {
	d, err := s.db(db)
	if err != nil {
		return 0, err
	}
	return d.syncHorizon(ctx, remote)
}

// OpenSnapshot implements bsync.SnapshotStore.
func (s syncStore) OpenSnapshot(ctx context.Context, db string, remote peer.ID, after string, f *bsync.Filter) (bsync.Snapshot, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, err
	}
	return d.syncOpenSnapshot(ctx, remote, after, f)
}

// SnapshotProgress implements bsync.SnapshotStore.
func (s syncStore) SnapshotProgress(ctx context.Context, db string, p peer.ID) (string, error) {
	d, err := s.db(db)
	if err != nil {
		return "", err
	}
	return d.syncSnapshotProgress(ctx, p)
}

// InstallSnapshot implements bsync.SnapshotStore.
//
// Invariant (DESIGN.md 6): nothing in a snapshot is believed that no
// signature the ACL trusts covers. The _acl document is never folded, so
// a snapshot that carries a base for it is forged and refused whole; its
// changes are applied by the access rules, exactly as in a pull (the
// first one on trust on first use, every later one by an owner or an
// admin as of its parents). Only then is the sender judged, against the
// ACL so established: a base carries no signature, so bases are taken
// only from a peer the ACL trusts to fold for everyone (mayInstallFrom).
func (s syncStore) InstallSnapshot(ctx context.Context, db string, p peer.ID, head bsync.SnapshotHead, after string, docs []bsync.SnapshotDoc, partial bool) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	defer d.reconInvalidate() // documents replaced without a feed entry
	return d.syncInstallSnapshot(ctx, p, head, after, docs, partial)
}

// FinishSnapshot implements bsync.SnapshotStore.
func (s syncStore) FinishSnapshot(ctx context.Context, db string, p peer.ID, head bsync.SnapshotHead, after string, partial bool) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	defer d.reconInvalidate()
	return d.syncFinishSnapshot(ctx, p, head, after, partial)
}

// ReconIndex implements bsync.ReconStore (recon.go).
func (s syncStore) ReconIndex(ctx context.Context, db string) (*bsync.ReconIndex, uint64, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, 0, err
	}
	return d.reconIndex(ctx)
}

// ReconReady implements bsync.ReconReadiness: whether db's reconciliation
// set is built (a database just opened builds it in the background).
func (s syncStore) ReconReady(db string) bool {
	d, err := s.db(db)
	return err != nil || d.reconReady() // an unknown database answers its own error
}

// Heads implements bsync.ReconStore.
func (s syncStore) Heads(ctx context.Context, db string, docs []string) ([][]crdt.ID, error) {
	d, err := s.db(db)
	if err != nil {
		return nil, err
	}
	return d.syncHeads(ctx, docs)
}

// AuthorizeRead implements bsync.Store (and, through blobStore,
// bsync.BlobStore): a peer that may not read
// the database is refused before it learns anything, even ids.
func (s syncStore) AuthorizeRead(ctx context.Context, db string, remote peer.ID) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	return d.syncAuthorizeRead(ctx, remote)
}

// blobStore is the node as the blob protocol sees it; its read check is
// the sync server's (syncStore.AuthorizeRead).
type blobStore struct{ syncStore }

// OpenBlob implements bsync.BlobStore.
func (s blobStore) OpenBlob(ctx context.Context, db string, d bsync.Digest) (io.ReadSeekCloser, int64, error) {
	dd, err := s.db(db)
	if err != nil {
		return nil, 0, err
	}
	return dd.openBlob(digest(d))
}

// ReceiveBlob implements bsync.BlobStore.
func (s blobStore) ReceiveBlob(ctx context.Context, db string, d bsync.Digest) (bsync.BlobSink, error) {
	dd, err := s.db(db)
	if err != nil {
		return nil, err
	}
	sk, err := dd.receiveBlob(digest(d))
	if err != nil {
		return nil, err
	}
	return sk, nil
}
