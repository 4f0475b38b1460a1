package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/httpapi"
)

// replWait bounds every wait for replication in these tests.
const replWait = 20 * time.Second

// netPeer is a daemon with networking on 127.0.0.1 only.
type netPeer struct {
	*peer
	name    string
	dataDir string
	id      string // libp2p peer id
	addr    string // first /ip4/127.0.0.1 multiaddr with /p2p/ID
}

// startNetPeer runs a daemon that listens on listen (a loopback multiaddr)
// with mDNS and the DHT off and short anti-entropy and heartbeat
// intervals, and reads its address from --p2p-addr-file.
func startNetPeer(t *testing.T, name, dataDir, listen string, extra ...string) *netPeer {
	t.Helper()
	p2pFile := filepath.Join(t.TempDir(), "p2p")
	args := append([]string{
		"--no-mdns", "--no-dht", "--listen", listen, "--p2p-addr-file", p2pFile,
		"--anti-entropy", "1s", "--heartbeat", "500ms",
	}, extra...)
	p := launch(t, dataDir, args)
	// The p2p file is written before the HTTP one, which launch waited for.
	b, err := os.ReadFile(p2pFile)
	if err != nil {
		t.Fatalf("%s: read p2p address file: %v", name, err)
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "/ip4/127.0.0.1/tcp/") || !strings.Contains(lines[0], "/p2p/") {
		t.Fatalf("%s: p2p address file %q: want a /ip4/127.0.0.1/tcp/... /p2p/ID address first", name, b)
	}
	np := &netPeer{peer: p, name: name, dataDir: dataDir, addr: lines[0]}
	np.id = lines[0][strings.LastIndex(lines[0], "/p2p/")+len("/p2p/"):]
	return np
}

// listenAddr is the address part of a multiaddr with /p2p/ID, to listen on
// the same port again after a restart.
func (p *netPeer) listenAddr() string {
	return p.addr[:strings.LastIndex(p.addr, "/p2p/")]
}

// doc is a document as GET ?conflicts=true answers it.
type doc map[string]any

// tryGet fetches a document with its conflicts; ok is false on 404.
func (p *netPeer) tryGet(t *testing.T, db, id string) (doc, bool) {
	t.Helper()
	r := call(t, http.MethodGet, p.url+"/dbs/"+db+"/docs/"+id+"?conflicts=true", "")
	if r.status == http.StatusNotFound {
		return nil, false
	}
	if r.status != http.StatusOK {
		t.Fatalf("%s: GET %s/%s: got %d %s", p.name, db, id, r.status, r.raw)
	}
	return doc(r.obj(t)), true
}

// put writes a document and returns its new revision.
func (p *netPeer) put(t *testing.T, db, id, body string) string {
	t.Helper()
	r := mustStatus(t, http.StatusCreated, http.MethodPut, p.url+"/dbs/"+db+"/docs/"+id, body)
	rev, _ := r.obj(t)["rev"].(string)
	return rev
}

// ids lists the ids of db's documents on p.
func (p *netPeer) ids(t *testing.T, db string) []string {
	t.Helper()
	r := mustStatus(t, http.StatusOK, http.MethodGet, p.url+"/dbs/"+db+"/docs?limit=1000", "")
	var list struct {
		Docs []struct {
			ID string `json:"id"`
		} `json:"docs"`
	}
	if err := json.Unmarshal(r.raw, &list); err != nil {
		t.Fatalf("%s: decode listing %s: %v", p.name, r.raw, err)
	}
	ids := []string{}
	for _, x := range list.Docs {
		ids = append(ids, x.ID)
	}
	return ids
}

// waitDoc polls until p holds db/id and match accepts it.
func (p *netPeer) waitDoc(t *testing.T, db, id string, match func(doc) bool) doc {
	t.Helper()
	var got doc
	pollf(t, replWait, func() bool {
		d, ok := p.tryGet(t, db, id)
		got = d
		return ok && match(d)
	}, func() string { return fmt.Sprintf("%s to hold %s/%s as wanted (last seen %v)", p.name, db, id, got) })
	return got
}

// peerIDs lists the ids of p's connected peers.
func (p *netPeer) peerIDs(t *testing.T) []string {
	t.Helper()
	var res struct {
		Peers []struct {
			ID string `json:"id"`
		} `json:"peers"`
	}
	r := mustStatus(t, http.StatusOK, http.MethodGet, p.url+"/peers", "")
	if err := json.Unmarshal(r.raw, &res); err != nil {
		t.Fatalf("%s: decode /peers %s: %v", p.name, r.raw, err)
	}
	var ids []string
	for _, x := range res.Peers {
		ids = append(ids, x.ID)
	}
	return ids
}

// waitPeers polls until p is connected to every one of want.
func (p *netPeer) waitPeers(t *testing.T, want ...*netPeer) {
	t.Helper()
	var got []string
	pollf(t, replWait, func() bool {
		got = p.peerIDs(t)
		for _, w := range want {
			if !slices.Contains(got, w.id) {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("%s to be connected to %v (connected: %v)", p.name, names(want), got)
	})
}

func names(ps []*netPeer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.name)
	}
	return out
}

// pollf is poll with a description computed when the wait times out, so it
// can show the last state seen.
func pollf(t *testing.T, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what())
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// hasField says whether a document's field has the value want.
func hasField(field string, want any) func(doc) bool {
	return func(d doc) bool { return reflect.DeepEqual(d[field], want) }
}

// waitConverged polls until every peer holds db/id with the same revision,
// body and _conflicts, and returns that document.
func waitConverged(t *testing.T, db, id string, peers ...*netPeer) doc {
	t.Helper()
	var seen []doc
	pollf(t, replWait, func() bool {
		seen = seen[:0]
		for _, p := range peers {
			d, ok := p.tryGet(t, db, id)
			if !ok {
				return false
			}
			seen = append(seen, d)
		}
		for _, d := range seen[1:] {
			if !reflect.DeepEqual(d, seen[0]) {
				return false
			}
		}
		return true
	}, func() string {
		return fmt.Sprintf("%v to converge on %s/%s (last seen %v)", names(peers), db, id, seen)
	})
	return seen[0]
}

// TestE2EReplication runs three daemons in a line A - B - C on loopback (A
// and C never meet), then a partial view D, then a crash of the middle
// one; every write reaches every peer that may read it.
func TestE2EReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes")
	}
	const db = "docs"
	loop := "/ip4/127.0.0.1/tcp/0"
	a := startNetPeer(t, "A", t.TempDir(), loop)
	// B reaches A through the CLI's connect (B remembers A, see the
	// restart below); C reaches B through --bootstrap.
	b := startNetPeer(t, "B", t.TempDir(), loop)
	if r := cli(t, b.url, "", "connect", a.addr); r.code != 0 || strings.TrimSpace(r.stdout) != a.id {
		t.Fatalf("connect B to A: exit %d, stdout %q, stderr %q, want A's id %s", r.code, r.stdout, r.stderr, a.id)
	}
	c := startNetPeer(t, "C", t.TempDir(), loop, "--bootstrap", b.addr)
	for _, p := range []*netPeer{a, b, c} {
		mustStatus(t, http.StatusCreated, http.MethodPut, p.url+"/dbs/"+db, "")
	}
	a.waitPeers(t, b)
	b.waitPeers(t, a, c)
	c.waitPeers(t, b)

	t.Run("id", func(t *testing.T) {
		r := cli(t, a.url, "", "id")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || lines[0] != a.id || !slices.Contains(lines[1:], a.addr) {
			t.Fatalf("id: exit %d, got %q, want %s then its addresses with %s", r.code, r.stdout, a.id, a.addr)
		}
	})

	t.Run("A to B and C", func(t *testing.T) {
		a.put(t, db, "from-a", `{"n":1,"by":"A"}`)
		b.waitDoc(t, db, "from-a", hasField("by", "A"))
		c.waitDoc(t, db, "from-a", hasField("by", "A")) // through B
	})

	t.Run("C to A", func(t *testing.T) {
		c.put(t, db, "from-c", `{"by":"C"}`)
		a.waitDoc(t, db, "from-c", hasField("by", "C"))
		b.waitDoc(t, db, "from-c", hasField("by", "C"))
	})

	t.Run("concurrent edits converge", func(t *testing.T) {
		base := a.put(t, db, "shared", `{"title":"base"}`)
		c.waitDoc(t, db, "shared", func(d doc) bool { return d["_rev"] == base })
		// Both edits name the same base revision, so they are concurrent
		// whatever reached whom first.
		a.put(t, db, "shared", fmt.Sprintf(`{"_rev":%q,"title":"from A"}`, base))
		c.put(t, db, "shared", fmt.Sprintf(`{"_rev":%q,"title":"from C"}`, base))
		d := waitConverged(t, db, "shared", a, b, c)
		if cs, _ := d["_conflicts"].([]any); len(cs) == 0 {
			t.Fatalf("concurrent edits of /title: got %v, want a _conflicts entry for the losing title", d)
		}
		if d["title"] != "from A" && d["title"] != "from C" {
			t.Fatalf("title: got %v, want one of the concurrent values", d["title"])
		}
	})

	t.Run("peers and replication state", func(t *testing.T) {
		r := cli(t, b.url, "", "peers")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 {
			t.Fatalf("peers on B: exit %d, got %q (stderr %q), want 2 lines", r.code, r.stdout, r.stderr)
		}
		for _, want := range []*netPeer{a, c} {
			i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, want.id+"\t") })
			if i < 0 {
				t.Fatalf("peers on B: got %q, want a line for %s (%s)", r.stdout, want.name, want.id)
			}
			if !strings.Contains(lines[i], "/ip4/127.0.0.1/tcp/") || !strings.Contains(lines[i], db+" checkpoint=") {
				t.Fatalf("peers on B, line of %s: got %q, want its address and %s's checkpoint", want.name, lines[i], db)
			}
		}
		var st httpapi.ReplicationState
		pollf(t, replWait, func() bool {
			r := mustStatus(t, http.StatusOK, http.MethodGet, b.url+"/dbs/"+db+"/replication", "")
			if err := json.Unmarshal(r.raw, &st); err != nil {
				t.Fatalf("decode replication state %s: %v", r.raw, err)
			}
			synced := 0
			for _, p := range st.Peers {
				if (p.Peer == a.id || p.Peer == c.id) && !p.LastSync.IsZero() && p.Checkpoint > 0 {
					synced++
				}
			}
			return synced == 2
		}, func() string {
			return fmt.Sprintf("B's replication state of %s to show A and C synced (got %+v)", db, st)
		})
		out := cli(t, b.url, "", "status", "--json")
		var s status
		if out.code != 0 || json.Unmarshal([]byte(out.stdout), &s) != nil {
			t.Fatalf("status: exit %d, stdout %q, stderr %q", out.code, out.stdout, out.stderr)
		}
		if !s.Network || s.Peers != 2 || s.PeerID != b.id || len(s.DBs) != 1 || s.DBs[0].Name != db || len(s.DBs[0].Replication.Peers) < 2 {
			t.Fatalf("status of B: got %s, want network, 2 peers, db %s with its replication peers", out.stdout, db)
		}
	})

	t.Run("partial view", func(t *testing.T) {
		// D holds docs by id prefix and notes by a path condition. Both
		// are set before D meets anyone, so every pull is filtered.
		d := startNetPeer(t, "D", t.TempDir(), loop)
		for _, name := range []string{db, "notes"} {
			mustStatus(t, http.StatusCreated, http.MethodPut, d.url+"/dbs/"+name, "")
		}
		mustStatus(t, http.StatusCreated, http.MethodPut, a.url+"/dbs/notes", "")
		if r := cli(t, d.url, "", "replicate", db, "--id-prefix", "keep-"); r.code != 0 || !strings.Contains(r.stdout, `"id_prefix": "keep-"`) {
			t.Fatalf("replicate --id-prefix: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if r := cli(t, d.url, "", "replicate", "notes", "--where", "/type == note"); r.code != 0 || !strings.Contains(r.stdout, `"op": "=="`) {
			t.Fatalf("replicate --where: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		// What D must not get comes first in A's feeds: once D holds the
		// last matching document it has seen the others and passed them
		// over.
		a.put(t, db, "drop-1", `{"v":1}`)
		a.put(t, db, "keep-1", `{"v":1}`)
		a.put(t, "notes", "n1", `{"type":"todo"}`)
		a.put(t, "notes", "n2", `{"type":"note"}`)
		if r := cli(t, d.url, "", "connect", a.addr); r.code != 0 {
			t.Fatalf("connect D to A: exit %d, stderr %q", r.code, r.stderr)
		}
		d.waitDoc(t, db, "keep-1", hasField("v", float64(1)))
		d.waitDoc(t, "notes", "n2", hasField("type", "note"))
		a.put(t, db, "keep-2", `{"v":2}`)
		a.put(t, "notes", "n3", `{"type":"todo"}`)
		a.put(t, "notes", "n4", `{"type":"note"}`)
		d.waitDoc(t, db, "keep-2", hasField("v", float64(2)))
		d.waitDoc(t, "notes", "n4", hasField("type", "note"))
		for name, want := range map[string][]string{db: {"keep-1", "keep-2"}, "notes": {"n2", "n4"}} {
			if got := d.ids(t, name); !reflect.DeepEqual(got, want) {
				t.Fatalf("documents of %s on the partial view D: got %v, want %v", name, got, want)
			}
		}
		d.kill()
	})

	t.Run("middle peer crashes and restarts", func(t *testing.T) {
		bListen := b.listenAddr()
		b.kill() // SIGKILL
		pollf(t, replWait, func() bool { return !slices.Contains(a.peerIDs(t), b.id) && !slices.Contains(c.peerIDs(t), b.id) },
			func() string { return "A and C to notice B is gone" })
		a.put(t, db, "while-down-a", `{"by":"A"}`)
		c.put(t, db, "while-down-c", `{"by":"C"}`)
		// With no path between A and C these edits are concurrent.
		a.put(t, db, "shared", `{"title":"A while B is down"}`)
		c.put(t, db, "shared", `{"title":"C while B is down"}`)
		if _, ok := a.tryGet(t, db, "while-down-c"); ok {
			t.Fatal("A got C's write with B down: the line is not a line")
		}

		// B comes back on the same data dir and port, with no --bootstrap:
		// it must redial A from its known peers, and C redials it as its
		// bootstrap peer.
		b2 := startNetPeer(t, "B", b.dataDir, bListen)
		if b2.id != b.id {
			t.Fatalf("B's peer id after restart: got %s, want %s", b2.id, b.id)
		}
		b2.waitPeers(t, a, c)
		for _, id := range []string{"while-down-a", "while-down-c", "from-a", "from-c", "keep-1"} {
			waitConverged(t, db, id, a, b2, c)
		}
		d := waitConverged(t, db, "shared", a, b2, c)
		if cs, _ := d["_conflicts"].([]any); len(cs) == 0 {
			t.Fatalf("shared after the partition: got %v, want _conflicts", d)
		}

		// SIGTERM with live connections and replication: exit 0.
		for _, p := range []*netPeer{c, b2, a} {
			p.stop(t)
		}
	})
}

// TestE2EReplicationCLI checks the network commands against a daemon
// without networking: exit codes, and replicate's read-modify-write.
func TestE2EReplicationCLI(t *testing.T) {
	p := startPeer(t, t.TempDir())
	mustStatus(t, http.StatusCreated, http.MethodPut, p.url+"/dbs/docs", "")
	setting := func(t *testing.T, args ...string) httpapi.Replication {
		t.Helper()
		r := cli(t, p.url, "", append([]string{"replicate", "docs"}, args...)...)
		var st httpapi.ReplicationState
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
			t.Fatalf("replicate %v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
		if st.DB != "docs" {
			t.Fatalf("replicate %v: got db %q", args, st.DB)
		}
		return st.Setting
	}
	note := httpapi.Cond{Path: "/type", Op: "==", Value: "note"}
	for _, tt := range []struct {
		args []string
		want httpapi.Replication
	}{
		{nil, httpapi.Replication{}},
		{[]string{"--where", "type == note"}, httpapi.Replication{Where: []httpapi.Cond{note}}},
		{[]string{"--id-prefix", "k-"}, httpapi.Replication{IDPrefix: "k-", Where: []httpapi.Cond{note}}},
		{[]string{"--off"}, httpapi.Replication{Off: true, IDPrefix: "k-", Where: []httpapi.Cond{note}}},
		{[]string{"--all"}, httpapi.Replication{Off: true}},
		{[]string{"--on"}, httpapi.Replication{}},
	} {
		if got := setting(t, tt.args...); !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("replicate %v: got %+v, want %+v", tt.args, got, tt.want)
		}
	}

	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"peers"}, exitFailed, "networking is off"},
		{[]string{"connect", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"}, exitFailed, "networking is off"},
		{[]string{"connect"}, exitUsage, "accepts 1 arg"},
		{[]string{"replicate", "nope"}, exitNotFound, "not found"},
		{[]string{"replicate", "docs", "--off", "--on"}, exitUsage, "contradict"},
		{[]string{"replicate", "docs", "--where", "/type =="}, exitUsage, "PATH OP VALUE"},
		{[]string{"replicate", "docs", "--all", "--id-prefix", "x"}, exitUsage, "--all"},
	} {
		r := cli(t, p.url, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
			t.Errorf("%v: got exit %d, stderr %q; want exit %d mentioning %q", tt.args, r.code, r.stderr, tt.code, tt.stderr)
		}
	}

	r := cli(t, p.url, "", "status", "--json")
	var s status
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &s) != nil || s.Network || s.Peers != 0 || len(s.DBs) != 1 || s.DBs[0].Name != "docs" {
		t.Fatalf("status without network: exit %d, got %q, want network false and db docs", r.code, r.stdout)
	}
	if r := cli(t, p.url, "", "id"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, s.PeerID) {
		t.Fatalf("id without network: exit %d, got %q, want the peer id alone", r.code, r.stdout)
	}
}
