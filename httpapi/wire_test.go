package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/barrel-db/barrel/node"
)

var updateWire = flag.Bool("update-wire", false, "rewrite testdata/wire/*.json from the current encoding")

// wireCase is one response body the HTTP API writes, built the way its
// handler builds it.
type wireCase struct {
	name string
	v    func() any
	// marshal encodes with json.Marshal (HTML escaped, as the SSE feed
	// does) instead of writeJSON's encoder.
	marshal bool
}

// encodeLikeWriteJSON encodes v as writeJSON does (no HTML escaping),
// without the final newline.
func encodeLikeWriteJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

var (
	wireTime = time.Date(2026, 12, 2, 22, 47, 28, 123456789, time.UTC)
	wirePeer = "12D3KooWHbbf5vX3rPqJ9Y1yHAkT8cUGZ6oZ5cS1zQjvQm9c8Xy1"
	wireRev  = "b5f0c3a1d2e4f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e9"
)

func wireCompaction() node.CompactionStats {
	return node.CompactionStats{Docs: 10, Folded: 7, Tombstones: 2, BytesBefore: 4096, BytesAfter: 1024, Took: 1500 * time.Millisecond, At: wireTime}
}

// wireCases are every response body made of node's types, each with its
// fields set and with the zero values omitempty drops.
func wireCases() []wireCase {
	cs := wireCompaction()
	note := node.Cond{Path: "/type", Op: "==", Value: "note"}
	synced := node.PeerReplStatus{Peer: wirePeer, DB: "db", Running: true, LastSync: wireTime, LastError: "stream reset", Checkpoint: 42, Lag: 3, Pulled: 17, Bytes: 9000,
		Connected: true, SyncedOnce: true, LastSynced: wireTime.Add(-time.Minute),
		Progress: &node.PullProgress{Started: wireTime, Done: 3000, Expected: 10_000, Applied: 2990, Rate: 1234.5678, Remaining: 5670 * time.Millisecond}}
	return []wireCase{
		{name: "info", v: func() any {
			return newInfo(node.Info{PeerID: wirePeer, Version: "v0.1.0", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"},
				Components: []node.Component{{Name: "sync", State: node.StateRunning}, {Name: "mdns", State: node.StateFailed, Error: "no multicast <here>"}},
				Store:      &node.StoreHealth{Corruptions: 1, LastCorruption: "000012.sst: checksum", NoSpace: true, Advice: "restore & resync"}})
		}},
		{name: "info_zero", v: func() any { return newInfo(node.Info{}) }},
		{name: "info_healthy_store", v: func() any {
			return newInfo(node.Info{PeerID: wirePeer, Addrs: []string{}, Store: &node.StoreHealth{}})
		}},
		{name: "db_info", v: func() any {
			return newDBInfo(node.DBInfo{Name: "db", DocCount: 3, UpdateSeq: 9, Revisions: 12, Tombstones: 1, DiskBytes: 65536, LastCompaction: &cs})
		}},
		{name: "db_info_zero", v: func() any { return newDBInfo(node.DBInfo{}) }},
		{name: "compaction", v: func() any { return newCompaction(cs) }},
		{name: "compaction_zero", v: func() any { return newCompaction(node.CompactionStats{}) }},
		{name: "purge", v: func() any {
			return newPurgeResult(node.PurgeResult{Purged: []string{"a", "b"}, NotFound: []string{"zz"}, Changes: 5, BytesBefore: 100, BytesAfter: 50, Took: time.Second})
		}},
		{name: "purge_zero", v: func() any { return newPurgeResult(node.PurgeResult{}) }},
		{name: "purge_empty", v: func() any { return newPurgeResult(node.PurgeResult{Purged: []string{}, NotFound: []string{}}) }},
		{name: "blob_compaction", v: func() any { return newBlobCompaction(node.CompactStats{Blobs: 2, Bytes: 1 << 20, Uploads: 1}) }},
		{name: "result", v: func() any { return newResult(node.Result{ID: "doc<1>", Rev: wireRev}) }},
		{name: "history", v: func() any {
			return map[string]any{"id": "doc", "history": newRevisions([]node.Revision{
				{Rev: wireRev, Parents: []string{"p1", "p2"}, Author: wirePeer, Time: wireTime, Seq: 8, Ops: 2, Tx: "tx1"},
				{Rev: "base", Parents: []string{}, Time: wireTime, Compacted: true, Heads: []string{"h1"}, Folded: 6},
				{},
			})}
		}},
		{name: "doc_conflicts", v: func() any {
			return renderDoc(node.Document{ID: "doc", Rev: wireRev, Body: map[string]any{"a": int64(1)}, Conflicts: []node.Conflict{
				{Path: "/a", Value: int64(2), Rev: "r2"},
				{Path: "", Deleted: true, Rev: "r3"},
				{Path: "/b", Value: false, Rev: "r4"},
			}}, true, []string{wireRev, "r1"})
		}},
		{name: "doc_no_conflicts", v: func() any {
			return renderDoc(node.Document{ID: "doc", Rev: wireRev, Body: map[string]any{}}, true, nil)
		}},
		{name: "list", v: func() any {
			return listPage{Docs: newDocSummaries([]node.DocSummary{{ID: "a", Rev: "r1"}, {ID: "b&c", Rev: "r2", Deleted: true}}), Next: "b&c"}
		}},
		{name: "list_empty", v: func() any { return listPage{Docs: newDocSummaries([]node.DocSummary{})} }},
		{name: "changes", v: func() any {
			return newChangesPage([]node.Change{{Seq: 1, ID: "a", Rev: "r1"}, {Seq: 2, ID: "<b>", Rev: "r2", Deleted: true}}, 0, 2)
		}},
		{name: "changes_empty", v: func() any { return newChangesPage(nil, 5, 7) }},
		{name: "changes_sse_event", marshal: true, v: func() any { return newChange(node.Change{Seq: 2, ID: "<b>&", Rev: "r2", Deleted: true}) }},
		{name: "peers", v: func() any {
			return peerList{Peers: newPeerInfos([]node.PeerInfo{
				{ID: wirePeer, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, DBs: []node.PeerReplStatus{{DB: "db", Checkpoint: 4}, synced}},
				{ID: wirePeer},
			}), Components: newComponents([]node.Component{{Name: "gossip", State: node.StateOff}})}
		}},
		{name: "peers_empty", v: func() any { return peerList{Peers: newPeerInfos([]node.PeerInfo{})} }},
		{name: "replication_state", v: func() any {
			return newReplicationState(node.ReplicationState{DB: "db", Seq: 12,
				Setting: node.Replication{Off: true, IDPrefix: "k-", Where: []node.Cond{note, {Path: "/n", Op: ">=", Value: int64(3)}, {Path: "/due", Op: "exists"}, {Path: "/done", Op: "==", Value: false}}},
				Peers:   []node.PeerReplStatus{synced}, Blobs: node.BlobStatus{Wanted: 3, Fetching: 1, WantedBytes: 1 << 20}})
		}},
		{name: "replication_state_zero", v: func() any { return newReplicationState(node.ReplicationState{DB: "db"}) }},
		{name: "acl", v: func() any {
			return newACL(node.ACL{Owner: wirePeer, Admins: []string{"admin"}, Readers: []string{node.AnyPeer}, Writers: []string{"w1", "w2"},
				Revoked: map[string]time.Time{"zed": wireTime, "amy": wireTime.Add(-time.Hour)}})
		}},
		{name: "acl_zero", v: func() any { return newACL(node.ACL{}) }},
		{name: "acl_empty_lists", v: func() any {
			return newACL(node.ACL{Owner: wirePeer, Admins: []string{}, Readers: []string{}, Writers: []string{}, Revoked: map[string]time.Time{}})
		}},
	}
}

// TestWireJSON pins the JSON of every response body built from node's
// values against testdata/wire: field names, order, omitempty and null
// versus [] all stay as they are, whatever node's Go types become.
func TestWireJSON(t *testing.T) {
	for _, c := range wireCases() {
		t.Run(c.name, func(t *testing.T) {
			var got []byte
			if c.marshal {
				var err error
				if got, err = json.Marshal(c.v()); err != nil {
					t.Fatal(err)
				}
			} else {
				got = encodeLikeWriteJSON(t, c.v())
			}
			path := filepath.Join("testdata", "wire", c.name+".json")
			if *updateWire {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				t.Fatalf("no golden %s (run with -update-wire once)", path)
			}
			if err != nil {
				t.Fatal(err)
			}
			if want = bytes.TrimSuffix(want, []byte("\n")); !bytes.Equal(got, want) {
				t.Errorf("JSON changed:\n got  %s\n want %s", got, want)
			}
		})
	}
}

// TestWireCoversNodeFields: each wire type has as many fields as the node
// type it converts, so a field added to node is a decision (show it, or
// say here why not), not a silent omission from the HTTP API.
func TestWireCoversNodeFields(t *testing.T) {
	for _, c := range []struct{ node, wire any }{
		{node.Info{}, Info{}},
		{node.Component{}, Component{}},
		{node.StoreHealth{}, StoreHealth{}},
		{node.DBInfo{}, DBInfo{}},
		{node.CompactionStats{}, Compaction{}},
		{node.PurgeResult{}, PurgeResult{}},
		{node.CompactStats{}, BlobCompaction{}},
		{node.Result{}, Result{}},
		{node.Revision{}, Revision{}},
		{node.Conflict{}, Conflict{}},
		{node.DocSummary{}, DocSummary{}},
		{node.Change{}, Change{}},
		{node.PeerInfo{}, PeerInfo{}},
		{node.PeerReplStatus{}, PeerReplStatus{}},
		{node.ReplicationState{}, ReplicationState{}},
		{node.PullProgress{}, PullProgress{}},
		{node.BlobStatus{}, BlobStatus{}},
		{node.Replication{}, Replication{}},
		{node.Cond{}, Cond{}},
		{node.ACL{}, ACL{}},
	} {
		nt, wt := reflect.TypeOf(c.node), reflect.TypeOf(c.wire)
		extra := 0
		if wt == reflect.TypeOf(ReplicationState{}) {
			extra = 1 // Connectors: the couch endpoint's, not node's
		}
		if nt.NumField()+extra != wt.NumField() {
			t.Errorf("%s has %d fields, %s %d: convert the new field in wire.go (or say why it is not shown)", nt, nt.NumField(), wt, wt.NumField())
		}
	}
}
