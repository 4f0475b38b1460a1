package couch_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/node"
)

// barrel is a node serving /couch/ on 127.0.0.1, for PouchDB to replicate
// with.
type barrel struct {
	n     *node.Node
	couch *couch.Server
	url   string // the server: PouchDB's remote is url + "/couch/DB"
}

func newBarrel(t *testing.T, p2p bool, cfg couch.Config) *barrel {
	t.Helper()
	nc := node.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}
	if p2p {
		nc.P2P = &node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true}
	}
	n, err := node.Open(t.Context(), nc)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cs := couch.New(n, cfg)
	// As the daemon does: continuous replications run until the test ends.
	ctx, stop := context.WithCancel(context.Background())
	if err := cs.StartConnectors(ctx, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(cs)
	t.Cleanup(func() {
		srv.Close()
		stop()
		cs.WaitConnectors()
		if err := n.Close(); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	return &barrel{n: n, couch: cs, url: srv.URL}
}

func (b *barrel) db(t *testing.T, name string) *node.DB {
	t.Helper()
	d, err := b.n.DB(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pouch runs replicate.mjs steps on one PouchDB kept in a LevelDB
// directory, so several runs act on the same client.
type pouch struct {
	node, dir, remote string
}

func newPouch(t *testing.T, b *barrel) *pouch {
	return &pouch{node: needNode(t), dir: filepath.Join(t.TempDir(), "pouch"), remote: b.url + "/couch"}
}

// dumpResult is replicate.mjs's result with the documents of a dump step.
type dumpResult struct {
	result
	Docs []map[string]any `json:"docs"`
}

func (p *pouch) run(ctx context.Context, t *testing.T, db string, args ...string) dumpResult {
	t.Helper()
	all := append([]string{"replicate.mjs", "--remote", p.remote, "--db", db, "--local", p.dir}, args...)
	cmd := exec.CommandContext(ctx, p.node, all...)
	cmd.Dir = "js"
	out, err := cmd.Output()
	var r dumpResult
	if jerr := json.Unmarshal(out, &r); jerr != nil || err != nil || !r.OK {
		if jerr != nil {
			t.Errorf("decode replicate.mjs's output: %v", jerr)
		}
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("replicate.mjs %s: %v, output %.2000s, stderr:\n%s", strings.Join(args, " "), err, out, stderr)
	}
	return r
}

// bodies returns every live document of d by id, without reserved fields,
// as JSON values.
func bodies(t *testing.T, d *node.DB) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	after := ""
	for {
		list, err := d.List(ctx, node.ListOptions{StartAfter: after, Limit: node.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			return out
		}
		for _, s := range list {
			doc, err := d.Get(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			out[s.ID] = jsonValue(t, doc.Body)
			after = s.ID
		}
	}
}

// pouchBodies is the same of a PouchDB dump; it fails on a document with
// conflicts (barrel never shows a client a live conflict).
func pouchBodies(t *testing.T, docs []map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, doc := range docs {
		id := doc["_id"].(string)
		if c, ok := doc["_conflicts"]; ok {
			t.Errorf("PouchDB shows %s with conflicts %v: barrel merged them", id, c)
		}
		body := map[string]any{}
		for k, v := range doc {
			if !strings.HasPrefix(k, "_") {
				body[k] = v
			}
		}
		out[id] = jsonValue(t, body)
	}
	return out
}

func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameBodies(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d documents, want %d", what, len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		if g, ok := got[id]; !ok || !reflect.DeepEqual(g, w) {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s = %v, want %v", what, id, g, w)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d documents differ in all", what, bad)
	}
}

// TestPouchReplicatesBothWays: PouchDB 9 pushes 10,000 documents to
// barrel and pulls barrel's own writes and edits back; both sides then
// hold the same bodies, and a second sync both ways moves nothing.
func TestPouchReplicatesBothWays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	p := newPouch(t, b)

	r := p.run(ctx, t, "app", "--op", "write,push", "--n", "10000", "--prefix", "p", "--batch-size", "500")
	if r.WriteFailures != 0 || len(r.Errors) != 0 || r.LocalDocCount != 10000 {
		t.Fatalf("write,push: %+v", r.result)
	}
	d := b.db(t, "app")
	if info, _ := d.Info(ctx); info.DocCount != 10000 {
		t.Fatalf("barrel holds %d documents after the push, want 10000", info.DocCount)
	}

	// barrel writes its own documents and edits some of PouchDB's.
	var ops []node.DocOp
	for i := range 1000 {
		ops = append(ops, node.DocOp{ID: fmt.Sprintf("b%04d", i), Body: map[string]any{"from": "barrel", "i": i}})
	}
	if _, err := d.Bulk(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		id := fmt.Sprintf("p%04d", i)
		if _, err := d.Patch(ctx, id, node.Patch{Merge: map[string]any{"edited_by": "barrel"}}); err != nil {
			t.Fatal(err)
		}
	}
	r = p.run(ctx, t, "app", "--op", "pull,dump", "--batch-size", "500")
	if r.LocalDocCount != 11000 || len(r.Errors) != 0 {
		t.Fatalf("pull: %+v", r.result)
	}
	sameBodies(t, "PouchDB after the pull", pouchBodies(t, r.Docs), bodies(t, d))

	// Nothing is left to move, either way.
	seq := info(t, d).UpdateSeq
	r = p.run(ctx, t, "app", "--op", "both", "--batch-size", "500")
	if r.DocsWritten != 0 || r.DocsRead != 0 {
		t.Fatalf("second sync moved documents: %+v", r.result)
	}
	if got := info(t, d).UpdateSeq; got != seq {
		t.Fatalf("second sync wrote to barrel: seq %d -> %d", seq, got)
	}
}

func info(t *testing.T, d *node.DB) node.DBInfo {
	t.Helper()
	i, err := d.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestPouchConcurrentEdits: PouchDB and barrel edit the same documents
// while apart (other fields, the same field, a delete on each side);
// after syncing both ways until quiet, PouchDB reads the bodies barrel
// reads, with no conflict left open, and the value that lost the same
// field is in barrel's conflicts.
func TestPouchConcurrentEdits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	p := newPouch(t, b)
	p.run(ctx, t, "notes", "--op", "write,both", "--n", "20", "--prefix", "n")
	d := b.db(t, "notes")

	// Apart: PouchDB sets "edited" on every document and deletes n01;
	// barrel sets "edited" on n00-n04 (the same field), "tag" on n05-n09
	// (another field) and deletes n02.
	p.run(ctx, t, "notes", "--op", "edit,delete", "--prefix", "n", "--field", "edited", "--value", "pouch", "--ids", "n01")
	for i := range 10 {
		field := "edited"
		if i >= 5 {
			field = "tag"
		}
		id := fmt.Sprintf("n%02d", i)
		if i == 2 {
			if _, err := d.Delete(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if i == 1 {
			continue
		}
		if _, err := d.Patch(ctx, id, node.Patch{Merge: map[string]any{field: "barrel"}}); err != nil {
			t.Fatal(err)
		}
	}
	p.run(ctx, t, "notes", "--op", "both")
	r := p.run(ctx, t, "notes", "--op", "both,dump")
	sameBodies(t, "PouchDB after syncing", pouchBodies(t, r.Docs), bodies(t, d))

	got := bodies(t, d)
	checkConcurrentEdits(ctx, t, d, got)
	// Quiet: a further sync moves nothing.
	if r := p.run(ctx, t, "notes", "--op", "both"); r.DocsWritten != 0 {
		t.Fatalf("sync after quiesce moved documents: %+v", r.result)
	}
}

// TestPouchThroughPeers: PouchDB client 1 syncs live with barrel A,
// client 2 with barrel B, and A and B replicate over libp2p: a write in
// either client is read in the other.
func TestPouchThroughPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newBarrel(t, true, couch.Config{})
	b := newBarrel(t, true, couch.Config{})
	for _, x := range []*barrel{a, b} {
		if err := x.n.CreateDB(ctx, "shared"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.n.Connect(ctx, a.n.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	c1, c2 := newPouch(t, a), newPouch(t, b)
	var wg sync.WaitGroup
	var r1, r2 dumpResult
	wg.Add(2)
	go func() {
		defer wg.Done()
		r1 = c1.run(ctx, t, "shared", "--op", "live", "--write-id", "from-1", "--wait-id", "from-2", "--timeout-ms", "60000")
	}()
	go func() {
		defer wg.Done()
		r2 = c2.run(ctx, t, "shared", "--op", "live", "--write-id", "from-2", "--wait-id", "from-1", "--timeout-ms", "60000")
	}()
	wg.Wait()
	if len(r1.Errors) != 0 || len(r2.Errors) != 0 {
		t.Fatalf("live sync through A and B: client 1 %v, client 2 %v", r1.Errors, r2.Errors)
	}
}

// pattern is the content replicate.mjs's attach step writes.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

// TestPouchAttachments: a 1 MiB attachment made in PouchDB reaches
// barrel's blob store whole, one made in barrel reaches PouchDB whole, and
// a further sync moves nothing.
func TestPouchAttachments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 1 << 20
	b := newBarrel(t, false, couch.Config{})
	p := newPouch(t, b)
	p.run(ctx, t, "files", "--op", "attach,push", "--write-id", "from-pouch", "--field", "blob", "--n", fmt.Sprint(size))
	d := b.db(t, "files")
	info, rd, err := d.Attachment(ctx, "from-pouch", "blob")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if !bytes.Equal(got, pattern(size)) || info.ContentType != "application/octet-stream" {
		t.Fatalf("barrel holds %d bytes (%s), want the 1 MiB PouchDB attached", len(got), info.ContentType)
	}
	if _, err := d.PutAttachment(ctx, "from-barrel", "blob", "image/png", bytes.NewReader(pattern(size)), ""); err != nil {
		t.Fatal(err)
	}
	r := p.run(ctx, t, "files", "--op", "pull,dump")
	var found bool
	for _, doc := range r.Docs {
		if doc["_id"] != "from-barrel" {
			continue
		}
		att, _ := doc["_attachments"].(map[string]any)["blob"].(map[string]any)
		data, _ := base64.StdEncoding.DecodeString(fmt.Sprint(att["data"]))
		found = bytes.Equal(data, pattern(size)) && att["content_type"] == "image/png"
	}
	if !found {
		t.Fatal("PouchDB did not get barrel's 1 MiB attachment whole")
	}
	seq := info2(t, d)
	if r := p.run(ctx, t, "files", "--op", "both"); r.DocsWritten != 0 || info2(t, d) != seq {
		t.Fatalf("a further sync moved documents: %+v", r.result)
	}
}

func info2(t *testing.T, d *node.DB) uint64 { return info(t, d).UpdateSeq }

// TestPouchSelector: a PouchDB pull with a Mango selector (filter=_selector)
// gets exactly the documents it matches, and one with doc_ids exactly those.
func TestPouchSelector(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	if err := b.n.CreateDB(ctx, "mixed"); err != nil {
		t.Fatal(err)
	}
	d := b.db(t, "mixed")
	var ops []node.DocOp
	for i := range 40 {
		kind := "note"
		if i%4 != 0 {
			kind = "task"
		}
		ops = append(ops, node.DocOp{ID: fmt.Sprintf("m%02d", i), Body: map[string]any{"type": kind, "i": i}})
	}
	if _, err := d.Bulk(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	r := newPouch(t, b).run(ctx, t, "mixed", "--op", "pull,dump", "--selector", `{"type":"note","i":{"$gte":8}}`)
	if len(r.Docs) != 8 {
		t.Fatalf("selector pull got %d documents, want the 8 notes with i >= 8", len(r.Docs))
	}
	for _, doc := range r.Docs {
		if doc["type"] != "note" || doc["i"].(float64) < 8 {
			t.Fatalf("selector pull got %v", doc)
		}
	}
	st, out := call(t, "POST", b.url+"/couch/mixed/_changes?filter=_doc_ids", `{"doc_ids":["m01","m03"]}`)
	if res, _ := out["results"].([]any); st != 200 || len(res) != 2 {
		t.Fatalf("doc_ids filter: %d %v", st, out)
	}
	if st, out := call(t, "POST", b.url+"/couch/mixed/_changes?filter=_selector", `{"selector":{"i":{"$regex":"x"}}}`); st != 400 {
		t.Fatalf("unsupported operator: %d %v", st, out)
	}
}

// TestPouchLiveTenThousand: a PouchDB client in live sync with barrel
// while both sides write 10,000 documents: each ends with all 20,000.
func TestPouchLiveTenThousand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBarrel(t, false, couch.Config{})
	if err := b.n.CreateDB(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	d := b.db(t, "live")
	p := newPouch(t, b)
	done := make(chan dumpResult, 1)
	go func() {
		done <- p.run(ctx, t, "live", "--op", "write,live", "--n", "10000", "--prefix", "p", "--wait-id", "b9999", "--timeout-ms", "150000", "--batch-size", "500")
	}()
	for i := 0; i < 10000; i += 500 {
		var ops []node.DocOp
		for j := i; j < i+500; j++ {
			ops = append(ops, node.DocOp{ID: fmt.Sprintf("b%04d", j), Body: map[string]any{"j": j}})
		}
		if _, err := d.Bulk(ctx, ops, false); err != nil {
			t.Fatal(err)
		}
	}
	r := <-done
	if len(r.Errors) != 0 || r.LocalDocCount != 20000 {
		t.Fatalf("live sync: %+v, want PouchDB with 20,000 documents", r.result)
	}
	if n := info(t, d).DocCount; n != 20000 {
		t.Fatalf("barrel holds %d documents, want 20,000", n)
	}
}

// checkConcurrentEdits asserts what TestPouchConcurrentEdits and
// TestSyncConcurrentEdits set up ends as: n05-n09 keep both edits (other
// fields), n01 deleted on the other side alone is gone, n02 deleted in
// barrel while edited on the other side keeps that edit (an update wins
// over a concurrent delete), and n00, n03, n04 (the same field edited on
// both sides) keep one value with the other in barrel's conflicts.
func checkConcurrentEdits(ctx context.Context, t *testing.T, d *node.DB, got map[string]any) {
	t.Helper()
	for i := 5; i < 10; i++ {
		id := fmt.Sprintf("n%02d", i)
		want := map[string]any{"n": float64(i), "edited": "pouch", "tag": "barrel"}
		if !reflect.DeepEqual(got[id], want) {
			t.Errorf("%s = %v, want both edits %v", id, got[id], want)
		}
	}
	if _, ok := got["n01"]; ok {
		t.Errorf("n01 deleted on the other side is still live: %v", got["n01"])
	}
	if want := map[string]any{"n": float64(2), "edited": "pouch"}; !reflect.DeepEqual(got["n02"], want) {
		t.Errorf("n02 (deleted in barrel, edited on the other side) = %v, want %v", got["n02"], want)
	}
	for _, id := range []string{"n00", "n03", "n04"} {
		doc, err := d.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		won, lost := doc.Body["edited"], ""
		for _, c := range doc.Conflicts {
			if c.Path == "/edited" {
				lost, _ = c.Value.(string)
			}
		}
		if ok := won == "pouch" && lost == "barrel" || won == "barrel" && lost == "pouch"; !ok {
			t.Errorf("%s: edited = %v with conflicts %+v: want one edit and the other in conflicts", id, won, doc.Conflicts)
		}
	}
}
