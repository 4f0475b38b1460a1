package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/httpapi"
)

// TestE2EStatusSyncLines: `status` prints, per database, a line per peer
// with its sync state: connected, synced N s ago, lag 0 once B pulled A's
// 2,000 documents; disconnected once A stopped. --json keeps the JSON.
func TestE2EStatusSyncLines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two processes")
	}
	loop := "/ip4/127.0.0.1/tcp/0"
	a := startNetPeer(t, "A", t.TempDir(), loop)
	b := startNetPeer(t, "B", t.TempDir(), loop)
	for _, p := range []*netPeer{a, b} {
		mustStatus(t, http.StatusCreated, http.MethodPut, p.url+"/dbs/notes", "")
	}
	var docs []string
	for i := range 2000 {
		docs = append(docs, fmt.Sprintf(`{"_id":"n-%04d","n":%d}`, i, i))
	}
	mustStatus(t, http.StatusOK, http.MethodPost, a.url+"/dbs/notes/bulk", `{"docs":[`+strings.Join(docs, ",")+`]}`)
	if r := cli(t, b.url, "", "connect", a.addr); r.code != 0 {
		t.Fatalf("connect B to A: exit %d, stderr %q", r.code, r.stderr)
	}

	synced := regexp.MustCompile(`(?m)^  peer ` + a.id + `  connected  synced \d+s ago  lag 0  checkpoint 2,000$`)
	var out cliResult
	pollf(t, replWait, func() bool {
		out = cli(t, b.url, "", "status")
		return out.code == 0 && synced.MatchString(out.stdout)
	}, func() string {
		return fmt.Sprintf("B's status to show A connected and synced: exit %d, got\n%s", out.code, out.stdout)
	})
	for _, want := range []string{"node " + b.id + "  version ", "network on  peers 1\n", "db notes  docs 2,000  seq 2,000  replication on\n"} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("status of B: got\n%s\nwant a line with %q", out.stdout, want)
		}
	}
	var st status
	if r := cli(t, b.url, "", "status", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.DBs) != 1 ||
		len(st.DBs[0].Replication.Peers) != 1 || !jsonSynced(st.DBs[0].Replication.Peers[0]) {
		t.Fatalf("status --json of B: exit %d, got %s, want notes synced with A", r.code, r.stdout)
	}

	a.stop(t)
	gone := regexp.MustCompile(`(?m)^  peer ` + a.id + `  disconnected  synced \d+[smh] ago  lag 0`)
	pollf(t, 30*time.Second, func() bool {
		out = cli(t, b.url, "", "status")
		return out.code == 0 && gone.MatchString(out.stdout)
	}, func() string {
		return fmt.Sprintf("B's status to show A disconnected: got\n%s", out.stdout)
	})
	t.Logf("status of B after A left:\n%s", out.stdout)
}

// jsonSynced reports whether a peer's state in status --json is connected
// and caught up.
func jsonSynced(p httpapi.PeerReplStatus) bool {
	return p.Connected && p.SyncedOnce && !p.LastSynced.IsZero() && p.Lag == 0 && p.Checkpoint == 2000
}
