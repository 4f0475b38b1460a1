package couch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/barrel-db/barrel/node"
)

// changesQuery is a _changes request's parameters.
type changesQuery struct {
	since     uint64
	limit     int // 0: no limit
	allDocs   bool
	docs      bool
	feed      string
	timeout   time.Duration
	heartbeat time.Duration
	docIDs    map[string]bool // filter=_doc_ids; nil: every document
	sel       selector        // filter=_selector; nil: every document
}

// Bounds of a feed's waits.
const (
	defaultTimeout = 60 * time.Second
	maxTimeout     = 10 * time.Minute
	minHeartbeat   = 100 * time.Millisecond
)

func (s *Server) parseChanges(r *http.Request, d *node.DB) (changesQuery, error) {
	q := r.URL.Query()
	c := changesQuery{allDocs: q.Get("style") == "all_docs", docs: boolParam(r, "include_docs"),
		feed: q.Get("feed"), timeout: defaultTimeout}
	switch c.feed {
	case "", "normal":
		c.feed = "normal"
	case "longpoll", "continuous", "eventsource":
	default:
		return c, BadRequest(fmt.Sprintf("feed %s: want normal, longpoll, continuous or eventsource", quoteShort(c.feed)))
	}
	if since := q.Get("since"); since == "now" {
		info, err := d.Info(r.Context())
		if err != nil {
			return c, err
		}
		c.since = info.UpdateSeq
	} else if n, err := parseSeq(since); err != nil {
		return c, err
	} else {
		c.since = n
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return c, BadRequest("limit must be a non-negative integer")
		}
		c.limit = n
	}
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return c, BadRequest("timeout must be milliseconds")
		}
		c.timeout = min(time.Duration(ms)*time.Millisecond, maxTimeout)
	}
	switch hb := q.Get("heartbeat"); hb {
	case "", "false":
	case "true":
		c.heartbeat = defaultTimeout / 2
	default:
		ms, err := strconv.ParseInt(hb, 10, 64)
		if err != nil || ms < 0 {
			return c, BadRequest("heartbeat must be milliseconds")
		}
		c.heartbeat = max(time.Duration(ms)*time.Millisecond, minHeartbeat)
	}
	f := q.Get("filter")
	if f == "" {
		return c, nil
	}
	body, err := filterBody(r)
	if err != nil {
		return c, err
	}
	switch f {
	case "_doc_ids":
		ids := body.DocIDs
		if v := q.Get("doc_ids"); v != "" {
			if err := json.Unmarshal([]byte(v), &ids); err != nil {
				return c, BadRequest("doc_ids must be a JSON list of strings")
			}
		}
		if ids == nil {
			return c, BadRequest("filter _doc_ids needs doc_ids")
		}
		c.docIDs = map[string]bool{}
		for _, id := range ids {
			c.docIDs[id] = true
		}
	case "_selector":
		raw := body.Selector
		if v := q.Get("selector"); v != "" {
			raw = json.RawMessage(v)
		}
		if raw == nil {
			return c, BadRequest("filter _selector needs a selector")
		}
		if c.sel, err = parseSelector(raw); err != nil {
			return c, err
		}
	default:
		return c, BadRequest(fmt.Sprintf("filter %s is not supported: use _doc_ids or _selector", quoteShort(f)))
	}
	return c, nil
}

// filterBody is a POST _changes body: {"doc_ids": [...]} or
// {"selector": {...}}.
type changesBody struct {
	DocIDs   []string        `json:"doc_ids"`
	Selector json.RawMessage `json:"selector"`
}

func filterBody(r *http.Request) (changesBody, error) {
	var body changesBody
	if r.Method != http.MethodPost {
		return body, nil
	}
	b, err := readBody(r.Body, 16<<20)
	if err != nil {
		return body, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			return body, BadRequest("body must be {\"doc_ids\": [...]} or {\"selector\": {...}}")
		}
	}
	return body, nil
}

// scan returns the rows after since, at most limit (0: a page of
// node.MaxListLimit feed entries), and the seq to resume from. A document
// is listed once, at its latest feed entry, with its revision as clients
// are shown it (present).
func (s *Server) scan(ctx context.Context, d *node.DB, c changesQuery, since uint64) ([]ChangesRow, uint64, error) {
	var rows []ChangesRow
	last := since
	page := node.MaxListLimit
	if c.limit > 0 {
		page = min(c.limit, page) // read no more of the feed than a page needs
	}
	for {
		entries, _, err := d.Changes(ctx, last, page)
		if err != nil {
			return nil, 0, err
		}
		if len(entries) == 0 {
			return rows, last, nil
		}
		var ids []string
		for _, e := range entries {
			if c.docIDs == nil || c.docIDs[e.ID] {
				ids = append(ids, e.ID)
			}
		}
		unlock := s.lock(d.Name())
		views, err := s.present(ctx, d, ids)
		unlock()
		if err != nil {
			return nil, 0, err
		}
		for _, e := range entries {
			last = e.Seq
			v, ok := views[e.ID]
			if !ok || !v.exists || v.doc.Seq != e.Seq {
				continue // filtered out, purged, or listed again at a later entry
			}
			if c.sel != nil && !c.sel(v.body(false)) {
				continue
			}
			row := ChangesRow{Seq: formatSeq(e.Seq), ID: e.ID, Deleted: v.rec.Deleted}
			revs := []string{v.rec.rev()}
			if c.allDocs {
				revs = v.rec.leaves()
			}
			for _, rv := range revs {
				row.Changes = append(row.Changes, ChangeRev{Rev: rv})
			}
			if c.docs {
				row.Doc = v.body(false)
			}
			rows = append(rows, row)
			if c.limit > 0 && len(rows) >= c.limit {
				return rows, last, nil
			}
		}
		if c.limit == 0 && len(rows) > 0 {
			return rows, last, nil // one page: the client asks again from last
		}
	}
}

func (s *Server) changes(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	c, err := s.parseChanges(r, d)
	if err != nil {
		return err
	}
	ctx := r.Context()
	switch c.feed {
	case "continuous", "eventsource":
		return s.stream(w, r, d, c)
	}
	rows, last, err := s.scan(ctx, d, c, c.since)
	if err != nil {
		return err
	}
	if c.feed == "longpoll" && len(rows) == 0 {
		// Wait for a change, sending the heartbeat newlines CouchDB sends.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		wctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		if err := s.wait(wctx, w, d, last, c.heartbeat); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil // the client went away or the database closed: the answer is cut
		}
		if rows, last, err = s.scan(ctx, d, c, last); err != nil {
			s.log.Warn("couch longpoll", "db", d.Name(), "err", err)
			return nil
		}
		b, _ := json.Marshal(s.result(ctx, d, rows, last))
		_, _ = w.Write(append(b, '\n'))
		return nil
	}
	return writeJSON(w, http.StatusOK, s.result(ctx, d, rows, last))
}

func (s *Server) result(ctx context.Context, d *node.DB, rows []ChangesRow, last uint64) ChangesResult {
	if rows == nil {
		rows = []ChangesRow{}
	}
	res := ChangesResult{Results: rows, LastSeq: formatSeq(last)}
	if info, err := d.Info(ctx); err == nil && info.UpdateSeq > last {
		res.Pending = int64(info.UpdateSeq - last) // feed entries after last, an upper bound of the documents
	}
	return res
}

// wait blocks until the database's feed passes since or ctx ends,
// writing a newline every heartbeat (0: none).
func (s *Server) wait(ctx context.Context, w http.ResponseWriter, d *node.DB, since uint64, heartbeat time.Duration) error {
	if heartbeat == 0 {
		return d.WaitChanges(ctx, since)
	}
	rc := http.NewResponseController(w)
	for {
		hctx, cancel := context.WithTimeout(ctx, heartbeat)
		err := d.WaitChanges(hctx, since)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if _, err := w.Write([]byte("\n")); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
	}
}

// stream serves feed=continuous (one JSON row per line) and
// feed=eventsource (server-sent events), until timeout passes with no
// change, the limit is reached or the client goes away.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, d *node.DB, c changesQuery) error {
	ctx := r.Context()
	sse := c.feed == "eventsource"
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	last, sent := c.since, 0
	for {
		rows, next, err := s.scan(ctx, d, c, last)
		if err != nil {
			return nil // the stream has begun: it ends here
		}
		last = next
		for _, row := range rows {
			b, _ := json.Marshal(row)
			if sse {
				b = []byte(fmt.Sprintf("data: %s\nid: %s\n\n", b, row.Seq))
			} else {
				b = append(b, '\n')
			}
			if _, err := w.Write(b); err != nil {
				return nil
			}
			sent++
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if c.limit > 0 && sent >= c.limit {
			break
		}
		wctx, cancel := context.WithTimeout(ctx, c.timeout)
		err = s.wait(wctx, w, d, last, c.heartbeat)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				return nil
			}
			break // timeout with no change
		}
	}
	if !sse {
		b, _ := json.Marshal(map[string]string{"last_seq": formatSeq(last)})
		_, _ = w.Write(append(b, '\n'))
	}
	return nil
}
