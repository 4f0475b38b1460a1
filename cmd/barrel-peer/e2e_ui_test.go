package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// uiTimeout bounds the whole browser session of TestE2EUI.
const uiTimeout = 90 * time.Second

// uiStepTimeout bounds one step: a wait for replication is the longest.
const uiStepTimeout = 30 * time.Second

// uiScreenshotsEnv names the directory TestE2EUI saves its screenshots in
// (docs/screenshots); unset, it saves none.
const uiScreenshotsEnv = "BARREL_UI_SCREENSHOTS"

// TestE2EUI drives the dashboard in headless Chromium against two real
// daemons with an HTTP token: log in, create a database, add a document,
// find it by a query, see a write made on the second peer appear without a
// reload, see a conflict of concurrent edits, the peers, the changes feed.
func TestE2EUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two daemons and a browser")
	}
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found on PATH (%v): the dashboard test needs Debian's chromium package (apt-get install chromium; .ci/run installs it)", err)
	}
	const token, db = "ui-t0k", "notes"
	loop := "/ip4/127.0.0.1/tcp/0"
	a := startNetPeer(t, "A", t.TempDir(), loop, "--http-token", token)
	b := startNetPeer(t, "B", t.TempDir(), loop, "--http-token", token)
	authed := func(p *netPeer, want int, method, path, body string) map[string]any {
		t.Helper()
		r := call(t, method, p.url+path, body, "Authorization", "Bearer "+token)
		if r.status != want {
			t.Fatalf("%s: %s %s: got %d %s, want %d", p.name, method, path, r.status, r.raw, want)
		}
		if len(r.raw) == 0 || r.raw[0] != '{' {
			return nil
		}
		return r.obj(t)
	}

	var logs lockedBuffer
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(f string, args ...any) { fmt.Fprintf(&logs, f+"\n", args...) }))
	defer cancelTab()
	ctx, cancel := context.WithTimeout(tab, uiTimeout)
	defer cancel()
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			fmt.Fprintf(&logs, "page exception: %s %s\n", e.ExceptionDetails.Text, describe(e.ExceptionDetails.Exception))
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, describe(a))
			}
			fmt.Fprintf(&logs, "console.%s: %s\n", e.Type, strings.Join(parts, " "))
		}
	}); err != nil {
		t.Fatalf("start chromium %s: %v", chrome, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser log:\n%s", logs.String())
		}
	})
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, uiStepTimeout)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			// What the page shows says more than a timeout.
			dctx, cancel := context.WithTimeout(tab, 5*time.Second)
			defer cancel()
			text, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.hash + "\n" + document.body.innerText`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, text)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	shots := os.Getenv(uiScreenshotsEnv)
	shot := func(name string) {
		t.Helper()
		if shots == "" {
			return
		}
		// Let the flash message of the last action fade first.
		do("hide the flash", chromedp.Evaluate[chromedp.Void](`document.getElementById('flash').hidden = true`))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The API wants the token, so the page asks for it, refuses a wrong
	// one, keeps the right one in sessionStorage only, and then shows the
	// databases.
	do("open /ui/ and log in",
		chromedp.Navigate(a.url+"/ui/"),
		chromedp.WaitVisible(css("#login-token")),
		chromedp.SendKeys(css("#login-token"), "wrong"),
		chromedp.Click(css("#login-submit")),
		chromedp.Poll[chromedp.Void](`document.getElementById('login-error').textContent === 'That token was refused.'`),
		chromedp.SetValue(css("#login-token"), token),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#create-db-name")))
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`sessionStorage.getItem('barrel.token') === %q && localStorage.length === 0`, token))); err != nil || !ok {
		t.Fatalf("after login: token in sessionStorage only: got %v (%v), want true", ok, err)
	}

	// A page's WebSocket cannot set headers: it offers the token as a
	// subprotocol, and the feed answers.
	wsJS := `new Promise((ok, fail) => {
		const b64 = btoa(sessionStorage.getItem('barrel.token')).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
		const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/dbs/%s/_ws', ['barrel', 'barrel.token.' + b64]);
		ws.onopen = () => ws.send(JSON.stringify({type: 'subscribe', sub: 'c', changes: {}, since: 0}));
		ws.onmessage = (m) => { ws.close(); ok(ws.protocol + ' ' + JSON.parse(m.data).type); };
		ws.onerror = () => fail(new Error('the WebSocket failed'));
	})`
	do("create a database",
		chromedp.SendKeys(css("#create-db-name"), db),
		chromedp.Click(css(`#create-db button[type="submit"]`)),
		chromedp.WaitVisible(css(`#db-table tr[data-db="notes"]`)))
	authed(a, http.StatusOK, http.MethodGet, "/dbs/"+db, "")
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(wsJS, db), chromedp.EvalAwaitPromise)); err != nil || got != "barrel subscribed" {
		t.Fatalf("a WebSocket from the page with the token as subprotocol: %q (%v), want \"barrel subscribed\"", got, err)
	}
	authed(b, http.StatusCreated, http.MethodPut, "/dbs/"+db, "")
	authed(a, http.StatusOK, http.MethodPost, "/peers", fmt.Sprintf(`{"addr":%q}`, b.addr))

	do("add a document",
		chromedp.Click(css(`#db-table a[href="#/db/notes"]`)),
		chromedp.Click(css("#new-doc")),
		chromedp.WaitVisible(css("#new-doc-id")),
		chromedp.SetValue(css("#new-doc-id"), "n1"),
		chromedp.SetValue(css("#doc-editor"), `{"kind": "note", "title": "hello"}`),
		chromedp.Click(css("#doc-save")),
		chromedp.WaitVisible(css("#doc-json")),
		chromedp.Poll[chromedp.Void](`document.getElementById('doc-json').textContent.includes('"hello"')`))
	if d := authed(a, http.StatusOK, http.MethodGet, "/dbs/"+db+"/docs/n1", ""); d["title"] != "hello" {
		t.Fatalf("n1 as written by the page: got %v, want title hello", d)
	}

	do("find it by a query",
		chromedp.Click(css(`.crumbs a[href="#/db/notes"]`)),
		chromedp.Click(css(`nav.tabs a[href="#/db/notes/query"]`)),
		chromedp.WaitVisible(css("#query-text")),
		chromedp.SetValue(css("#query-text"), `{"where": [{"path": "/kind", "op": "==", "value": "note"}]}`),
		chromedp.Click(css("#query-run")),
		chromedp.WaitVisible(css(`#query-table tr[data-id="n1"]`)),
		chromedp.Evaluate[chromedp.Void](`window.barrelNotReloaded = true`))

	// A write on B reaches A by replication and A's feed; the open query
	// reruns on its own.
	authed(b, http.StatusCreated, http.MethodPut, "/dbs/"+db+"/docs/n2", `{"kind":"note","title":"from peer B"}`)
	do("see B's write in the live query", chromedp.WaitVisible(css(`#query-table tr[data-id="n2"]`)))
	if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.barrelNotReloaded === true`)); err != nil || !ok {
		t.Fatalf("the page was reloaded to show n2 (%v)", err)
	}
	shot("query")

	// Concurrent edits: both name the same base revision, so one title
	// loses and is shown as a conflict.
	base, _ := authed(a, http.StatusOK, http.MethodGet, "/dbs/"+db+"/docs/n1", "")["_rev"].(string)
	pollf(t, replWait, func() bool {
		r := call(t, http.MethodGet, b.url+"/dbs/"+db+"/docs/n1", "", "Authorization", "Bearer "+token)
		var d map[string]any
		return r.status == http.StatusOK && json.Unmarshal(r.raw, &d) == nil && d["_rev"] == base
	}, func() string { return "B to hold n1 at " + base })
	do("open n1", chromedp.Click(css(`#query-table tr[data-id="n1"] a`)), chromedp.WaitVisible(css("#doc-json")))
	authed(a, http.StatusCreated, http.MethodPut, "/dbs/"+db+"/docs/n1", fmt.Sprintf(`{"_rev":%q,"kind":"note","title":"from A"}`, base))
	authed(b, http.StatusCreated, http.MethodPut, "/dbs/"+db+"/docs/n1", fmt.Sprintf(`{"_rev":%q,"kind":"note","title":"from B"}`, base))
	do("see the conflict", chromedp.WaitVisible(css(`#conflict-table tr[data-path="/title"]`)))
	shot("document-conflict")
	loser, err := chromedp.Run(ctx, chromedp.Text(css(`#conflict-table tr[data-path="/title"] td:nth-child(2)`)))
	if err != nil {
		t.Fatal(err)
	}
	// Keeping the losing value is an edit that saw both: it resolves the
	// conflict on both peers.
	do("keep the losing value",
		chromedp.Click(css(`#conflict-table tr[data-path="/title"] button`)),
		chromedp.WaitNotPresent(css("#conflict-table")))
	var kept any
	pollf(t, replWait, func() bool {
		d := authed(b, http.StatusOK, http.MethodGet, "/dbs/"+db+"/docs/n1?conflicts=true", "")
		kept = d
		cs, _ := d["_conflicts"].([]any)
		return fmt.Sprintf("%q", d["title"]) == loser && len(cs) == 0
	}, func() string {
		return fmt.Sprintf("B to hold n1 with title %s and no conflict (last seen %v)", loser, kept)
	})

	note := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(note, []byte("attached from the page"), 0o644); err != nil {
		t.Fatal(err)
	}
	do("attach a file",
		chromedp.SetUploadFiles(css("#attach-file"), []string{note}),
		chromedp.Click(css("#attach-upload")),
		chromedp.WaitVisible(css(`#attach-table button`)))
	if r := call(t, http.MethodGet, a.url+"/dbs/"+db+"/docs/n1/_attachments/note.txt", "", "Authorization", "Bearer "+token); r.status != http.StatusOK || string(r.raw) != "attached from the page" {
		t.Fatalf("attachment uploaded by the page: got %d %q", r.status, r.raw)
	}

	do("follow the changes feed",
		chromedp.Click(css(`.crumbs a[href="#/db/notes"]`)),
		chromedp.WaitVisible(css(`#doc-table tr[data-id="n1"]`)),
		chromedp.WaitVisible(css(`#doc-table tr[data-id="n2"]`)),
		chromedp.Click(css(`nav.tabs a[href="#/db/notes/changes"]`)),
		chromedp.WaitVisible(css(`#changes-rows tr[data-id="n2"]`)))
	shot("changes")

	do("see peer B", chromedp.Click(css(`header a[href="#/peers"]`)),
		chromedp.WaitVisible(css(fmt.Sprintf(`#peers-list [data-peer=%q] tr[data-db="notes"]`, b.id))))
	shot("peers")

	do("settings of the database",
		chromedp.Click(css(fmt.Sprintf(`#peers-list [data-peer=%q] a[href="#/db/notes/settings"]`, b.id))),
		chromedp.WaitVisible(css(fmt.Sprintf(`#repl-peers tr[data-peer=%q]`, b.id))),
		chromedp.WaitVisible(css("#acl-editor")),
		chromedp.Click(css("#compact-run")),
		chromedp.WaitVisible(css("#compact-result table")),
		chromedp.SendKeys(css("#repl-prefix"), "n"),
		chromedp.Click(css(`#repl-form button[type="submit"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById('flash').textContent === 'Replication setting saved'`))
	shot("settings")
	if st := authed(a, http.StatusOK, http.MethodGet, "/dbs/"+db+"/replication", ""); fmt.Sprint(st["setting"]) != "map[id_prefix:n]" {
		t.Fatalf("replication setting saved by the page: got %v, want id_prefix n", st["setting"])
	}

	do("the databases", chromedp.Click(css(`header a[href="#/dbs"]`)), chromedp.WaitVisible(css(`#db-table tr[data-db="notes"]`)))
	shot("databases")

	// The page read everything with the token and showed no error.
	if errs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#page-error')].map((e) => e.textContent)`)); err != nil || len(errs) > 0 {
		t.Fatalf("page errors: %v (%v)", errs, err)
	}
	if strings.Contains(logs.String(), "page exception") {
		t.Fatalf("the page threw:\n%s", logs.String())
	}
	if !slices.Contains(b.peerIDsAuthed(t, token), a.id) {
		t.Fatalf("B does not list A as a peer")
	}
}

// describe renders a console argument or an exception for the log.
func describe(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if o.Description != "" {
		return o.Description
	}
	return string(o.Value)
}

// peerIDsAuthed is peerIDs with the bearer token.
func (p *netPeer) peerIDsAuthed(t *testing.T, token string) []string {
	t.Helper()
	r := call(t, http.MethodGet, p.url+"/peers", "", "Authorization", "Bearer "+token)
	var res struct {
		Peers []struct {
			ID string `json:"id"`
		} `json:"peers"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.raw, &res) != nil {
		t.Fatalf("%s: GET /peers: got %d %s", p.name, r.status, r.raw)
	}
	var ids []string
	for _, x := range res.Peers {
		ids = append(ids, x.ID)
	}
	return ids
}
