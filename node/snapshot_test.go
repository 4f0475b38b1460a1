package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fillDocs writes n documents, revs revisions each, in bulks of 1,000.
func fillDocs(t *testing.T, d *DB, prefix string, n, revs int) {
	t.Helper()
	for r := range revs {
		for lo := 0; lo < int(n); lo += 1000 {
			ops := make([]DocOp, 0, 1000)
			for i := lo; i < min(lo+1000, int(n)); i++ {
				ops = append(ops, DocOp{ID: fmt.Sprintf("%s%06d", prefix, i), Body: map[string]any{
					"rev": r, "name": fmt.Sprintf("doc %d", i), "locations": map[string]any{"country": fmt.Sprintf("c%d", i%10)}}})
			}
			if _, err := d.Bulk(t.Context(), ops, false); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func docCount(t *testing.T, d *DB) int64 {
	info, err := d.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.DocCount
}

func mustCompact(t *testing.T, d *DB, r *Retention) CompactionStats {
	t.Helper()
	st, err := d.Compact(t.Context(), r)
	if err != nil {
		t.Fatalf("compact: %v", err)
	}
	return st
}

// TestSnapshotCatchUp: a fresh peer joining a compacted database receives
// its state as a snapshot over real libp2p hosts, ends byte-identical, and
// then replicates incrementally both ways.
func TestSnapshotCatchUp(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	s, f := tn.db(0, "db"), tn.db(1, "db")
	fillDocs(t, s, "d", 500, 3)
	mustPut(t, s, "x", map[string]any{"v": 1}, "")
	if _, err := s.Delete(t.Context(), "x", ""); err != nil {
		t.Fatal(err)
	}
	if st := mustCompact(t, s, &Retention{KeepRevisions: 1, TombstonesFor: 1000 * time.Hour}); st.Folded != 500*2+1 {
		t.Fatalf("folded %d, want %d", st.Folded, 500*2+1)
	}
	tn.connect(0, 1)
	waitFor(t, "snapshot catch-up", 30*time.Second, func() bool { return docCount(t, f) == 500 })
	waitFor(t, "identical documents", 10*time.Second, func() bool { return sameDocsNow(tn, "db") })
	if base, _, err := f.readFold("d000007"); err != nil || base == nil {
		t.Fatalf("the fresh peer has no base for d000007 (%v): it replayed history instead of a snapshot", err)
	}
	if h, err := f.History(t.Context(), "d000007"); err != nil || len(h) == 0 {
		t.Fatalf("history on the fresh peer: %v %v", h, err)
	}
	if d := mustGet(t, f, "x"); !d.Deleted {
		t.Fatalf("tombstone not in the snapshot: %+v", d)
	}
	is, _ := s.Info(t.Context())
	if inf, _ := f.Info(t.Context()); inf.Revisions != is.Revisions || inf.Tombstones != 1 || is.Tombstones != 1 {
		t.Fatalf("counts after the snapshot: %d revisions and %d tombstones, the server %d and %d",
			inf.Revisions, inf.Tombstones, is.Revisions, is.Tombstones)
	}
	// Incremental both ways after the snapshot.
	mustPut(t, s, "d000001", map[string]any{"from": "s"}, "")
	mustPut(t, f, "d000002", map[string]any{"from": "f"}, "")
	mustPut(t, f, "new", map[string]any{"from": "f"}, "")
	waitFor(t, "writes after the snapshot", 15*time.Second, func() bool {
		a, _ := s.Get(t.Context(), "new")
		b, _ := f.Get(t.Context(), "d000001")
		return a.Body["from"] == "f" && b.Body["from"] == "s" && sameDocsNow(tn, "db")
	})
}

// TestSnapshotReturningPeer: 50,000 documents are deleted and purged while
// a peer is away; it returns with edits of its own. No deleted document
// comes back, its edits are kept, and both peers converge.
func TestSnapshotReturningPeer(t *testing.T) {
	n := int64(50_000)
	if raceEnabled {
		n = 5_000 // the race detector makes the full size take minutes
	}
	tn := newTestNet(t, 2)
	tn.createDB("db")
	s, r := tn.db(0, "db"), tn.db(1, "db")
	ctx := t.Context()
	fillDocs(t, s, "gone-", int(n), 1)
	fillDocs(t, s, "keep-", 10, 1)
	tn.connect(0, 1)
	waitFor(t, "initial sync", 60*time.Second, func() bool { return docCount(t, r) == n+10 })
	tn.cut(0, 1)

	// Away: the peer edits a live document (two fields, one also edited by
	// the other side), one document the other side deletes, and creates one.
	mustPut(t, r, "keep-000001", map[string]any{"r": 1, "name": "from r"}, "")
	mustPut(t, r, "gone-000002", map[string]any{"r": "edited while away"}, "")
	mustPut(t, r, "created-away", map[string]any{"r": true}, "")
	// Meanwhile: the other side edits, deletes 50,000 and compacts past
	// the horizon.
	mustPut(t, s, "keep-000001", map[string]any{"s": 1, "name": "from s"}, "")
	for lo := 0; lo < int(n); lo += 1000 {
		ops := make([]DocOp, 0, 1000)
		for i := lo; i < min(lo+1000, int(n)); i++ {
			ops = append(ops, DocOp{ID: fmt.Sprintf("gone-%06d", i), Delete: true})
		}
		if _, err := s.Bulk(ctx, ops, false); err != nil {
			t.Fatal(err)
		}
	}
	st := mustCompact(t, s, foldAll)
	if int64(st.Tombstones) != n || st.BytesAfter >= st.BytesBefore/2 {
		t.Fatalf("compaction: %d tombstones purged (want %d), %d -> %d bytes", st.Tombstones, n, st.BytesBefore, st.BytesAfter)
	}
	list, err := s.List(ctx, ListOptions{Prefix: "gone-", Deleted: true, Limit: 10})
	if err != nil || len(list) != 0 {
		t.Fatalf("tombstones still listed after compaction: %v %v", list, err)
	}

	tn.heal(0, 1)
	tn.connect(0, 1)
	waitFor(t, "the returning peer converges", 60*time.Second, func() bool {
		c, _ := s.Get(ctx, "created-away")
		return c.Body != nil && docCount(t, r) == docCount(t, s) && sameDocsNow(tn, "db")
	})
	for _, d := range []*DB{s, r} {
		live, err := d.List(ctx, ListOptions{Prefix: "gone-", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		// The rule (docs/design.md, Compaction): an edit made away to a
		// document deleted and purged meanwhile recreates it with that
		// edit only; every other deleted document stays gone.
		if len(live) != 1 || live[0].ID != "gone-000002" {
			t.Fatalf("%s: deleted documents came back: %v", d.node.PeerID(), live)
		}
		if g := mustGet(t, d, "gone-000002"); g.Body["r"] != "edited while away" || g.Body["name"] != nil {
			t.Fatalf("recreated document: %v", g.Body)
		}
		k := mustGet(t, d, "keep-000001")
		if k.Body["r"] != int64(1) || k.Body["s"] != int64(1) || k.Body["name"] != "from r" {
			t.Fatalf("edits of both sides not kept: %v", k.Body)
		}
	}
	if got := docCount(t, s); got != 10+2 {
		t.Fatalf("%d live documents, want 12", got)
	}
}

// TestSnapshotResumes: an install cut half-way resumes after the last
// document it installed.
func TestSnapshotResumes(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.createDB("db")
	s, f := tn.db(0, "db"), tn.db(1, "db")
	if err := tn.nodes[1].SetReplication(t.Context(), "db", Replication{Off: true}); err != nil {
		t.Fatal(err) // the test drives the client itself
	}
	saved := snapshotBatchBytes
	snapshotBatchBytes = 16 << 10 // many batches, so the cut falls between two
	defer func() { snapshotBatchBytes = saved }()
	const n = 3000
	fillDocs(t, s, "d", n, 2)
	mustCompact(t, s, foldAll)
	tn.connect(1, 0)
	client := tn.nodes[1].net.Load().repl.Client()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := client.Snapshot(ctx, tn.nodes[0].PeerID(), "db", nil)
		done <- err
	}()
	waitFor(t, "a first batch installed", 20*time.Second, func() bool {
		after, _ := syncStore{tn.nodes[1]}.SnapshotProgress(t.Context(), "db", tn.nodes[0].PeerID())
		return after != ""
	})
	cancel()
	if err := <-done; err == nil {
		t.Skip("the snapshot finished before the cut; nothing to resume")
	}
	installed := docCount(t, f)
	if installed == 0 || installed == n {
		t.Fatalf("%d documents installed before the cut, want a part", installed)
	}
	st, err := client.Snapshot(t.Context(), tn.nodes[0].PeerID(), "db", nil)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if int64(st.Docs) > n-installed+1+1 { // the _acl document, if any, comes again
		t.Fatalf("the resumed session sent %d documents; %d were left", st.Docs, n-int(installed))
	}
	if got := docCount(t, f); got != n {
		t.Fatalf("%d documents after the resumed install, want %d", got, n)
	}
	if !sameDocsNow(tn, "db") {
		t.Fatal("documents differ after the resumed install")
	}
	cp, _ := syncStore{tn.nodes[1]}.Checkpoint(t.Context(), "db", tn.nodes[0].PeerID())
	if cp == 0 {
		t.Fatal("no checkpoint after the install")
	}
}

// TestSnapshotFromNonWriterRefused: with access control on, a snapshot
// from a peer that may read but not write is refused: its bases carry no
// signature to check.
func TestSnapshotFromNonWriterRefused(t *testing.T) {
	tn := newTestNet(t, 3) // 0 owner, 1 reader that compacts, 2 fresh
	ctx := t.Context()
	if err := tn.nodes[0].CreateDB(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	mustSetACL(t, tn.nodes[0], "db", ACL{Owner: tn.nodes[0].PeerID().String(), Readers: []string{AnyPeer},
		Writers: []string{tn.nodes[0].PeerID().String()}})
	for _, i := range []int{1, 2} {
		if err := tn.nodes[i].CreateDB(ctx, "db"); err != nil {
			t.Fatal(err)
		}
	}
	o, reader, fresh := tn.db(0, "db"), tn.db(1, "db"), tn.db(2, "db")
	fillDocs(t, o, "d", 100, 2)
	tn.connect(1, 0)
	waitFor(t, "the reader syncs", 20*time.Second, func() bool { return docCount(t, reader) == 101 }) // and _acl
	tn.cut(1, 0)
	mustCompact(t, reader, foldAll)
	tn.connect(2, 1)
	waitFor(t, "the refusal", 20*time.Second, func() bool { return rejectedCount(t, tn.nodes[2], "db", "snapshot_not_writer") > 0 })
	// The _acl document arrives (its changes are the owner's, signed and
	// checked as in a pull); no base from the reader does.
	if c := docCount(t, fresh); c > 1 || (c == 1 && !hasDoc(fresh, ACLDocID)) {
		t.Fatalf("the fresh peer installed %d documents from a non-writer", c)
	}
	tn.connect(2, 0)
	waitFor(t, "sync from the owner", 20*time.Second, func() bool { return docCount(t, fresh) == 101 })
}

// sameDocsNow reports whether every running node holds byte-identical
// document states (sameDocs, as a condition to wait for).
func sameDocsNow(tn *testNet, name string) bool {
	_, diff := tn.docsAgree(name)
	return diff == ""
}

var _ = errors.New

// TestSnapshotCatchUpTime: a fresh peer joining a database of 100,000
// documents with 10 revisions each (compacted by the server's retention)
// holds them all in at most 1.5 times what it needs when each has one
// revision (issue 7). Both are measured in the same run.
//
// Under the race detector the test checks only that both peers catch up:
// the detector slows every catch-up about tenfold and not evenly (the
// snapshot install pays more for it than the pull). At 10,000 documents
// on the same loaded 2-core machine the ratio was 0.72-0.82x without the
// detector and 1.05-1.29x with it, close enough to 1.5 for a noisier CI
// machine to cross. The ratio is a claim about the product, which never
// runs with the detector; the non-race run of make test checks it at full
// size.
func TestSnapshotCatchUpTime(t *testing.T) {
	if testing.Short() {
		t.Skip("a million writes")
	}
	n := 100_000
	if raceEnabled {
		n = 10_000
	}
	if v := os.Getenv("BARREL_CATCHUP_DOCS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	// Both sources are filled first; then both fresh peers join at once, so
	// that both catch-ups run under the same load (the other packages'
	// tests share the machine).
	type run struct {
		tn   *testNet
		took time.Duration
	}
	prepare := func(revs int) *run {
		tn := newTestNet(t, 2)
		tn.createDB("db")
		s := tn.db(0, "db")
		fillDocs(t, s, "d", n, revs)
		if revs > 1 {
			mustCompact(t, s, foldAll)
		}
		return &run{tn: tn}
	}
	one, ten := prepare(1), prepare(10)
	var wg sync.WaitGroup
	for _, r := range []*run{one, ten} {
		wg.Go(func() {
			f := r.tn.db(1, "db")
			start := time.Now()
			// Not tn.connect: its Fatalf must not run off the test goroutine.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			_, err := r.tn.nodes[1].Connect(ctx, r.tn.nodes[0].Addrs()[0])
			cancel()
			if err != nil {
				t.Errorf("connect the fresh peer: %v", err)
				return
			}
			deadline := start.Add(5 * time.Minute)
			for docCount(t, f) != int64(n) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // polling interval
			}
			r.took = time.Since(start)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, r := range []*run{one, ten} {
		if got := docCount(t, r.tn.db(1, "db")); got != int64(n) {
			t.Fatalf("the fresh peer holds %d documents of %d after %v", got, n, r.took)
		}
	}
	t.Logf("fresh peers, %d documents, joining at once: 1 revision each %v, 10 revisions each (compacted) %v (%.2fx)",
		n, one.took, ten.took, float64(ten.took)/float64(one.took))
	if !raceEnabled && ten.took > one.took*3/2 {
		t.Errorf("catch-up with 10 revisions took %v, more than 1.5 x %v", ten.took, one.took)
	}
}
