package couch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/node"
)

// TestSyncOpenRevsFallback: a remote without _bulk_get (CouchDB 1.x
// answers 404) is read with GET ?open_revs; here the remote is another
// barrel's /couch/, so this is also barrel pulling from barrel.
func TestSyncOpenRevsFallback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := newBarrel(t, false, couch.Config{}), newBarrel(t, false, couch.Config{})
	if err := b.n.CreateDB(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	var ops []node.DocOp
	for i := range 30 {
		ops = append(ops, node.DocOp{ID: fmt.Sprintf("d/%02d", i), Body: map[string]any{"i": i}})
	}
	if _, err := b.db(t, "src").Bulk(ctx, ops, false); err != nil {
		t.Fatal(err)
	}
	var bulkGets, openRevs atomic.Int32
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_bulk_get"):
			bulkGets.Add(1)
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintln(w, `{"error":"not_found","reason":"missing"}`)
			return
		case r.URL.Query().Has("open_revs"):
			openRevs.Add(1)
		}
		r2, _ := http.NewRequestWithContext(r.Context(), r.Method, b.url+r.URL.RequestURI(), r.Body)
		r2.Header = r.Header
		resp, err := http.DefaultClient.Do(r2)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer old.Close()
	st := syncWith(ctx, t, a, "dst", old.URL+"/couch/src", couch.SyncOptions{Pull: true, BatchSize: 10})
	wantMoved(t, "pull through open_revs", st.Pull, 30, 30, 30)
	if bulkGets.Load() != 1 || openRevs.Load() != 30 {
		t.Errorf("%d _bulk_get and %d open_revs requests, want 1 and 30", bulkGets.Load(), openRevs.Load())
	}
	sameBodies(t, "pulled through open_revs", bodies(t, a.db(t, "dst")), bodies(t, b.db(t, "src")))
	// And back: barrel pushes to barrel; nothing is missing there.
	st = syncWith(ctx, t, a, "dst", b.url+"/couch/src", couch.SyncOptions{Push: true})
	wantMoved(t, "push back", st.Push, 30, 0, 0)
}

// TestSyncBounds: an answer over MaxRemoteAnswerBytes fails the sync
// with a clear error, and an error answer is reported with the remote's
// error and reason.
func TestSyncBounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newBarrel(t, false, couch.Config{})
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/_local/"):
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintln(w, `{"error":"not_found","reason":"missing"}`)
		case strings.HasSuffix(r.URL.Path, "/_changes"):
			fmt.Fprint(w, "{")
			pad := strings.Repeat(" ", 1<<20)
			for range couch.MaxRemoteAnswerBytes>>20 + 1 {
				if _, err := fmt.Fprint(w, pad); err != nil {
					return
				}
			}
		case strings.HasSuffix(r.URL.Path, "/locked"):
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, `{"error":"forbidden","reason":"you may not read this"}`)
		default:
			fmt.Fprintln(w, `{"db_name":"x"}`)
		}
	}))
	defer huge.Close()
	_, err := a.couch.Sync(ctx, "x", huge.URL+"/x", couch.SyncOptions{Pull: true})
	if re, ok := errors.AsType[*couch.RemoteError](err); !ok || !strings.Contains(re.Reason, "answer over") {
		t.Fatalf("pull of a huge answer: %v, want a RemoteError saying the answer is over the bound", err)
	}
	_, err = a.couch.Sync(ctx, "x", huge.URL+"/locked", couch.SyncOptions{Pull: true})
	if re, ok := errors.AsType[*couch.RemoteError](err); !ok || re.Status != http.StatusForbidden || re.Code != "forbidden" ||
		!strings.Contains(err.Error(), "you may not read this") {
		t.Fatalf("pull of a forbidden database: %v, want the remote's 403 forbidden and its reason", err)
	}
}
