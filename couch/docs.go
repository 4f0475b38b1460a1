package couch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/barrel-db/barrel/node"
)

// Local record keys (node.DB.PutLocal): a document's revision record and
// a _local document.
const (
	recPrefix   = "r/"
	localPrefix = "l/"
)

// view is one document as a CouchDB client sees it: barrel's document
// (when it exists) and the record of what clients were shown.
type view struct {
	id     string
	doc    node.Document
	exists bool
	rec    *record // nil: no client was ever shown the document
}

func (s *Server) loadRecord(d *node.DB, id string) (*record, error) {
	v, err := d.GetLocal(recPrefix + id)
	if errors.Is(err, node.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeRecord(v)
}

// present reads the documents ids and their records, moves each record
// on to its document as it is now (present), and stores the records that
// moved before any of them is shown: a revision a client saw is never
// forgotten. The caller holds the database's lock.
func (s *Server) present(ctx context.Context, d *node.DB, ids []string) (map[string]*view, error) {
	out := make(map[string]*view, len(ids))
	moved := map[string][]byte{}
	for _, id := range ids {
		if _, ok := out[id]; ok {
			continue
		}
		v := &view{id: id}
		doc, err := d.Get(ctx, id)
		switch {
		case err == nil:
			v.doc, v.exists = doc, true
		case errors.Is(err, node.ErrNotFound):
		default:
			return nil, err
		}
		if v.rec, err = s.loadRecord(d, id); err != nil {
			return nil, err
		}
		if v.exists {
			next, changed := present(v.rec, doc.Revs, doc.Deleted)
			if changed {
				moved[recPrefix+id] = next.encode()
			}
			v.rec = next
		}
		out[id] = v
	}
	if len(moved) > 0 {
		if err := d.PutLocal(ctx, moved, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// body is the document at its current revision as CouchDB sends it.
func (v *view) body(revs bool) map[string]any {
	out := map[string]any{}
	if !v.rec.Deleted {
		for k, x := range v.doc.Body {
			if !strings.HasPrefix(k, "_") { // barrel's reserved fields: _attachments below
				out[k] = x
			}
		}
	}
	out["_id"], out["_rev"] = v.id, v.rec.rev()
	if v.rec.Deleted {
		out["_deleted"] = true
	} else if atts, _ := v.doc.Body[node.AttachmentsField].(map[string]any); len(atts) > 0 {
		// Stubs: the client asks for the content with attachments=true
		// (inline). The digest is barrel's sha256, a name for the content.
		stubs := make(map[string]any, len(atts))
		for name, a := range atts {
			m, _ := a.(map[string]any)
			stubs[name] = map[string]any{"content_type": m["content_type"], "length": m["length"],
				"digest": m["digest"], "stub": true, "revpos": v.rec.Gen}
		}
		out["_attachments"] = stubs
	}
	if revs {
		out["_revisions"] = v.rec.revisions()
	}
	return out
}

// leaf is the document at one of its leaves: the current revision or a
// closing (deleted) one. ok is false when rev is neither.
func (v *view) leaf(rev string, revs bool) (map[string]any, bool) {
	if v.rec == nil {
		return nil, false
	}
	if rev == "" || rev == v.rec.rev() {
		return v.body(revs), true
	}
	for _, c := range v.rec.Closed {
		if c.rev() == rev {
			out := map[string]any{"_id": v.id, "_rev": rev, "_deleted": true}
			if revs {
				out["_revisions"] = c.revisions()
			}
			return out, true
		}
	}
	return nil, false
}

func (s *Server) revsDiff(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	req, err := DecodeRevsDiff(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer s.lock(d.Name())()
	out := map[string]RevsDiffResult{}
	for id, revs := range req {
		rec, err := s.loadRecord(d, id)
		if err != nil {
			return err
		}
		var missing []string
		for _, v := range revs {
			if !rec.has(v) {
				missing = append(missing, v.String())
			}
		}
		if len(missing) > 0 {
			out[id] = RevsDiffResult{Missing: missing}
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) bulkGet(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	items, err := DecodeBulkGet(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	revs, atts := boolParam(r, "revs"), boolParam(r, "attachments")
	budget := maxInlineBytes
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	unlock := s.lock(d.Name())
	views, err := s.present(r.Context(), d, ids)
	unlock()
	if err != nil {
		return err
	}
	res := BulkGetResult{Results: make([]BulkGetResultItem, len(items))}
	for i, it := range items {
		v := views[it.ID]
		doc, ok := v.leaf(it.Rev, revs)
		if !ok && v.rec != nil {
			// An older revision: barrel keeps documents, not revision
			// bodies, so the client gets the current one (latest=true).
			doc, ok = v.body(revs), true
		}
		if ok && atts {
			if err := s.inline(r.Context(), d, it.ID, doc, &budget); err != nil {
				return err
			}
		}
		item := BulkGetResultItem{ID: it.ID}
		if ok {
			s.m.sent.WithLabelValues(d.Name()).Inc()
			item.Docs = []BulkGetDoc{{OK: doc}}
		} else {
			item.Docs = []BulkGetDoc{{Error: &BulkGetError{ID: it.ID, Rev: it.Rev, Error: "not_found", Reason: ReasonMissing}}}
		}
		res.Results[i] = item
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) getDoc(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	unlock := s.lock(d.Name())
	views, err := s.present(r.Context(), d, []string{id})
	unlock()
	if err != nil {
		return err
	}
	v := views[id]
	q := r.URL.Query()
	revs := boolParam(r, "revs")
	if open := q.Get("open_revs"); open != "" {
		var want []string
		if open == "all" {
			if v.rec != nil {
				want = v.rec.leaves()
			}
		} else if err := json.Unmarshal([]byte(open), &want); err != nil {
			return BadRequest("open_revs must be \"all\" or a JSON list of revisions")
		}
		out := make([]map[string]any, 0, len(want))
		budget := maxInlineBytes
		for _, rev := range want {
			doc, ok := v.leaf(rev, revs)
			if !ok && v.rec != nil && boolParam(r, "latest") {
				doc, ok = v.body(revs), true
			}
			if !ok {
				out = append(out, map[string]any{"missing": rev})
				continue
			}
			if boolParam(r, "attachments") {
				if err := s.inline(r.Context(), d, id, doc, &budget); err != nil {
					return err
				}
			}
			out = append(out, map[string]any{"ok": doc})
			s.m.sent.WithLabelValues(d.Name()).Inc()
		}
		return writeJSON(w, http.StatusOK, out)
	}
	if v.rec == nil {
		return NotFound(ReasonMissing)
	}
	doc, ok := v.leaf(q.Get("rev"), revs)
	if !ok {
		return NotFound(ReasonMissing)
	}
	if doc["_deleted"] == true && q.Get("rev") == "" {
		return NotFound(ReasonDeleted)
	}
	if boolParam(r, "attachments") {
		budget := maxInlineBytes
		if err := s.inline(r.Context(), d, id, doc, &budget); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, doc)
}

// bulkDocs writes documents: with new_edits false as revisions made
// elsewhere (a replicator's push), else as new edits of the current
// revisions.
func (s *Server) bulkDocs(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	if err := s.mayWrite(d); err != nil {
		return err
	}
	req, err := DecodeBulkDocs(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	defer s.lock(d.Name())()
	if !req.NewEdits {
		failed, err := s.replicate(r.Context(), d, req.Docs)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, failed)
	}
	res, err := s.edit(r.Context(), d, req.Docs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, res)
}

// replicate writes revisions made elsewhere (new_edits false): each that
// this node does not have becomes a barrel change on the heads of its
// newest known ancestor (detached when none is known), and the record
// takes it in (pushed). It answers the documents that failed only, as
// CouchDB does. The caller holds the lock.
func (s *Server) replicate(ctx context.Context, d *node.DB, docs []BulkDoc) ([]BulkDocsResult, error) {
	failed := []BulkDocsResult{}
	// A document may come with several leaves: one wave per occurrence,
	// so that each is written on the record the previous one left.
	for len(docs) > 0 {
		var wave, later []BulkDoc
		seen := map[string]bool{}
		for _, doc := range docs {
			if seen[doc.ID] {
				later = append(later, doc)
				continue
			}
			seen[doc.ID] = true
			wave = append(wave, doc)
		}
		f, err := s.replicateWave(ctx, d, wave, false)
		if err != nil {
			return nil, err
		}
		failed = append(failed, f...)
		docs = later
	}
	return failed, nil
}

// pending is one pushed revision on its way to the store.
type pending struct {
	doc BulkDoc
	rev Rev
	anc []string // ancestor hashes, parent first
	rec *record
}

// replicateWave writes a wave of pushed revisions (one per document).
// detached writes every one detached: the retry of those whose base
// revision compaction folded meanwhile (ErrRevMismatch), so an edit made
// on a long-gone base is merged as a concurrent one instead of refused
// for good.
func (s *Server) replicateWave(ctx context.Context, d *node.DB, docs []BulkDoc, detached bool) ([]BulkDocsResult, error) {
	var failed []BulkDocsResult
	var todo []pending
	var ops []node.DocOp
	for _, doc := range docs {
		p, err := pushedRev(doc)
		if err != nil {
			failed = append(failed, failure(doc.ID, err))
			continue
		}
		if p.rec, err = s.loadRecord(d, doc.ID); err != nil {
			return nil, err
		}
		if p.rec.has(p.rev) {
			continue // already here
		}
		op := node.DocOp{ID: doc.ID, Body: doc.Body, Delete: doc.Deleted}
		if !doc.Deleted {
			if op.Attachments, err = s.attachments(ctx, d, doc.ID, doc.Attachments); err != nil {
				failed = append(failed, failure(doc.ID, err))
				continue
			}
		}
		ancestors := make([]Rev, len(p.anc))
		for i, h := range p.anc {
			ancestors[i] = Rev{Gen: p.rev.Gen - uint64(i) - 1, Hash: h}
		}
		if heads, ok := p.rec.base(ancestors); ok && len(heads) > 0 && !detached {
			op.Heads = heads
		} else {
			op.Detached = true
		}
		todo = append(todo, p)
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return failed, nil
	}
	// The records are written with the changes, in the same commit: a
	// pushed revision is known exactly when its change is durable.
	res, err := d.BulkRecords(ctx, ops, func(res []node.BulkResult, state func(string) (node.DocState, bool)) map[string][]byte {
		recs := map[string][]byte{}
		for i, p := range todo {
			c := res[i].Rev
			if err := res[i].Error; err != nil {
				if !tombOfUnknown(err, p.doc) {
					continue
				}
				c = "" // nothing was written
			}
			var heads []string
			deleted := p.doc.Deleted
			if c != "" {
				st, ok := state(p.doc.ID)
				if !ok {
					continue
				}
				heads, deleted = st.Heads, st.Deleted
			}
			recs[recPrefix+p.doc.ID] = pushed(p.rec, p.rev, p.anc, c, heads, deleted).encode()
		}
		return recs
	})
	if err != nil {
		return nil, err
	}
	ok := 0
	var folded []BulkDoc
	for i, p := range todo {
		switch err := res[i].Error; {
		case err == nil || tombOfUnknown(err, p.doc):
			ok++
		case errors.Is(err, node.ErrRevMismatch) && len(ops[i].Heads) > 0:
			folded = append(folded, p.doc)
		default:
			failed = append(failed, failure(p.doc.ID, err))
		}
	}
	s.m.written.WithLabelValues(d.Name()).Add(float64(ok))
	if len(folded) > 0 {
		f, err := s.replicateWave(ctx, d, folded, true)
		if err != nil {
			return nil, err
		}
		failed = append(failed, f...)
	}
	return failed, nil
}

// tombOfUnknown: the write of a tombstone of a document this node never
// had, which writes nothing and is only remembered.
func tombOfUnknown(err error, doc BulkDoc) bool {
	return doc.Deleted && errors.Is(err, node.ErrNotFound)
}

// pushedRev is the revision a replicated document carries and its
// ancestry (from _revisions when sent).
func pushedRev(doc BulkDoc) (pending, error) {
	p := pending{doc: doc}
	if doc.Revisions != nil {
		revs, err := doc.Revisions.Revs()
		if err != nil {
			return p, BadRequest(err.Error())
		}
		p.rev = revs[0]
		for _, a := range revs[1:] {
			p.anc = append(p.anc, a.Hash)
		}
		return p, nil
	}
	v, err := ParseRev(doc.Rev)
	if err != nil {
		return p, BadRequest(err.Error())
	}
	p.rev = v
	return p, nil
}

// edit writes new edits (new_edits true): a document's _rev must be its
// current revision (none for a new document), else it is a conflict.
func (s *Server) edit(ctx context.Context, d *node.DB, docs []BulkDoc) ([]BulkDocsResult, error) {
	out := make([]BulkDocsResult, len(docs))
	var ops []node.DocOp
	var idx []int
	views := map[string]*view{}
	for i, doc := range docs {
		if doc.ID == "" {
			doc.ID = newID()
			docs[i].ID = doc.ID
		}
		out[i].ID = doc.ID
		vs, err := s.present(ctx, d, []string{doc.ID})
		if err != nil {
			return nil, err
		}
		v := vs[doc.ID]
		views[doc.ID] = v
		op := node.DocOp{ID: doc.ID, Body: doc.Body, Delete: doc.Deleted}
		switch {
		case v.rec != nil && !v.rec.Deleted && doc.Rev != v.rec.rev():
			out[i].Error, out[i].Reason = "conflict", "Document update conflict."
			continue
		case v.rec != nil && v.rec.Deleted && doc.Rev != "" && doc.Rev != v.rec.rev():
			out[i].Error, out[i].Reason = "conflict", "Document update conflict."
			continue
		case v.rec != nil:
			op.Heads = v.rec.Heads
		case doc.Deleted:
			out[i].Error, out[i].Reason = "not_found", ReasonMissing
			continue
		}
		if len(op.Heads) == 0 && v.exists {
			op.Heads = v.doc.Revs
		}
		if !doc.Deleted {
			if op.Attachments, err = s.attachments(ctx, d, doc.ID, doc.Attachments); err != nil {
				f := failure(doc.ID, err)
				out[i].Error, out[i].Reason = f.Error, f.Reason
				continue
			}
		}
		ops = append(ops, op)
		idx = append(idx, i)
	}
	if len(ops) == 0 {
		return out, nil
	}
	res, err := d.Bulk(ctx, ops, false)
	if err != nil {
		return nil, err
	}
	var ids []string
	for j, i := range idx {
		if err := res[j].Error; err != nil {
			f := failure(docs[i].ID, err)
			out[i].Error, out[i].Reason = f.Error, f.Reason
			continue
		}
		ids = append(ids, docs[i].ID)
	}
	now, err := s.present(ctx, d, ids)
	if err != nil {
		return nil, err
	}
	for _, i := range idx {
		if out[i].Error == "" {
			out[i].OK, out[i].Rev = true, now[docs[i].ID].rec.rev()
			s.m.written.WithLabelValues(d.Name()).Inc()
		}
	}
	return out, nil
}

// failure is a document's error in a _bulk_docs answer.
func failure(id string, err error) BulkDocsResult {
	var ce *Error
	var ie *node.InvalidError
	switch {
	case errors.As(err, &ce):
		return BulkDocsResult{ID: id, Error: ce.Code, Reason: ce.Reason}
	case errors.Is(err, node.ErrRevMismatch):
		return BulkDocsResult{ID: id, Error: "conflict", Reason: "Document update conflict."}
	case errors.Is(err, node.ErrTooLarge):
		return BulkDocsResult{ID: id, Error: "too_large", Reason: err.Error()}
	case errors.As(err, &ie):
		return BulkDocsResult{ID: id, Error: "doc_validation", Reason: ie.Error()}
	case errors.Is(err, node.ErrNotFound):
		return BulkDocsResult{ID: id, Error: "not_found", Reason: ReasonMissing}
	default:
		return BulkDocsResult{ID: id, Error: "unknown_error", Reason: "internal error"}
	}
}

// putDoc is PUT /{db}/{id}: one document, a new edit (or, with
// new_edits=false, a replicated revision).
func (s *Server) putDoc(w http.ResponseWriter, r *http.Request) error {
	d, doc, err := s.docRequest(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if doc.ID != "" && doc.ID != id {
		return BadRequest("_id does not match the document's URL")
	}
	doc.ID = id
	if doc.Rev == "" {
		doc.Rev = r.URL.Query().Get("rev")
	}
	return s.writeOne(w, r, d, doc)
}

func (s *Server) deleteDoc(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	rev := r.URL.Query().Get("rev")
	if rev == "" {
		return Conflict()
	}
	return s.writeOne(w, r, d, BulkDoc{ID: r.PathValue("id"), Rev: rev, Deleted: true, Body: map[string]any{}})
}

// postDoc is POST /{db}: a new document, its id generated when absent.
func (s *Server) postDoc(w http.ResponseWriter, r *http.Request) error {
	d, doc, err := s.docRequest(r)
	if err != nil {
		return err
	}
	return s.writeOne(w, r, d, doc)
}

// docRequest is the database and the document of a single-document
// write, decoded with _bulk_docs's checks.
func (s *Server) docRequest(r *http.Request) (*node.DB, BulkDoc, error) {
	d, err := s.db(r)
	if err != nil {
		return nil, BulkDoc{}, err
	}
	b, err := readBody(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		return nil, BulkDoc{}, err
	}
	doc, err := decodeBulkDoc(b)
	return d, doc, err
}

func (s *Server) writeOne(w http.ResponseWriter, r *http.Request, d *node.DB, doc BulkDoc) error {
	if err := s.mayWrite(d); err != nil {
		return err
	}
	defer s.lock(d.Name())()
	if r.URL.Query().Get("new_edits") == "false" {
		failed, err := s.replicate(r.Context(), d, []BulkDoc{doc})
		if err != nil {
			return err
		}
		if len(failed) > 0 {
			return &Error{Status: http.StatusBadRequest, Code: failed[0].Error, Reason: failed[0].Reason}
		}
		return writeJSON(w, http.StatusCreated, BulkDocsResult{ID: doc.ID, Rev: doc.Rev, OK: true})
	}
	res, err := s.edit(r.Context(), d, []BulkDoc{doc})
	if err != nil {
		return err
	}
	switch res[0].Error {
	case "":
		return writeJSON(w, http.StatusCreated, res[0])
	case "conflict":
		return Conflict()
	case "not_found":
		return NotFound(ReasonMissing)
	default:
		return &Error{Status: http.StatusBadRequest, Code: res[0].Error, Reason: res[0].Reason}
	}
}

func (s *Server) allDocs(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := node.MaxListLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return BadRequest("limit must be a non-negative integer")
		}
		limit = min(n, node.MaxListLimit)
	}
	type row struct {
		ID    string            `json:"id"`
		Key   string            `json:"key"`
		Value map[string]string `json:"value"`
		Doc   map[string]any    `json:"doc,omitempty"`
	}
	rows := []row{}
	if limit > 0 {
		var ids []string
		o := node.ListOptions{Limit: limit}
		if sk := q.Get("startkey"); sk != "" {
			var k string
			if err := json.Unmarshal([]byte(sk), &k); err != nil {
				return BadRequest("startkey must be a JSON string")
			}
			// CouchDB's startkey includes k; List's StartAfter does not.
			o.StartAfter = k
			if doc, err := d.Get(r.Context(), k); err == nil && !doc.Deleted {
				ids = append(ids, k)
				o.Limit--
			}
		}
		if o.Limit > 0 {
			list, err := d.List(r.Context(), o)
			if err != nil {
				return err
			}
			for _, e := range list {
				ids = append(ids, e.ID)
			}
		}
		unlock := s.lock(d.Name())
		views, err := s.present(r.Context(), d, ids)
		unlock()
		if err != nil {
			return err
		}
		for _, id := range ids {
			v := views[id]
			rw := row{ID: id, Key: id, Value: map[string]string{"rev": v.rec.rev()}}
			if boolParam(r, "include_docs") {
				rw.Doc = v.body(false)
			}
			rows = append(rows, rw)
		}
	}
	info, err := d.Info(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"total_rows": info.DocCount, "offset": 0, "rows": rows})
}

func boolParam(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "true" || v == "1"
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// localDocs: _local/{id}, a replicator's checkpoints. They are kept on
// this node only (local records, never replicated), with CouchDB's
// "0-N" revisions.

func (s *Server) getLocal(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	v, err := d.GetLocal(localPrefix + r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(v)
	return nil
}

func (s *Server) putLocal(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	doc, err := DecodeLocalDoc(r.Body, min(s.cfg.MaxBodyBytes, node.MaxLocalValueBytes/2))
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	defer s.lock(d.Name())()
	rev, err := s.writeLocal(r.Context(), d, id, doc.Rev, doc.Body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, BulkDocsResult{ID: "_local/" + id, Rev: rev, OK: true})
}

// writeLocal stores _local/id with body (no "_" members) if rev is its
// current revision (none for a new one), else it is a Conflict. It
// returns the new revision. The caller holds the database's lock.
func (s *Server) writeLocal(ctx context.Context, d *node.DB, id, rev string, body map[string]any) (string, error) {
	n, err := s.localRev(d, id, rev)
	if err != nil {
		return "", err
	}
	out := make(map[string]any, len(body)+2)
	maps.Copy(out, body)
	next := fmt.Sprintf("0-%d", n+1)
	out["_id"], out["_rev"] = "_local/"+id, next
	enc, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	if err := d.PutLocal(ctx, map[string][]byte{localPrefix + id: enc}, nil); err != nil {
		return "", err
	}
	return next, nil
}

func (s *Server) deleteLocal(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	defer s.lock(d.Name())()
	if _, err := d.GetLocal(localPrefix + id); err != nil {
		return err
	}
	if _, err := s.localRev(d, id, r.URL.Query().Get("rev")); err != nil {
		return err
	}
	if err := d.PutLocal(r.Context(), nil, []string{localPrefix + id}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, BulkDocsResult{ID: "_local/" + id, Rev: "0-0", OK: true})
}

// localRev checks that rev is the current revision of _local/id (none
// for a new one) and returns its number.
func (s *Server) localRev(d *node.DB, id, rev string) (uint64, error) {
	v, err := d.GetLocal(localPrefix + id)
	if errors.Is(err, node.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var cur struct {
		Rev string `json:"_rev"`
	}
	if err := json.Unmarshal(v, &cur); err != nil {
		return 0, fmt.Errorf("_local/%s: %w", id, err)
	}
	if rev != cur.Rev {
		return 0, Conflict()
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(cur.Rev, "0-"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("_local/%s: revision %q", id, cur.Rev)
	}
	return n, nil
}
