package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/barrel-db/barrel/node"
)

// Live queries over HTTP: POST /dbs/{db}/query with "live": true answers
// an event stream (text/event-stream) of the subscription's events, and
// the WebSocket endpoint (ws.go) carries the same events as messages.

// liveFromBody takes the live-query fields out of a query body: live,
// since (the seq to resume from) and buffer (events held for a slow
// reader). live false leaves the body an ordinary query.
func liveFromBody(m map[string]any) (live bool, since uint64, buffer int, err error) {
	if v, ok := m["live"]; ok {
		b, ok := v.(bool)
		if !ok {
			return false, 0, 0, badRequest("live must be a boolean")
		}
		live = b
		delete(m, "live")
	}
	for _, k := range []string{"since", "buffer"} {
		v, ok := m[k]
		if !ok {
			continue
		}
		if !live {
			return false, 0, 0, badRequest(k + " applies to a live query only (\"live\": true)")
		}
		n, ok := v.(int64)
		hi := int64(math.MaxInt64)
		if k == "buffer" {
			hi = node.MaxLiveBuffer
		}
		if !ok || n < 0 || n > hi {
			return false, 0, 0, badRequest(fmt.Sprintf("%s must be an integer in [0, %d]", k, hi))
		}
		if k == "since" {
			since = uint64(n)
		} else {
			buffer = int(n)
		}
		delete(m, k)
	}
	return live, since, buffer, nil
}

// liveEvent is the JSON of one live-query event: a document's (rendered
// as GET renders it) for added and changed, its id and revision for
// removed, the seq alone for current.
type liveEvent struct {
	Type    string         `json:"type"`
	Sub     string         `json:"sub,omitempty"` // the subscription, on a WebSocket
	Seq     uint64         `json:"seq"`
	Doc     map[string]any `json:"doc,omitempty"`
	ID      string         `json:"id,omitempty"`
	Rev     string         `json:"rev,omitempty"`
	Deleted bool           `json:"deleted,omitempty"`
}

func newLiveEvent(e node.Event) liveEvent {
	out := liveEvent{Type: e.Kind.String(), Seq: e.Seq}
	switch e.Kind {
	case node.EventAdded, node.EventChanged:
		out.Doc = renderDoc(e.Doc, true, nil)
	case node.EventRemoved:
		out.ID, out.Rev, out.Deleted = e.Doc.ID, e.Doc.Rev, e.Doc.Deleted
	}
	return out
}

// liveEnd is the JSON of a subscription's end: the error code and reason
// errorStatus gives, and for a reader that fell behind the seq to resume
// from.
type liveEnd struct {
	Type   string `json:"type"` // "error"
	Sub    string `json:"sub,omitempty"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Seq    uint64 `json:"seq,omitempty"`
}

func newLiveEnd(err error) liveEnd {
	_, code, reason, internal := errorStatus(err)
	switch {
	case errors.Is(err, node.ErrClosed): // The database was dropped or the node is stopping.
		code, reason = "closed", err.Error()
	case internal:
		reason = "the subscription stopped: " + err.Error()
	}
	out := liveEnd{Type: "error", Error: code, Reason: reason}
	var lag *node.LaggingError
	if errors.As(err, &lag) {
		out.Seq = lag.Seq
	}
	return out
}

// streamLive serves a live query as server-sent events: "event: TYPE" and
// "data: JSON" per event, "id: SEQ" on current events (a point to resume
// from, also taken from Last-Event-ID), a comment line every SSEHeartbeat
// while idle, and a last "event: error" when the subscription ends (for a
// reader that fell behind, with the seq to resume from).
func (s *server) streamLive(w http.ResponseWriter, r *http.Request, d *node.DB, q node.LiveQuery) error {
	if id := r.Header.Get("Last-Event-ID"); id != "" && q.Since == 0 {
		if n, err := strconv.ParseUint(id, 10, 64); err == nil {
			q.Since = n
		}
	}
	ctx := r.Context()
	sub, err := d.Subscribe(ctx, q)
	if err != nil {
		return fmt.Errorf("live query: %w", err)
	}
	defer sub.Close()
	rc, err := startEventStream(w)
	if err != nil {
		return nil
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.SSEHeartbeat)
		e, err := sub.Next(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
		case err != nil:
			data, _ := json.Marshal(newLiveEnd(err))
			if _, err := fmt.Fprintf(w, "event: error\ndata: %s\n\n", data); err == nil {
				_ = rc.Flush() // The stream ends either way.
			}
			return nil
		default:
			data, err := json.Marshal(newLiveEvent(e))
			if err != nil { // A document always marshals; say so rather than stop silently.
				s.log.ErrorContext(ctx, "live query event does not marshal", "db", d.Name(), "doc_id", e.Doc.ID, "err", err)
				return nil
			}
			if e.Kind == node.EventCurrent {
				_, err = fmt.Fprintf(w, "event: current\nid: %d\ndata: %s\n\n", e.Seq, data)
			} else {
				_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, data)
			}
			if err != nil {
				return nil
			}
			if sub.Pending() > 0 {
				continue // Flush once the queue is drained.
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}
