package couch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/node"
)

// expressPouch is an express-pouchdb server (js/server.mjs) that the
// tests drive through replicate.mjs steps with --on remote.
type expressPouch struct {
	node, url string
}

func newExpressPouch(ctx context.Context, t *testing.T) *expressPouch {
	t.Helper()
	node := needNode(t)
	return &expressPouch{node: node, url: startServer(ctx, t, node)}
}

// run runs replicate.mjs steps on the server's database db.
func (e *expressPouch) run(ctx context.Context, t *testing.T, db string, args ...string) dumpResult {
	t.Helper()
	all := append([]string{"replicate.mjs", "--remote", e.url, "--db", db, "--on", "remote"}, args...)
	cmd := exec.CommandContext(ctx, e.node, all...)
	cmd.Dir = "js"
	out, err := cmd.Output()
	var r dumpResult
	if jerr := json.Unmarshal(out, &r); jerr != nil || err != nil || !r.OK {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("replicate.mjs %s: %v, output %.2000s, stderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return r
}

// bodies are the live documents of the server's db, as bodies() gives
// barrel's; it fails on a document with conflicts.
func (e *expressPouch) bodies(ctx context.Context, t *testing.T, db string) map[string]any {
	t.Helper()
	return pouchBodies(t, e.run(ctx, t, db, "--op", "dump").Docs)
}

// get GETs path on the server and decodes the JSON answer; it returns
// the status.
func get(ctx context.Context, t *testing.T, url string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func send(ctx context.Context, t *testing.T, method, url string, in any, out any) int {
	t.Helper()
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (e *expressPouch) updateSeq(ctx context.Context, t *testing.T, db string) string {
	t.Helper()
	var info struct {
		UpdateSeq json.RawMessage `json:"update_seq"`
	}
	if st := get(ctx, t, e.url+"/"+db, &info); st != http.StatusOK {
		t.Fatalf("GET %s: status %d", db, st)
	}
	return string(info.UpdateSeq)
}

func syncWith(ctx context.Context, t *testing.T, b *barrel, db, remote string, o couch.SyncOptions) couch.SyncStats {
	t.Helper()
	st, err := b.couch.Sync(ctx, db, remote, o)
	if err != nil {
		t.Fatalf("sync %s with %s (pull %v, push %v): %v", db, remote, o.Pull, o.Push, err)
	}
	for _, s := range []*couch.ReplicationStats{st.Pull, st.Push} {
		if s != nil && s.Failures != 0 {
			t.Fatalf("sync %s: %d failures: %v", db, s.Failures, s.Errors)
		}
	}
	return st
}

func wantMoved(t *testing.T, what string, s *couch.ReplicationStats, changes, read, written int) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s: not run", what)
	}
	if (changes >= 0 && s.ChangesRead != changes) || s.DocsRead != read || s.DocsWritten != written {
		t.Fatalf("%s: changes %d, read %d, written %d; want changes %d, read %d, written %d (%+v)",
			what, s.ChangesRead, s.DocsRead, s.DocsWritten, changes, read, written, s)
	}
}

// TestSyncWithExpressPouchDB: barrel pulls from and pushes to
// express-pouchdb as its replication client: PouchDB's writes and edits
// arrive with the same bodies, barrel's too, a second sync moves nothing,
// deletes go both ways, and a sync resumes from the checkpoints both
// sides hold.
func TestSyncWithExpressPouchDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	e := newExpressPouch(ctx, t)
	remote := e.url + "/app"

	// (a) PouchDB writes 1,000 documents into express-pouchdb; barrel
	// pulls them.
	e.run(ctx, t, "app", "--op", "write", "--n", "1000", "--prefix", "r")
	st := syncWith(ctx, t, b, "app", remote, couch.SyncOptions{Pull: true})
	wantMoved(t, "pull", st.Pull, 1000, 1000, 1000)
	d := b.db(t, "app")
	sameBodies(t, "barrel after the pull", bodies(t, d), e.bodies(ctx, t, "app"))

	// (b) barrel writes 500 documents and edits 50 of the pulled ones;
	// it pushes them.
	var ops []node.DocOp
	for i := range 500 {
		ops = append(ops, node.DocOp{ID: fmt.Sprintf("b%03d", i), Body: map[string]any{"from": "barrel", "i": i}})
	}
	if _, err := d.Bulk(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := d.Patch(ctx, fmt.Sprintf("r%03d", i), node.Patch{Merge: map[string]any{"edited_by": "barrel"}}); err != nil {
			t.Fatal(err)
		}
	}
	st = syncWith(ctx, t, b, "app", remote, couch.SyncOptions{Push: true, BatchSize: 200})
	wantMoved(t, "push", st.Push, 1500, 550, 550)
	sameBodies(t, "express-pouchdb after the push", e.bodies(ctx, t, "app"), bodies(t, d))

	// (c) A second pull and push move no document and write nothing.
	remoteSeq, localSeq := e.updateSeq(ctx, t, "app"), info(t, d).UpdateSeq
	st = syncWith(ctx, t, b, "app", remote, couch.SyncOptions{Pull: true, Push: true})
	wantMoved(t, "second pull", st.Pull, -1, 0, 0)
	wantMoved(t, "second push", st.Push, 0, 0, 0)
	if got := e.updateSeq(ctx, t, "app"); got != remoteSeq {
		t.Errorf("second sync wrote to express-pouchdb: update_seq %s -> %s", remoteSeq, got)
	}
	if got := info(t, d).UpdateSeq; got != localSeq {
		t.Errorf("second sync wrote to barrel: seq %d -> %d", localSeq, got)
	}

	// (d) Deletes both ways: express-pouchdb deletes r990-r994, barrel
	// deletes r995-r999.
	e.run(ctx, t, "app", "--op", "delete", "--ids", "r990,r991,r992,r993,r994")
	for i := 995; i < 1000; i++ {
		if _, err := d.Delete(ctx, fmt.Sprintf("r%03d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	st = syncWith(ctx, t, b, "app", remote, couch.SyncOptions{Pull: true, Push: true})
	wantMoved(t, "pull of the deletes", st.Pull, 5, 5, 5)
	wantMoved(t, "push of the deletes", st.Push, -1, 5, 5)
	got := bodies(t, d)
	for i := 990; i < 1000; i++ {
		if v, ok := got[fmt.Sprintf("r%03d", i)]; ok {
			t.Errorf("r%03d is live in barrel after the deletes: %v", i, v)
		}
	}
	sameBodies(t, "express-pouchdb after the deletes", e.bodies(ctx, t, "app"), got)

	// (f) Resume: both sides hold the checkpoint of each direction, and a
	// sync after more writes reads only the new changes.
	for _, s := range []*couch.ReplicationStats{st.Pull, st.Push} {
		for _, base := range []string{remote, b.url + "/couch/app"} {
			var cp struct {
				LastSeq json.RawMessage `json:"last_seq"`
			}
			if code := get(ctx, t, base+"/_local/"+s.ReplicationID, &cp); code != http.StatusOK {
				t.Fatalf("GET %s/_local/%s: status %d, want the checkpoint", base, s.ReplicationID, code)
			}
			if got := strings.Trim(string(cp.LastSeq), `"`); got != s.LastSeq {
				t.Errorf("%s/_local/%s: last_seq %s, want %s", base, s.ReplicationID, got, s.LastSeq)
			}
		}
	}
	e.run(ctx, t, "app", "--op", "write", "--n", "20", "--prefix", "s")
	ops = ops[:0]
	for i := range 7 {
		ops = append(ops, node.DocOp{ID: fmt.Sprintf("c%d", i), Body: map[string]any{"i": i}})
	}
	if _, err := d.Bulk(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	st = syncWith(ctx, t, b, "app", remote, couch.SyncOptions{Pull: true})
	// The remote's feed after the pull checkpoint: the 5 deletes barrel
	// pushed since (listed, not fetched), and the 20 new documents.
	wantMoved(t, "pull after more writes", st.Pull, 25, 20, 20)
	st = syncWith(ctx, t, b, "app", remote, couch.SyncOptions{Push: true})
	wantMoved(t, "push after more writes", st.Push, 27, 7, 7) // the 20 pulled are listed, not sent
	sameBodies(t, "express-pouchdb at the end", e.bodies(ctx, t, "app"), bodies(t, d))

	// doc_ids: a pull of two documents into a new database reads those.
	st = syncWith(ctx, t, b, "two", remote, couch.SyncOptions{Pull: true, DocIDs: []string{"r001", "s05"}})
	wantMoved(t, "pull of doc_ids", st.Pull, 2, 2, 2)
	if got := bodies(t, b.db(t, "two")); len(got) != 2 || got["r001"] == nil || got["s05"] == nil {
		t.Errorf("pull of doc_ids r001, s05: barrel holds %v", got)
	}
}

// TestSyncConcurrentEdits: barrel and express-pouchdb edit the same
// documents while apart (the same field, other fields, a delete on each
// side); after pull, push, pull both hold the same bodies with no
// conflict open on the remote, and the value that lost the same field is
// in barrel's conflicts.
func TestSyncConcurrentEdits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	e := newExpressPouch(ctx, t)
	remote := e.url + "/notes"
	e.run(ctx, t, "notes", "--op", "write", "--n", "20", "--prefix", "n")
	syncWith(ctx, t, b, "notes", remote, couch.SyncOptions{Pull: true, Push: true})
	d := b.db(t, "notes")

	// Apart: express-pouchdb sets "edited" on n00-n09 and deletes n01;
	// barrel sets "edited" on n00, n03, n04 (the same field), "tag" on
	// n05-n09 (another field) and deletes n02.
	e.run(ctx, t, "notes", "--op", "edit,delete", "--prefix", "n0", "--field", "edited", "--value", "pouch", "--ids", "n01")
	for i := range 10 {
		id := fmt.Sprintf("n%02d", i)
		switch i {
		case 1:
		case 2:
			if _, err := d.Delete(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		default:
			field := "edited"
			if i >= 5 {
				field = "tag"
			}
			if _, err := d.Patch(ctx, id, node.Patch{Merge: map[string]any{field: "barrel"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	syncWith(ctx, t, b, "notes", remote, couch.SyncOptions{Pull: true, Push: true})
	st := syncWith(ctx, t, b, "notes", remote, couch.SyncOptions{Pull: true})
	wantMoved(t, "pull after push", st.Pull, -1, 0, 0)
	got := bodies(t, d)
	sameBodies(t, "express-pouchdb after syncing", e.bodies(ctx, t, "notes"), got)

	checkConcurrentEdits(ctx, t, d, got)
	// Quiet: nothing moves either way.
	st = syncWith(ctx, t, b, "notes", remote, couch.SyncOptions{Pull: true, Push: true})
	wantMoved(t, "quiet pull", st.Pull, -1, 0, 0)
	wantMoved(t, "quiet push", st.Push, -1, 0, 0)
}

// TestReplicateRoute: POST /couch/_replicate runs a Sync in CouchDB's
// shape; a remote database that does not exist fails a pull with a clear
// error and is created by a push; attachments go both ways; doc_ids
// limits the documents.
func TestReplicateRoute(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	e := newExpressPouch(ctx, t)
	rep := b.url + "/couch/_replicate"

	var fail struct{ Error, Reason string }
	if code := send(ctx, t, http.MethodPost, rep, map[string]any{"source": e.url + "/nope", "target": "local"}, &fail); code != http.StatusBadGateway ||
		!strings.Contains(fail.Reason, "does not exist") {
		t.Fatalf("pull from a missing database: %d %+v, want 502 saying it does not exist", code, fail)
	}
	// Continuous: a live replication until cancelled, as CouchDB's.
	if err := b.n.CreateDB(ctx, "cont"); err != nil {
		t.Fatal(err)
	}
	var started struct {
		OK      bool   `json:"ok"`
		LocalID string `json:"_local_id"`
	}
	contReq := map[string]any{"source": "cont", "target": e.url + "/cont", "continuous": true}
	if code := send(ctx, t, http.MethodPost, rep, contReq, &started); code != http.StatusAccepted || !started.OK || started.LocalID == "" {
		t.Fatalf("continuous: %d %+v, want 202 with a _local_id", code, started)
	}
	if _, err := b.db(t, "cont").Put(ctx, "live1", map[string]any{"v": 1}, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "live1 pushed by the continuous replication", func() bool {
		var doc map[string]any
		return get(ctx, t, e.url+"/cont/live1", &doc) == http.StatusOK
	})
	contReq["cancel"] = true
	if code := send(ctx, t, http.MethodPost, rep, contReq, &started); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	if code := send(ctx, t, http.MethodPost, rep, contReq, &fail); code != http.StatusNotFound {
		t.Fatalf("cancel again: %d %+v, want 404", code, fail)
	}

	d := b.db(t, mustCreate(t, b, "out"))
	if _, err := d.Bulk(ctx, []node.DocOp{{ID: "a", Body: map[string]any{"v": 1}}, {ID: "b", Body: map[string]any{"v": 2}}}, false); err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK          bool `json:"ok"`
		DocsWritten int  `json:"docs_written"`
		Failures    int  `json:"doc_write_failures"`
		Errors      []string
	}
	if code := send(ctx, t, http.MethodPost, rep, map[string]any{"source": "out", "target": e.url + "/created", "doc_ids": []string{"a"}}, &res); code != http.StatusOK || !res.OK || res.DocsWritten != 1 {
		t.Fatalf("push of doc a to a new database: %d %+v, want ok with 1 written", code, res)
	}
	if got, want := e.bodies(ctx, t, "created"), map[string]any{"a": map[string]any{"v": float64(1)}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("created database holds %v, want %v", got, want)
	}

	// Attachments both ways: one made on the remote is pulled whole, one
	// made in barrel is pushed whole.
	att := map[string]any{"v": 3, "_attachments": map[string]any{"a.txt": map[string]any{"content_type": "text/plain", "data": "aGVsbG8="}}}
	if code := send(ctx, t, http.MethodPut, e.url+"/created/withatt", att, nil); code != http.StatusCreated {
		t.Fatalf("PUT a document with an attachment to express-pouchdb: %d", code)
	}
	res.OK, res.DocsWritten, res.Failures = false, 0, 0
	if code := send(ctx, t, http.MethodPost, rep, map[string]any{"source": e.url + "/created", "target": "in"}, &res); code != http.StatusOK || res.Failures != 0 || res.DocsWritten != 2 {
		t.Fatalf("pull with an attachment: %d %+v, want 2 written", code, res)
	}
	_, rd, err := b.db(t, "in").Attachment(ctx, "withatt", "a.txt")
	if err != nil {
		t.Fatalf("the pulled attachment: %v", err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if string(got) != "hello" {
		t.Fatalf("the pulled attachment holds %q, want hello", got)
	}
	if _, err := d.PutAttachment(ctx, "b", "f.bin", "application/octet-stream", strings.NewReader("from barrel"), ""); err != nil {
		t.Fatal(err)
	}
	if code := send(ctx, t, http.MethodPost, rep, map[string]any{"source": "out", "target": e.url + "/created"}, &res); code != http.StatusOK || res.Failures != 0 {
		t.Fatalf("push with an attachment: %d %+v", code, res)
	}
	resp, err := http.Get(e.url + "/created/b/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "from barrel" {
		t.Fatalf("express-pouchdb holds %q for barrel's attachment, want \"from barrel\"", got)
	}
	// Nothing is left to move.
	res.DocsWritten, res.Failures, res.Errors = 0, 0, nil
	if code := send(ctx, t, http.MethodPost, rep, map[string]any{"source": e.url + "/created", "target": "in"}, &res); code != http.StatusOK || res.Failures != 0 || res.DocsWritten != 1 {
		t.Fatalf("pull after the push: %d %+v, want only b's new revision", code, res)
	}
}

func mustCreate(t *testing.T, b *barrel, name string) string {
	t.Helper()
	if err := b.n.CreateDB(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return name
}
