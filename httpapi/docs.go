package httpapi

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/barrel-db/barrel/node"
)

// Listing limits for GET /dbs/{db}/docs. They are the node's: a bound of
// its own here could only disagree with the one List enforces.
const (
	defaultListLimit = node.DefaultListLimit
	maxListLimit     = node.MaxListLimit
)

// putBody splits a PUT body into the document body and its base revision.
// "_id" must equal id when present, "_rev" must be a string and agree with
// the ?rev= parameter; any other reserved field is rejected.
func putBody(id, qrev string, m map[string]any) (map[string]any, string, error) {
	rev := qrev
	body := make(map[string]any, len(m))
	for k, v := range m {
		switch {
		case k == "_id":
			if s, ok := v.(string); !ok || s != id {
				return nil, "", badRequest(fmt.Sprintf("_id %v does not match the URL id %q", v, id))
			}
		case k == "_rev":
			s, ok := v.(string)
			if !ok {
				return nil, "", badRequest("_rev must be a string")
			}
			if qrev != "" && s != qrev {
				return nil, "", badRequest("_rev in the body differs from the rev parameter")
			}
			rev = s
		case strings.HasPrefix(k, "_"):
			return nil, "", badRequest(fmt.Sprintf("field %q is reserved", k))
		default:
			body[k] = v
		}
	}
	return body, rev, nil
}

func (s *server) handlePut(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	body, rev, err := putBody(id, r.URL.Query().Get("rev"), m)
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	res, err := d.Put(r.Context(), id, body, rev)
	if err != nil {
		return fmt.Errorf("put %q: %w", id, err)
	}
	writeJSON(w, http.StatusCreated, newResult(res))
	return nil
}

// renderDoc returns the JSON shape of a document: its body fields plus _id
// and _rev, and _conflicts / _revs when asked for (revs must be non-nil
// then).
func renderDoc(doc node.Document, conflicts bool, revs []string) map[string]any {
	out := make(map[string]any, len(doc.Body)+4)
	for k, v := range doc.Body {
		out[k] = v
	}
	out["_id"] = doc.ID
	out["_rev"] = doc.Rev
	if conflicts {
		c := newConflicts(doc.Conflicts)
		if c == nil {
			c = []Conflict{}
		}
		out["_conflicts"] = c
	}
	if revs != nil {
		out["_revs"] = revs
	}
	return out
}

// historyRevs returns the revisions of h newest first (by local sequence).
func historyRevs(h []node.Revision) []string {
	h = append([]node.Revision(nil), h...)
	sort.SliceStable(h, func(i, j int) bool { return h[i].Seq > h[j].Seq })
	revs := make([]string, len(h))
	for i, rv := range h {
		revs[i] = rv.Rev
	}
	return revs
}

func (s *server) handleGet(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	conflicts, err := boolParam(r, "conflicts")
	if err != nil {
		return err
	}
	withRevs, err := boolParam(r, "revs")
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	doc, err := d.Get(r.Context(), id)
	if err != nil {
		return fmt.Errorf("get %q: %w", id, err)
	}
	if doc.Deleted {
		return errDeleted
	}
	var revs []string
	if withRevs {
		h, err := d.History(r.Context(), id)
		if err != nil {
			return fmt.Errorf("history of %q: %w", id, err)
		}
		revs = historyRevs(h)
	}
	writeJSON(w, http.StatusOK, renderDoc(doc, conflicts, revs))
	return nil
}

func (s *server) handleGetPath(w http.ResponseWriter, r *http.Request) error {
	id, path := r.PathValue("id"), r.PathValue("path")
	if path == "" {
		return s.handleGet(w, r)
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	v, err := d.GetPath(r.Context(), id, "/"+path)
	if err != nil {
		return fmt.Errorf("get %q path /%s: %w", id, path, err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// patchFromBody converts a PATCH body to a node.Patch. Reserved keys are
// "_rev" (base revision), "_incr" ({"/path": number}), "_add" and "_remove"
// ({"/path": [elements]}); "_id" is accepted when it equals id. Everything
// else is the JSON merge patch.
func patchFromBody(id, qrev string, m map[string]any) (node.Patch, error) {
	p := node.Patch{Merge: map[string]any{}, Rev: qrev}
	for k, v := range m {
		switch k {
		case "_id":
			if s, ok := v.(string); !ok || s != id {
				return node.Patch{}, badRequest(fmt.Sprintf("_id %v does not match the URL id %q", v, id))
			}
		case "_rev":
			s, ok := v.(string)
			if !ok {
				return node.Patch{}, badRequest("_rev must be a string")
			}
			if qrev != "" && s != qrev {
				return node.Patch{}, badRequest("_rev in the body differs from the rev parameter")
			}
			p.Rev = s
		case "_incr":
			obj, ok := v.(map[string]any)
			if !ok {
				return node.Patch{}, badRequest(`_incr must be an object {"/path": number}`)
			}
			p.Incr = make(map[string]any, len(obj))
			for path, d := range obj {
				switch d.(type) {
				case int64, float64:
				default:
					return node.Patch{}, badRequest(fmt.Sprintf("_incr %q: delta must be a number", path))
				}
				p.Incr[path] = d
			}
		case "_add", "_remove":
			sets, err := setOps(k, v)
			if err != nil {
				return node.Patch{}, err
			}
			if k == "_add" {
				p.Add = sets
			} else {
				p.Remove = sets
			}
		default:
			if strings.HasPrefix(k, "_") {
				return node.Patch{}, badRequest(fmt.Sprintf("field %q is reserved", k))
			}
			p.Merge[k] = v
		}
	}
	return p, nil
}

func setOps(key string, v any) (map[string][]any, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest(fmt.Sprintf(`%s must be an object {"/path": [elements]}`, key))
	}
	out := make(map[string][]any, len(obj))
	for path, elems := range obj {
		a, ok := elems.([]any)
		if !ok {
			return nil, badRequest(fmt.Sprintf("%s %q: elements must be an array", key, path))
		}
		out[path] = a
	}
	return out, nil
}

func (s *server) handlePatch(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	p, err := patchFromBody(id, r.URL.Query().Get("rev"), m)
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	res, err := d.Patch(r.Context(), id, p)
	if err != nil {
		return fmt.Errorf("patch %q: %w", id, err)
	}
	writeJSON(w, http.StatusOK, newResult(res))
	return nil
}

func (s *server) handleDelete(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	d, err := s.db(r)
	if err != nil {
		return err
	}
	res, err := d.Delete(r.Context(), id, r.URL.Query().Get("rev"))
	if err != nil {
		return fmt.Errorf("delete %q: %w", id, err)
	}
	writeJSON(w, http.StatusOK, newResult(res))
	return nil
}

// listPage is the answer of GET /dbs/{db}/docs.
type listPage struct {
	Docs []DocSummary `json:"docs"`
	Next string       `json:"next,omitempty"`
}

func (s *server) handleListDocs(w http.ResponseWriter, r *http.Request) error {
	limit, err := intParam(r, "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	o := node.ListOptions{Prefix: q.Get("prefix"), StartAfter: q.Get("start_after")}
	// Ask for one more than the page to learn whether a next page exists,
	// but never more than List accepts: a page of maxListLimit learns it
	// from a second List of one row after the page's last id.
	o.Limit = min(int(limit)+1, maxListLimit)
	rows, err := d.List(r.Context(), o)
	if err != nil {
		return fmt.Errorf("list documents: %w", err)
	}
	page := listPage{Docs: newDocSummaries(rows)}
	switch {
	case len(rows) > int(limit):
		page.Docs = page.Docs[:limit]
		page.Next = rows[limit-1].ID
	case len(rows) == int(limit) && o.Limit == int(limit):
		o.StartAfter, o.Limit = rows[limit-1].ID, 1
		more, err := d.List(r.Context(), o)
		if err != nil {
			return fmt.Errorf("list documents: %w", err)
		}
		if len(more) > 0 {
			page.Next = rows[limit-1].ID
		}
	}
	if page.Docs == nil {
		page.Docs = []DocSummary{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
