package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/barrel-db/barrel/node"
)

// queryPattern is the query route (a read, though a POST: isWrite).
const queryPattern = "POST /dbs/{db}/query"

// maxQueryLimit bounds the page size of queries and path lookups.
const maxQueryLimit = 10000

// queryFromBody parses {"where":[{"path","op","value"}], "order_by",
// "desc", "limit", "cursor"}. Unknown fields are rejected.
func queryFromBody(m map[string]any) (node.Query, error) {
	var q node.Query
	for k, v := range m {
		switch k {
		case "where":
			conds, ok := v.([]any)
			if !ok {
				return q, badRequest("where must be an array")
			}
			for i, c := range conds {
				cond, err := condFromJSON(c)
				if err != nil {
					return q, fmt.Errorf("where[%d]: %w", i, err)
				}
				q.Where = append(q.Where, cond)
			}
		case "order_by":
			s, ok := v.(string)
			if !ok {
				return q, badRequest("order_by must be a string")
			}
			q.OrderBy = s
		case "desc":
			b, ok := v.(bool)
			if !ok {
				return q, badRequest("desc must be a boolean")
			}
			q.Desc = b
		case "limit":
			n, ok := v.(int64)
			if !ok || n < 0 || n > maxQueryLimit {
				return q, badRequest(fmt.Sprintf("limit must be an integer in [0, %d]", maxQueryLimit))
			}
			q.Limit = int(n)
		case "cursor":
			s, ok := v.(string)
			if !ok {
				return q, badRequest("cursor must be a string")
			}
			q.Cursor = s
		default:
			return q, badRequest(fmt.Sprintf("unknown field %q", k))
		}
	}
	return q, nil
}

func condFromJSON(v any) (node.Cond, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return node.Cond{}, badRequest("a condition must be an object")
	}
	var c node.Cond
	for k, v := range m {
		switch k {
		case "path", "op":
			s, ok := v.(string)
			if !ok {
				return c, badRequest(k + " must be a string")
			}
			if k == "path" {
				c.Path = s
			} else {
				c.Op = s
			}
		case "value":
			c.Value = v
		default:
			return c, badRequest(fmt.Sprintf("unknown condition field %q", k))
		}
	}
	if c.Path == "" || c.Op == "" {
		return c, badRequest("a condition needs path and op")
	}
	return c, nil
}

// answerFromBody takes "count": true or "ids_only": true out of a query
// body: the answer wanted instead of the documents ("" for documents).
func answerFromBody(m map[string]any, live bool) (string, error) {
	answer := ""
	for _, k := range []string{"count", "ids_only"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		delete(m, k)
		b, ok := v.(bool)
		if !ok {
			return "", badRequest(k + " must be a boolean")
		}
		if !b {
			continue
		}
		if live || answer != "" {
			return "", badRequest("count, ids_only and live are exclusive")
		}
		answer = k
	}
	return answer, nil
}

func (s *server) handleQuery(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	live, since, buffer, err := liveFromBody(m)
	if err != nil {
		return err
	}
	answer, err := answerFromBody(m, live)
	if err != nil {
		return err
	}
	q, err := queryFromBody(m)
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	switch {
	case live:
		return s.streamLive(w, r, d, node.LiveQuery{Query: q, Since: since, Buffer: buffer})
	case answer == "count":
		if q.Limit != 0 || q.Cursor != "" {
			return badRequest("a count takes no limit or cursor: it counts the whole result")
		}
		n, err := d.Count(r.Context(), q)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		writeJSON(w, http.StatusOK, map[string]int64{"count": n})
		return nil
	case answer == "ids_only":
		ids, cursor, err := d.QueryIDs(r.Context(), q)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		if ids == nil {
			ids = []string{}
		}
		writeJSON(w, http.StatusOK, idsPage{IDs: ids, Cursor: cursor})
		return nil
	}
	pw := &pageWriter{w: w}
	cursor, err := d.QueryEach(r.Context(), q, func(doc node.Document) error { return pw.doc(renderDoc(doc, false, nil)) })
	if err != nil && !pw.started {
		return fmt.Errorf("query: %w", err)
	}
	if err != nil {
		// Half the page is out with a 200: cut the connection, so the
		// client sees a broken answer rather than a short one.
		s.log.Warn("query failed while its answer was being written", "db", d.Name(), "err", err)
		panic(http.ErrAbortHandler)
	}
	return pw.finish(cursor)
}

// pageWriter writes the answer of POST /dbs/{db}/query, {"docs":[...],
// "cursor":"..."} (no cursor after the last page), as its documents come,
// one at a time, so a page of 10,000 is never held whole.
type pageWriter struct {
	w       http.ResponseWriter
	started bool
	buf     bytes.Buffer
	enc     *json.Encoder
}

func (p *pageWriter) start() error {
	p.started = true
	p.w.Header().Set("Content-Type", "application/json")
	p.w.Header().Set("X-Content-Type-Options", "nosniff")
	p.w.WriteHeader(http.StatusOK)
	p.enc = json.NewEncoder(&p.buf)
	p.enc.SetEscapeHTML(false)
	_, err := io.WriteString(p.w, `{"docs":[`)
	return err
}

// doc writes one document of the page.
func (p *pageWriter) doc(d map[string]any) error {
	sep := ","
	if !p.started {
		if err := p.start(); err != nil {
			return err
		}
		sep = ""
	}
	p.buf.Reset()
	p.buf.WriteString(sep)
	if err := p.enc.Encode(d); err != nil {
		return err
	}
	_, err := p.w.Write(bytes.TrimSuffix(p.buf.Bytes(), []byte("\n")))
	return err
}

// finish closes the page with its cursor.
func (p *pageWriter) finish(cursor string) error {
	if !p.started {
		if err := p.start(); err != nil {
			return nil // the client went away: nothing left to tell it
		}
	}
	tail := "]"
	if cursor != "" {
		c, _ := json.Marshal(cursor)
		tail += `,"cursor":` + string(c)
	}
	_, _ = io.WriteString(p.w, tail+"}\n")
	return nil
}

// pathValue splits "a/b/VALUE" into the JSON pointer "/a/b" and the value.
// The value is a JSON number, true, false or null when it parses as one,
// else the string itself.
func pathValue(p string) (string, any, error) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 || i == len(p)-1 {
		return "", nil, badRequest("want /paths/{path}/{value}, with a non-empty path and value")
	}
	return "/" + p[:i], literal(p[i+1:]), nil
}

// literal interprets s as a JSON scalar literal when it is one (number,
// true, false, null), else as a string.
func literal(s string) any {
	v, err := decodeBytes([]byte(s))
	if err != nil {
		return s
	}
	switch x := v.(type) {
	case nil, bool, int64:
		return x
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return s
		}
		return x
	default:
		return s
	}
}

// idsPage is the answer of GET /dbs/{db}/paths/....
type idsPage struct {
	IDs    []string `json:"ids"`
	Cursor string   `json:"cursor,omitempty"`
}

func (s *server) handlePaths(w http.ResponseWriter, r *http.Request) error {
	path, value, err := pathValue(r.PathValue("path"))
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 0, 0, maxQueryLimit)
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	ids, cursor, err := d.QueryIDs(r.Context(), node.Query{ // From the index alone: one ==.
		Where:  []node.Cond{{Path: path, Op: "==", Value: value}},
		Limit:  int(limit),
		Cursor: r.URL.Query().Get("cursor"),
	})
	if err != nil {
		return fmt.Errorf("query %s == %v: %w", path, value, err)
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, idsPage{IDs: ids, Cursor: cursor})
	return nil
}
