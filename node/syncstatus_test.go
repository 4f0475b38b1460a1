package node

import (
	"fmt"
	"testing"
	"time"

	bsync "github.com/barrel-db/barrel/sync"
)

// writeDocs writes n documents to d in bulks of 1,000.
func writeDocs(t *testing.T, d *DB, n int) {
	t.Helper()
	for start := 0; start < n; start += 1000 {
		var ops []DocOp
		for i := start; i < min(n, start+1000); i++ {
			ops = append(ops, DocOp{ID: fmt.Sprintf("doc-%06d", i), Body: map[string]any{"n": i}})
		}
		if _, err := d.Bulk(t.Context(), ops, false); err != nil {
			t.Fatalf("bulk write: %v", err)
		}
	}
}

// TestSyncStatusLongPull: a pull of 10,000 documents in batches of 2 shows
// its progress (done below expected, a rate) while it runs, and then the
// peer as synced: lag 0, synced once, last synced set, no progress; a
// watcher sees both; the gauges name the peer while it is connected and
// drop it when it leaves, when its state says connected false.
func TestSyncStatusLongPull(t *testing.T) {
	docs := 10_000
	if raceEnabled {
		docs = 3_000 // the race detector slows the 5,000 round trips tenfold
	}
	tn := newTestNetWith(t, 2, func(i int, c *P2PConfig) {
		if i == 1 {
			c.SyncBatch = 2 // slow enough to watch
		}
	})
	tn.createDB("db")
	ctx := t.Context()
	b := tn.nodes[1]
	// B stays out of the database while A fills it, then joins: one pull
	// of everything, announced by A.
	if err := b.SetReplication(ctx, "db", Replication{Off: true}); err != nil {
		t.Fatal(err)
	}
	tn.connect(1, 0)
	writeDocs(t, tn.db(0, "db"), docs)
	aSeq := tn.db(0, "db").seq.Load()
	aID := tn.nodes[0].PeerID().String()

	synced := func(st ReplicationState) bool {
		if len(st.Peers) != 1 {
			return false
		}
		p := st.Peers[0]
		return p.Peer == aID && p.Connected && !p.Running && p.Progress == nil && p.Lag == 0 &&
			p.SyncedOnce && !p.LastSynced.IsZero() && p.Checkpoint == aSeq && p.LastError == ""
	}
	inProgress := func(st ReplicationState) *PullProgress {
		if len(st.Peers) != 1 || st.Peers[0].Progress == nil {
			return nil
		}
		if p := st.Peers[0].Progress; p.Done > 0 && p.Done < p.Expected && p.Expected == aSeq && st.Peers[0].Connected {
			return p
		}
		return nil
	}

	// The watcher runs beside the pull: it is handed the newest state only.
	watch, err := b.WatchReplication(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	type seen struct{ progress, synced bool }
	watched := make(chan seen, 1)
	go func() {
		var s seen
		defer func() { watched <- s }()
		for st := range watch {
			s.progress = s.progress || inProgress(st) != nil
			if s.synced = synced(st); s.synced {
				return
			}
		}
	}()
	if err := b.SetReplication(ctx, "db", Replication{}); err != nil {
		t.Fatal(err)
	}

	var during *PullProgress
	waitFor(t, "the pull to show progress, then end synced", 60*time.Second, func() bool {
		st, err := b.ReplicationState("db")
		if err != nil {
			t.Fatal(err)
		}
		if p := inProgress(st); p != nil && (during == nil || p.Rate > 0) {
			during = p
		}
		return synced(st)
	})
	if during == nil {
		t.Fatal("no state showed the pull in progress with done < expected")
	}
	t.Logf("during the pull: %+v", *during)
	if got := tn.db(1, "db").seq.Load(); got != aSeq {
		t.Errorf("B's feed at %d, want %d", got, aSeq)
	}
	select {
	case s := <-watched:
		if !s.progress || !s.synced {
			t.Errorf("the watcher saw progress %v, synced %v; want both", s.progress, s.synced)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher never saw the synced state")
	}

	if got := gaugeLabels(t, b, "barrel_sync_lag_entries"); len(got) != 1 || got[0]["peer"] != aID || got[0]["db"] != "db" {
		t.Errorf("barrel_sync_lag_entries series: %v, want one for db and A", got)
	}
	if got := gaugeLabels(t, b, "barrel_sync_synced_once"); len(got) != 1 {
		t.Errorf("barrel_sync_synced_once series: %v, want one", got)
	}

	tn.stop(0)
	waitFor(t, "A to show disconnected", 10*time.Second, func() bool {
		st, err := b.ReplicationState("db")
		return err == nil && len(st.Peers) == 1 && !st.Peers[0].Connected && st.Peers[0].SyncedOnce
	})
	if got := gaugeLabels(t, b, "barrel_sync_lag_entries"); len(got) != 0 {
		t.Errorf("barrel_sync_lag_entries series after A left: %v, want none", got)
	}
}

// gaugeLabels returns the label sets of the metric family name on n.
func gaugeLabels(t *testing.T, n *Node, name string) []map[string]string {
	t.Helper()
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			out = append(out, ls)
		}
	}
	return out
}

// TestNewPullProgress checks the estimate of what is left of a pull.
func TestNewPullProgress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		from, cp  uint64
		announced uint64
		rate      float64
		want      PullProgress
	}{
		{"unknown end", 100, 150, 0, 10, PullProgress{Done: 50, Rate: 10}},
		{"announced behind the checkpoint", 100, 150, 120, 10, PullProgress{Done: 50, Expected: 50, Rate: 10}},
		{"half way", 0, 3000, 10_000, 1000, PullProgress{Done: 3000, Expected: 10_000, Rate: 1000, Remaining: 7 * time.Second}},
		{"no rate yet", 0, 0, 10_000, 0, PullProgress{Expected: 10_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := *newPullProgress(bsync.Progress{From: tc.from, Checkpoint: tc.cp, Rate: tc.rate}, tc.announced)
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
