package couch

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/barrel-db/barrel/node"
)

// barrel as a replication client of a CouchDB-protocol server (CouchDB,
// express-pouchdb, another barrel's /couch/): a one-shot pull or push of
// one database, with the steps of CouchDB's replicator. barrel's side
// goes through the same revision records as a PouchDB client pushing to
// or pulling from this server, so the two kinds of peer see the same
// revisions. docs/couch-protocol.md, "barrel as a client".

// SyncOptions are one Sync's settings.
type SyncOptions struct {
	// Pull copies the remote's changes into the local database (created
	// when missing); Push copies the local changes to the remote (whose
	// database is created when missing, as CouchDB's create_target).
	// Both: pull, then push.
	Pull, Push bool
	// DocIDs, when set, limits the sync to these documents.
	DocIDs []string
	// Selector, when set, is a Mango selector (filter=_selector) that
	// limits the sync to the documents it matches, on the source's side.
	Selector json.RawMessage
	Auth     Auth
	// BatchSize is the changes read per step and the documents sent or
	// fetched per request: 0 means DefaultSyncBatch, at most MaxBulkDocs.
	BatchSize int
	// RequestTimeout bounds each request to the remote; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// DefaultSyncBatch is SyncOptions.BatchSize's default, PouchDB's and
// CouchDB's batch size.
const DefaultSyncBatch = 100

// SyncStats are what a Sync did: Pull and Push are nil for a direction
// not run.
type SyncStats struct {
	Pull *ReplicationStats `json:"pull,omitempty"`
	Push *ReplicationStats `json:"push,omitempty"`
}

// ReplicationStats are one direction's counts, with the names of
// CouchDB's replication history.
type ReplicationStats struct {
	// ReplicationID names the checkpoints: _local/ReplicationID on both
	// sides.
	ReplicationID string `json:"replication_id"`
	// LastSeq is the source's sequence the checkpoint holds: where the
	// sync reached, or where it was held by a failure.
	LastSeq string `json:"source_last_seq"`
	// ChangesRead counts the rows of the source's changes feed read.
	ChangesRead int `json:"changes_read"`
	// DocsRead counts the revisions read from the source (those the
	// target lacked); DocsWritten those the target took.
	DocsRead    int `json:"docs_read"`
	DocsWritten int `json:"docs_written"`
	// Failures counts revisions that could not be fetched or written;
	// Errors says why for the first maxSyncErrors of them. The checkpoint
	// stays before the first failure, so the next sync retries it.
	Failures int      `json:"doc_write_failures"`
	Errors   []string `json:"errors,omitempty"`
}

const maxSyncErrors = 10

func (st *ReplicationStats) fail(id, code, reason string) {
	st.Failures++
	if len(st.Errors) < maxSyncErrors {
		st.Errors = append(st.Errors, fmt.Sprintf("%s: %s: %s", id, code, reason))
	}
}

// Sync replicates the local database db with the remote database at
// remoteURL (http or https; credentials in its user info are used when
// o.Auth has none), once, and returns what it moved. Each batch is
// written before its checkpoint, so an interrupted Sync resumes where the
// last checkpoint was written on both sides. An error from the remote
// is a *RemoteError (wrapped); a push from a missing local database is
// node.ErrDBNotFound. The stats of the directions run so far are returned
// with an error.
func (s *Server) Sync(ctx context.Context, db, remoteURL string, o SyncOptions) (SyncStats, error) {
	var out SyncStats
	switch {
	case !o.Pull && !o.Push:
		return out, BadRequest("sync: choose pull, push or both")
	case o.BatchSize < 0 || o.BatchSize > MaxBulkDocs:
		return out, BadRequest(fmt.Sprintf("sync: batch size %d: want 1 to %d", o.BatchSize, MaxBulkDocs))
	case o.BatchSize == 0:
		o.BatchSize = DefaultSyncBatch
	}
	if len(o.DocIDs) > MaxBulkDocs {
		return out, BadRequest(fmt.Sprintf("sync: %d doc_ids, more than %d", len(o.DocIDs), MaxBulkDocs))
	}
	if len(o.Selector) > 0 {
		if _, err := parseSelector(o.Selector); err != nil {
			return out, err
		}
	}
	rm, err := newRemote(remoteURL, o.Auth, o.RequestTimeout)
	if err != nil {
		return out, err
	}
	if o.Pull {
		x := s.session(db, rm, "pull", o)
		err := x.pull(ctx)
		out.Pull = &x.st
		if err != nil {
			return out, fmt.Errorf("pull %s from %s: %w", db, rm.db, err)
		}
		s.log.Info("couch pull done", "db", db, "remote", rm.db, "changes", x.st.ChangesRead,
			"docs", x.st.DocsWritten, "failures", x.st.Failures, "seq", x.st.LastSeq)
	}
	if o.Push {
		x := s.session(db, rm, "push", o)
		err := x.push(ctx)
		out.Push = &x.st
		if err != nil {
			return out, fmt.Errorf("push %s to %s: %w", db, rm.db, err)
		}
		s.log.Info("couch push done", "db", db, "remote", rm.db, "changes", x.st.ChangesRead,
			"docs", x.st.DocsWritten, "failures", x.st.Failures, "seq", x.st.LastSeq)
	}
	return out, nil
}

// session is one direction of one Sync.
type session struct {
	s      *Server
	db     string
	d      *node.DB
	rm     *remote
	o      SyncOptions
	id     string // the replication id
	st     ReplicationStats
	noBulk bool // the remote has no _bulk_get: fetch with open_revs

	// The checkpoint as read: the sequence both sides agree on ("" for
	// none) and the remote's _rev of it.
	since, remoteRev string
}

func (s *Server) session(db string, rm *remote, dir string, o SyncOptions) *session {
	ids := slices.Clone(o.DocIDs)
	slices.Sort(ids)
	// As CouchDB's replication id: who replicates, what, with whom, which
	// way, which documents. Credentials are not part of it.
	parts := []string{"barrel couch replication 1", s.uuid, db, rm.db, dir, strings.Join(ids, "\x00")}
	if len(o.Selector) > 0 {
		parts = append(parts, string(o.Selector)) // an older id (no selector) stays the same
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	x := &session{s: s, db: db, rm: rm, o: o, id: hex.EncodeToString(h[:16])}
	x.st.ReplicationID = x.id
	return x
}

// checkpoint is the body of _local/{replication id} on either side.
type checkpoint struct {
	Rev     string          `json:"_rev"`
	LastSeq json.RawMessage `json:"last_seq"`
}

// readCheckpoint sets since to the checkpoint's sequence when both
// sides hold the same one, else "" (a restart from the beginning, made
// cheap by _revs_diff).
func (x *session) readCheckpoint(ctx context.Context) error {
	var rc checkpoint
	err := x.rm.do(ctx, http.MethodGet, "_local/"+x.id, nil, nil, &rc)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the checkpoint: %w", err)
	}
	x.remoteRev = rc.Rev
	v, err := x.d.GetLocal(localPrefix + x.id)
	if errors.Is(err, node.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var lc checkpoint
	if json.Unmarshal(v, &lc) != nil {
		return nil // unreadable: start over, and overwrite it
	}
	if r, l := seqString(rc.LastSeq), seqString(lc.LastSeq); r != "" && r == l {
		x.since = r
	}
	return nil
}

// mayCheckpoint says whether the checkpoint should move to seq: it
// moved, or the remote has none yet, and no revision failed in this
// sync. A failed revision holds the checkpoint where it was, so the next
// sync reads that stretch of the feed again (cheap: _revs_diff) and
// retries it, instead of skipping it for good as CouchDB's replicator
// does (DESIGN.md invariant 3).
func (x *session) mayCheckpoint(seq string) bool {
	return seq != "" && x.st.Failures == 0 && (seq != x.since || x.remoteRev == "")
}

// writeCheckpoint stores seq as the checkpoint on both sides. The
// caller has written everything up to seq.
func (x *session) writeCheckpoint(ctx context.Context, seq string) error {
	body := map[string]any{"last_seq": seq, "replicator": "barrel", "version": node.BuildVersion()}
	unlock := x.s.lock(x.d.Name())
	rev := ""
	if v, err := x.d.GetLocal(localPrefix + x.id); err == nil {
		var lc checkpoint
		_ = json.Unmarshal(v, &lc)
		rev = lc.Rev
	}
	_, err := x.s.writeLocal(ctx, x.d, x.id, rev, body)
	unlock()
	if err != nil {
		return fmt.Errorf("write the local checkpoint: %w", err)
	}
	for try := 0; ; try++ {
		put := map[string]any{"last_seq": seq, "replicator": "barrel"}
		if x.remoteRev != "" {
			put["_rev"] = x.remoteRev
		}
		var res BulkDocsResult
		err := x.rm.do(ctx, http.MethodPut, "_local/"+x.id, nil, put, &res)
		if err == nil {
			x.remoteRev = res.Rev
			x.since = seq
			return nil
		}
		if !isStatus(err, http.StatusConflict) || try > 0 {
			return fmt.Errorf("write the remote checkpoint: %w", err)
		}
		// Written meanwhile (another sync of the same pair): take its
		// revision and write ours over it.
		var rc checkpoint
		if err := x.rm.do(ctx, http.MethodGet, "_local/"+x.id, nil, nil, &rc); err != nil && !isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("read the remote checkpoint: %w", err)
		}
		x.remoteRev = rc.Rev
	}
}

// remoteChanges is a page of the remote's changes feed.
type remoteChanges struct {
	Results []struct {
		Seq     json.RawMessage `json:"seq"`
		ID      string          `json:"id"`
		Changes []ChangeRev     `json:"changes"`
	} `json:"results"`
	LastSeq json.RawMessage `json:"last_seq"`
}

// pull: the remote's changes after the checkpoint, page by page; the
// revisions the local records lack are fetched and written as a PouchDB
// push is (replicate), then the page's checkpoint is written.
func (x *session) pull(ctx context.Context) error {
	if err := x.rm.do(ctx, http.MethodGet, "", nil, nil, nil); err != nil {
		if re, ok := errors.AsType[*RemoteError](err); ok && re.Status == http.StatusNotFound {
			re.Reason += " (the remote database does not exist; a pull does not create it)"
		}
		return err
	}
	d, err := x.s.n.DB(x.db)
	if errors.Is(err, node.ErrDBNotFound) {
		if err = x.s.n.CreateDB(ctx, x.db); err == nil || errors.Is(err, node.ErrDBExists) {
			d, err = x.s.n.DB(x.db)
		}
	}
	if err != nil {
		return err
	}
	x.d = d
	if err := x.readCheckpoint(ctx); err != nil {
		return err
	}
	since := x.since
	x.st.LastSeq = since
	for {
		q := url.Values{"style": {"all_docs"}, "since": {cmp.Or(since, "0")}, "limit": {strconv.Itoa(x.o.BatchSize)}}
		var page remoteChanges
		var err error
		switch {
		case len(x.o.DocIDs) > 0:
			q.Set("filter", "_doc_ids")
			err = x.rm.do(ctx, http.MethodPost, "_changes", q, map[string][]string{"doc_ids": x.o.DocIDs}, &page)
		case len(x.o.Selector) > 0:
			q.Set("filter", "_selector")
			err = x.rm.do(ctx, http.MethodPost, "_changes", q, map[string]json.RawMessage{"selector": x.o.Selector}, &page)
		default:
			err = x.rm.do(ctx, http.MethodGet, "_changes", q, nil, &page)
		}
		if err != nil {
			return err
		}
		x.st.ChangesRead += len(page.Results)
		if err := x.pullPage(ctx, page); err != nil {
			return err
		}
		last := seqString(page.LastSeq)
		if last == "" && len(page.Results) > 0 {
			last = seqString(page.Results[len(page.Results)-1].Seq)
		}
		if x.mayCheckpoint(last) {
			if err := x.writeCheckpoint(ctx, last); err != nil {
				return err
			}
			x.st.LastSeq = last
		}
		if len(page.Results) < x.o.BatchSize {
			return nil
		}
		if last == since {
			return fmt.Errorf("the remote's changes feed does not move past %s", since)
		}
		since = last
	}
}

// wanted is one revision to fetch from the remote.
type wanted struct{ id, rev string }

func (x *session) pullPage(ctx context.Context, page remoteChanges) error {
	var want []wanted
	unlock := x.s.lock(x.d.Name())
	for _, row := range page.Results {
		if row.ID == "" {
			x.st.fail("(no id)", "bad_request", "a row of the remote's changes feed has no id")
			continue
		}
		rec, err := x.s.loadRecord(x.d, row.ID)
		if err != nil {
			unlock()
			return err
		}
		for _, c := range row.Changes {
			v, err := ParseRev(c.Rev)
			if err != nil {
				x.st.fail(row.ID, "bad_request", fmt.Sprintf("the remote's revision: %v", err))
				continue
			}
			if !rec.has(v) {
				want = append(want, wanted{row.ID, c.Rev})
			}
		}
	}
	unlock()
	for len(want) > 0 {
		n := min(len(want), x.o.BatchSize)
		docs, err := x.fetch(ctx, want[:n])
		if err != nil {
			return err
		}
		if err := x.write(ctx, docs); err != nil {
			return err
		}
		want = want[n:]
	}
	return nil
}

// fetch reads revisions from the remote with _bulk_get, or with one
// GET ?open_revs per document from a server that has no _bulk_get
// (CouchDB before 2.0).
func (x *session) fetch(ctx context.Context, want []wanted) ([]BulkDoc, error) {
	if !x.noBulk {
		docs, err := x.bulkGet(ctx, want)
		if !isStatus(err, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed) {
			return docs, err
		}
		x.noBulk = true
	}
	return x.openRevs(ctx, want)
}

func (x *session) bulkGet(ctx context.Context, want []wanted) ([]BulkDoc, error) {
	type item struct {
		ID  string `json:"id"`
		Rev string `json:"rev"`
	}
	req := struct {
		Docs []item `json:"docs"`
	}{Docs: make([]item, len(want))}
	for i, w := range want {
		req.Docs[i] = item{w.id, w.rev}
	}
	var res struct {
		Results []struct {
			ID   string `json:"id"`
			Docs []struct {
				OK    json.RawMessage `json:"ok"`
				Error *BulkGetError   `json:"error"`
			} `json:"docs"`
		} `json:"results"`
	}
	q := url.Values{"revs": {"true"}, "latest": {"true"}, "attachments": {"true"}}
	if err := x.rm.do(ctx, http.MethodPost, "_bulk_get", q, req, &res); err != nil {
		return nil, err
	}
	asked := map[string]bool{}
	for _, w := range want {
		asked[w.id] = true
	}
	var docs []BulkDoc
	for _, r := range res.Results {
		if !asked[r.ID] {
			continue // not asked for: ignored
		}
		for _, d := range r.Docs {
			switch {
			case d.OK != nil && !isNull(d.OK):
				if doc, ok := x.take(r.ID, d.OK); ok {
					docs = append(docs, doc)
				}
			case d.Error != nil:
				x.st.fail(r.ID, d.Error.Error, fmt.Sprintf("the remote could not send revision %s: %s", d.Error.Rev, d.Error.Reason))
			}
		}
	}
	return docs, nil
}

func (x *session) openRevs(ctx context.Context, want []wanted) ([]BulkDoc, error) {
	var ids []string
	revs := map[string][]string{}
	for _, w := range want {
		if _, ok := revs[w.id]; !ok {
			ids = append(ids, w.id)
		}
		revs[w.id] = append(revs[w.id], w.rev)
	}
	var docs []BulkDoc
	for _, id := range ids {
		list, _ := json.Marshal(revs[id])
		q := url.Values{"open_revs": {string(list)}, "revs": {"true"}, "latest": {"true"}, "attachments": {"true"}}
		var res []struct {
			OK      json.RawMessage `json:"ok"`
			Missing string          `json:"missing"`
		}
		err := x.rm.do(ctx, http.MethodGet, url.PathEscape(id), q, nil, &res)
		if isStatus(err, http.StatusNotFound) {
			x.st.fail(id, "not_found", "the remote could not send it")
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, r := range res {
			switch {
			case r.OK != nil && !isNull(r.OK):
				if doc, ok := x.take(id, r.OK); ok {
					docs = append(docs, doc)
				}
			case r.Missing != "":
				x.st.fail(id, "not_found", "the remote could not send revision "+r.Missing)
			}
		}
	}
	return docs, nil
}

// take checks a document the remote sent as one a PouchDB push would
// send: the same decoder and checks as _bulk_docs (its attachments come
// inline: fetched with attachments=true).
func (x *session) take(id string, raw json.RawMessage) (BulkDoc, bool) {
	x.st.DocsRead++
	doc, err := decodeBulkDoc(raw)
	if err != nil {
		code, reason := "bad_request", err.Error()
		if ce, ok := errors.AsType[*Error](err); ok {
			code, reason = ce.Code, ce.Reason
		}
		x.st.fail(id, code, "the remote's document: "+reason)
		return BulkDoc{}, false
	}
	if doc.ID != id {
		x.st.fail(id, "bad_request", fmt.Sprintf("the remote sent document %s for it", quote(doc.ID)))
		return BulkDoc{}, false
	}
	return doc, true
}

// write stores fetched revisions the way a PouchDB push is stored.
func (x *session) write(ctx context.Context, docs []BulkDoc) error {
	if len(docs) == 0 {
		return nil
	}
	unlock := x.s.lock(x.d.Name())
	failed, err := x.s.replicate(ctx, x.d, docs)
	unlock()
	if err != nil {
		return err
	}
	x.st.DocsWritten += len(docs) - len(failed)
	for _, f := range failed {
		x.st.fail(f.ID, f.Error, f.Reason)
	}
	return nil
}

// push: the local feed after the checkpoint, as a PouchDB pull reads it
// (scan: every leaf, the records moved on first); _revs_diff asks the
// remote which revisions it lacks; they are sent with _bulk_docs
// new_edits false and their _revisions; then the checkpoint is written.
func (x *session) push(ctx context.Context) error {
	d, err := x.s.n.DB(x.db)
	if err != nil {
		return err
	}
	x.d = d
	if err := x.rm.do(ctx, http.MethodGet, "", nil, nil, nil); isStatus(err, http.StatusNotFound) {
		// create_target, as CouchDB's replicator does.
		if err := x.rm.do(ctx, http.MethodPut, "", nil, nil, nil); err != nil && !isStatus(err, http.StatusPreconditionFailed) {
			return fmt.Errorf("create the remote database: %w", err)
		}
	} else if err != nil {
		return err
	}
	if err := x.readCheckpoint(ctx); err != nil {
		return err
	}
	since, err := parseSeq(x.since)
	if err != nil {
		since, x.since = 0, "" // not a sequence of ours: start over
	}
	x.st.LastSeq = formatSeq(since)
	c := changesQuery{allDocs: true, limit: x.o.BatchSize}
	if len(x.o.Selector) > 0 {
		if c.sel, err = parseSelector(x.o.Selector); err != nil {
			return err
		}
	}
	if len(x.o.DocIDs) > 0 {
		c.docIDs = map[string]bool{}
		for _, id := range x.o.DocIDs {
			c.docIDs[id] = true
		}
	}
	for {
		rows, last, err := x.s.scan(ctx, d, c, since)
		if err != nil {
			return err
		}
		x.st.ChangesRead += len(rows)
		if err := x.pushRows(ctx, rows); err != nil {
			return err
		}
		if seq := formatSeq(last); x.mayCheckpoint(seq) {
			if err := x.writeCheckpoint(ctx, seq); err != nil {
				return err
			}
			x.st.LastSeq = seq
		}
		if len(rows) < x.o.BatchSize {
			return nil
		}
		since = last
	}
}

func (x *session) pushRows(ctx context.Context, rows []ChangesRow) error {
	if len(rows) == 0 {
		return nil
	}
	diff := make(map[string][]string, len(rows))
	for _, r := range rows {
		for _, c := range r.Changes {
			diff[r.ID] = append(diff[r.ID], c.Rev)
		}
	}
	var missing map[string]RevsDiffResult
	if err := x.rm.do(ctx, http.MethodPost, "_revs_diff", nil, diff, &missing); err != nil {
		return err
	}
	var ids []string
	for _, r := range rows {
		if len(missing[r.ID].Missing) > 0 {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	unlock := x.s.lock(x.d.Name())
	views, err := x.s.present(ctx, x.d, ids)
	unlock()
	if err != nil {
		return err
	}
	var docs []map[string]any
	budget := maxInlineBytes
	for _, id := range ids {
		v := views[id]
		if !v.exists {
			continue // purged meanwhile
		}
		sent := map[string]bool{}
		for _, rev := range missing[id].Missing {
			body, ok := v.leaf(rev, true)
			if !ok {
				body = v.body(true) // moved on since the scan: its newer revision
			}
			if r, _ := body["_rev"].(string); !sent[r] {
				sent[r] = true
				// Attachments go inline: the remote has none of barrel's blobs.
				if err := x.s.inline(ctx, x.d, id, body, &budget); err != nil {
					return err
				}
				docs = append(docs, body)
			}
		}
	}
	x.st.DocsRead += len(docs)
	var res []BulkDocsResult
	req := map[string]any{"docs": docs, "new_edits": false}
	if err := x.rm.do(ctx, http.MethodPost, "_bulk_docs", nil, req, &res); err != nil {
		return err
	}
	failed := 0
	for _, r := range res {
		if r.Error != "" {
			failed++
			x.st.fail(r.ID, r.Error, r.Reason)
		}
	}
	x.st.DocsWritten += len(docs) - failed
	return nil
}
