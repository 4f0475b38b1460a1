package httpapi

import (
	"math"
	"time"

	"github.com/barrel-db/barrel/node"
)

// The HTTP API's JSON shapes. Every response body built from node's values
// goes through one of these types, converted here, so the JSON is this
// file's business: renaming a field of a node type changes nothing a
// client sees. The CLI decodes (and, for PUT /replication and PUT /_acl,
// encodes) the same types. testdata/wire pins their encoding
// (TestWireJSON); field order is JSON order.

// Info is the answer of GET /: the node's identity, version and health.
type Info struct {
	PeerID  string   `json:"peer_id"`
	Version string   `json:"version"`
	Addrs   []string `json:"addresses"`
	// Components is the state of each network part (absent without
	// networking).
	Components []Component `json:"components,omitempty"`
	// Store reports the store's troubles; absent when it has had none.
	Store *StoreHealth `json:"store,omitempty"`
}

// Component is the state of one network part of the node.
type Component struct {
	Name  string `json:"name"`            // gossip, sync, blobs, discovery, mdns, dht, announcements
	State string `json:"state"`           // running, off, failed, stopped
	Error string `json:"error,omitempty"` // why it failed
}

// StoreHealth is what went wrong in the node's store since it opened.
type StoreHealth struct {
	Corruptions    uint64 `json:"corruptions"`
	LastCorruption string `json:"last_corruption,omitempty"`
	NoSpace        bool   `json:"no_space"`
	Advice         string `json:"advice"`
}

func newInfo(i node.Info) Info {
	out := Info{PeerID: i.PeerID, Version: i.Version, Addrs: i.Addrs, Components: newComponents(i.Components)}
	if s := i.Store; s != nil {
		out.Store = &StoreHealth{Corruptions: s.Corruptions, LastCorruption: s.LastCorruption, NoSpace: s.NoSpace, Advice: s.Advice}
	}
	return out
}

func newComponents(cs []node.Component) []Component {
	return convert(cs, func(c node.Component) Component {
		return Component{Name: c.Name, State: c.State, Error: c.Error}
	})
}

// DBInfo is the answer of GET /dbs/{db}.
type DBInfo struct {
	Name           string      `json:"name"`
	DocCount       int64       `json:"doc_count"`
	UpdateSeq      uint64      `json:"update_seq"`
	Revisions      int64       `json:"revisions"`
	Tombstones     int64       `json:"tombstones"`
	DiskBytes      uint64      `json:"disk_bytes"`
	LastCompaction *Compaction `json:"last_compaction"` // null: never compacted
}

func newDBInfo(d node.DBInfo) DBInfo {
	out := DBInfo{Name: d.Name, DocCount: d.DocCount, UpdateSeq: d.UpdateSeq, Revisions: d.Revisions,
		Tombstones: d.Tombstones, DiskBytes: d.DiskBytes}
	if c := d.LastCompaction; c != nil {
		lc := newCompaction(*c)
		out.LastCompaction = &lc
	}
	return out
}

// Compaction is the answer of POST /dbs/{db}/_compact, and a database's
// last compaction in DBInfo.
type Compaction struct {
	Docs        int           `json:"docs"`
	Folded      int           `json:"revisions_folded"`
	Tombstones  int           `json:"tombstones_purged"`
	BytesBefore uint64        `json:"bytes_before"`
	BytesAfter  uint64        `json:"bytes_after"`
	Took        time.Duration `json:"took_ns"`
	At          time.Time     `json:"at"`
}

func newCompaction(c node.CompactionStats) Compaction {
	return Compaction{Docs: c.Docs, Folded: c.Folded, Tombstones: c.Tombstones, BytesBefore: c.BytesBefore,
		BytesAfter: c.BytesAfter, Took: c.Took, At: c.At}
}

// PurgeResult is the answer of POST /dbs/{db}/_purge.
type PurgeResult struct {
	Purged      []string      `json:"purged"`
	NotFound    []string      `json:"not_found"`
	Changes     int           `json:"changes"`
	BytesBefore uint64        `json:"bytes_before"`
	BytesAfter  uint64        `json:"bytes_after"`
	Took        time.Duration `json:"took_ns"`
}

func newPurgeResult(p node.PurgeResult) PurgeResult {
	return PurgeResult{Purged: p.Purged, NotFound: p.NotFound, Changes: p.Changes, BytesBefore: p.BytesBefore,
		BytesAfter: p.BytesAfter, Took: p.Took}
}

// BlobCompaction is the answer of POST /dbs/{db}/blobs/compact.
type BlobCompaction struct {
	Blobs   int   `json:"blobs"`
	Bytes   int64 `json:"bytes"`
	Uploads int   `json:"uploads"`
}

func newBlobCompaction(s node.CompactStats) BlobCompaction {
	return BlobCompaction{Blobs: s.Blobs, Bytes: s.Bytes, Uploads: s.Uploads}
}

// Result is the answer of a write of one document or attachment.
type Result struct {
	ID  string `json:"id"`
	Rev string `json:"rev"`
}

func newResult(r node.Result) Result { return Result{ID: r.ID, Rev: r.Rev} }

// Revision is one entry of GET /dbs/{db}/docs/{id}/_history.
type Revision struct {
	Rev       string    `json:"rev"`
	Parents   []string  `json:"parents"`
	Author    string    `json:"author,omitempty"`
	Time      time.Time `json:"time"`
	Seq       uint64    `json:"seq"`
	Ops       int       `json:"ops"`
	Tx        string    `json:"tx,omitempty"`
	Compacted bool      `json:"compacted,omitempty"`
	Heads     []string  `json:"heads,omitempty"`
	Folded    uint64    `json:"folded,omitempty"`
}

func newRevisions(h []node.Revision) []Revision {
	return convert(h, func(r node.Revision) Revision {
		return Revision{Rev: r.Rev, Parents: r.Parents, Author: r.Author, Time: r.Time, Seq: r.Seq, Ops: r.Ops,
			Tx: r.Tx, Compacted: r.Compacted, Heads: r.Heads, Folded: r.Folded}
	})
}

// Conflict is one entry of a document's _conflicts.
type Conflict struct {
	Path    string `json:"path"`
	Value   any    `json:"value,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	Rev     string `json:"rev"`
}

func newConflicts(cs []node.Conflict) []Conflict {
	return convert(cs, func(c node.Conflict) Conflict {
		return Conflict{Path: c.Path, Value: c.Value, Deleted: c.Deleted, Rev: c.Rev}
	})
}

// DocSummary is one row of GET /dbs/{db}/docs.
type DocSummary struct {
	ID      string `json:"id"`
	Rev     string `json:"rev"`
	Deleted bool   `json:"deleted,omitempty"`
}

func newDocSummaries(rows []node.DocSummary) []DocSummary {
	return convert(rows, func(d node.DocSummary) DocSummary {
		return DocSummary{ID: d.ID, Rev: d.Rev, Deleted: d.Deleted}
	})
}

// Change is one entry of the changes feed (and the data of one SSE event).
type Change struct {
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	Rev     string `json:"rev"`
	Deleted bool   `json:"deleted,omitempty"`
}

func newChange(c node.Change) Change {
	return Change{Seq: c.Seq, ID: c.ID, Rev: c.Rev, Deleted: c.Deleted}
}

// PeerInfo is one connected peer of GET /peers.
type PeerInfo struct {
	ID    string           `json:"id"`
	Addrs []string         `json:"addresses"`
	DBs   []PeerReplStatus `json:"dbs"`
}

func newPeerInfos(ps []node.PeerInfo) []PeerInfo {
	return convert(ps, func(p node.PeerInfo) PeerInfo {
		return PeerInfo{ID: p.ID, Addrs: p.Addrs, DBs: newPeerReplStatuses(p.DBs)}
	})
}

// PeerReplStatus is the replication of one database with one peer.
type PeerReplStatus struct {
	Peer       string        `json:"peer,omitempty"`
	DB         string        `json:"db"`
	Running    bool          `json:"running"`
	LastSync   time.Time     `json:"last_sync,omitzero"`
	LastError  string        `json:"last_error,omitempty"`
	Checkpoint uint64        `json:"checkpoint"`
	Lag        uint64        `json:"lag"`
	Pulled     int           `json:"last_pulled"`
	Bytes      int64         `json:"last_bytes"`
	Connected  bool          `json:"connected"`
	SyncedOnce bool          `json:"synced_once"`
	LastSynced time.Time     `json:"last_synced,omitzero"`
	Progress   *PullProgress `json:"progress,omitempty"` // while a pull runs
}

func newPeerReplStatuses(ss []node.PeerReplStatus) []PeerReplStatus {
	return convert(ss, func(s node.PeerReplStatus) PeerReplStatus {
		return PeerReplStatus{Peer: s.Peer, DB: s.DB, Running: s.Running, LastSync: s.LastSync, LastError: s.LastError,
			Checkpoint: s.Checkpoint, Lag: s.Lag, Pulled: s.Pulled, Bytes: s.Bytes,
			Connected: s.Connected, SyncedOnce: s.SyncedOnce, LastSynced: s.LastSynced, Progress: newPullProgress(s.Progress)}
	})
}

// PullProgress is a running pull's progress, in the peer's feed entries.
type PullProgress struct {
	Started   time.Time `json:"started"`
	Done      uint64    `json:"done"`
	Expected  uint64    `json:"expected"` // 0: not known yet
	Applied   int       `json:"applied"`
	Rate      float64   `json:"docs_per_second"`
	Remaining float64   `json:"remaining_seconds"` // 0: not known
}

func newPullProgress(p *node.PullProgress) *PullProgress {
	if p == nil {
		return nil
	}
	return &PullProgress{Started: p.Started, Done: p.Done, Expected: p.Expected, Applied: p.Applied,
		Rate: math.Round(p.Rate*10) / 10, Remaining: math.Round(p.Remaining.Seconds()*10) / 10}
}

// BlobStatus is a database's attachments in flight.
type BlobStatus struct {
	Wanted      int   `json:"wanted"`
	Fetching    int   `json:"fetching"`
	WantedBytes int64 `json:"wanted_bytes"`
}

// ReplicationState is the answer of GET and PUT /dbs/{db}/replication, and
// the data of each event of its feed=eventsource stream.
type ReplicationState struct {
	DB      string           `json:"db"`
	Setting Replication      `json:"setting"`
	Seq     uint64           `json:"update_seq"`
	Peers   []PeerReplStatus `json:"peers"`
	Blobs   BlobStatus       `json:"blobs"`
	// Connectors are the database's CouchDB connectors as the couch
	// endpoint reports them (Config.Connectors); absent without any.
	Connectors any `json:"connectors,omitempty"`
}

func newReplicationState(s node.ReplicationState) ReplicationState {
	return ReplicationState{DB: s.DB, Setting: newReplication(s.Setting), Seq: s.Seq, Peers: newPeerReplStatuses(s.Peers),
		Blobs: BlobStatus{Wanted: s.Blobs.Wanted, Fetching: s.Blobs.Fetching, WantedBytes: s.Blobs.WantedBytes}}
}

// Replication is a database's replication setting: the body of PUT
// /dbs/{db}/replication and the setting its state shows.
type Replication struct {
	Off      bool   `json:"off,omitempty"`
	IDPrefix string `json:"id_prefix,omitempty"`
	Where    []Cond `json:"where,omitempty"`
}

func newReplication(r node.Replication) Replication {
	return Replication{Off: r.Off, IDPrefix: r.IDPrefix, Where: convert(r.Where, func(c node.Cond) Cond {
		return Cond{Path: c.Path, Op: c.Op, Value: c.Value}
	})}
}

// Cond is one condition of a replication filter or a query.
type Cond struct {
	Path  string `json:"path"`
	Op    string `json:"op"`
	Value any    `json:"value,omitempty"` // none for exists
}

// ACL is a database's access control list: the answer of GET and PUT
// /dbs/{db}/_acl, and (without revoked, which PUT ignores) its body.
type ACL struct {
	Owner   string               `json:"owner"`
	Admins  []string             `json:"admins"`
	Readers []string             `json:"readers"`
	Writers []string             `json:"writers"`
	Revoked map[string]time.Time `json:"revoked,omitempty"`
}

func newACL(a node.ACL) ACL {
	return ACL{Owner: a.Owner, Admins: a.Admins, Readers: a.Readers, Writers: a.Writers, Revoked: a.Revoked}
}

// convert maps f over in, keeping a nil slice nil (JSON null) and an empty
// one empty ([]).
func convert[S, T any](in []S, f func(S) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
