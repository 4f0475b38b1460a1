package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/barrel-db/barrel/node"
)

// Changes feed limits. The maximum is the node's (Changes refuses more).
const (
	defaultChangesLimit = 1000
	maxChangesLimit     = node.MaxListLimit
)

// changesPage is the answer of a normal or longpoll changes request.
type changesPage struct {
	Results []Change `json:"results"`
	LastSeq uint64   `json:"last_seq"`
}

// newChangesPage builds the answer; last_seq is the sequence a client
// passes as since to continue: the last result's, or since when there is
// nothing new (never behind since).
func newChangesPage(cs []node.Change, since, nodeLast uint64) changesPage {
	results := make([]Change, len(cs))
	for i, c := range cs {
		results[i] = newChange(c)
	}
	last := since
	if len(cs) > 0 {
		last = cs[len(cs)-1].Seq
	} else if nodeLast > last {
		last = nodeLast
	}
	return changesPage{Results: results, LastSeq: last}
}

func (s *server) handleChanges(w http.ResponseWriter, r *http.Request) error {
	since, err := intParam(r, "since", 0, 0, math.MaxInt64)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", defaultChangesLimit, 1, maxChangesLimit)
	if err != nil {
		return err
	}
	timeoutMS, err := intParam(r, "timeout", s.cfg.LongpollTimeout.Milliseconds(), 0, math.MaxInt64/int64(time.Millisecond))
	if err != nil {
		return err
	}
	feed := r.URL.Query().Get("feed")
	switch feed {
	case "", "normal", "longpoll", "sse":
	default:
		return badRequest("feed must be normal, longpoll or sse")
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	if feed == "sse" {
		if id := r.Header.Get("Last-Event-ID"); id != "" && r.URL.Query().Get("since") == "" {
			if n, err := strconv.ParseUint(id, 10, 64); err == nil {
				since = int64(n)
			}
		}
		return s.streamChanges(w, r, d, uint64(since), int(limit))
	}
	cs, last, err := d.Changes(r.Context(), uint64(since), int(limit))
	if err != nil {
		return fmt.Errorf("changes since %d: %w", since, err)
	}
	if feed == "longpoll" && len(cs) == 0 {
		timeout := min(time.Duration(timeoutMS)*time.Millisecond, s.cfg.LongpollTimeout)
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		err := d.WaitChanges(ctx, uint64(since))
		cancel()
		switch {
		case err == nil:
			cs, last, err = d.Changes(r.Context(), uint64(since), int(limit))
			if err != nil {
				return fmt.Errorf("changes since %d: %w", since, err)
			}
		case ctx.Err() != nil && r.Context().Err() == nil:
			// The wait timed out: answer with no changes.
		default:
			return fmt.Errorf("wait for changes since %d: %w", since, err)
		}
	}
	writeJSON(w, http.StatusOK, newChangesPage(cs, uint64(since), last))
	return nil
}

// streamChanges serves feed=sse: every change after since as an event
// (id: SEQ, data: JSON change), flushed one by one, and a comment line every
// SSEHeartbeat while idle, until the client goes away or the server shuts
// down. It returns an error only when the first read of the feed fails,
// before anything is written; sendChanges, which writes the stream, cannot.
func (s *server) streamChanges(w http.ResponseWriter, r *http.Request, d *node.DB, since uint64, limit int) error {
	// Check the database once before committing to a 200 stream.
	cs, _, err := d.Changes(r.Context(), since, limit)
	if err != nil {
		return fmt.Errorf("changes since %d: %w", since, err)
	}
	s.sendChanges(w, r, d, since, cs, limit)
	return nil
}

// sendChanges writes the event stream, starting with cs, the first page
// after since. It returns nothing on purpose: once the 200 and the
// event-stream headers are sent no error status can follow, so a failure is
// logged (or, when the client left, ignored) and ends the stream.
func (s *server) sendChanges(w http.ResponseWriter, r *http.Request, d *node.DB, since uint64, cs []node.Change, limit int) {
	ctx := r.Context()
	rc, err := startEventStream(w)
	if err != nil {
		return
	}
	for {
		for _, c := range cs {
			data, _ := json.Marshal(newChange(c)) // a Change always marshals
			if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", c.Seq, data); err != nil {
				return
			}
			since = c.Seq
		}
		if len(cs) > 0 {
			if err := rc.Flush(); err != nil {
				return
			}
		}
		if len(cs) < limit {
			wctx, cancel := context.WithTimeout(ctx, s.cfg.SSEHeartbeat)
			err := d.WaitChanges(wctx, since)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) && wctx.Err() == nil {
					s.log.WarnContext(ctx, "changes stream stopped", "db", r.PathValue("db"), "seq", since, "err", err)
					return
				}
				if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
				cs = nil
				continue
			}
		}
		next, _, err := d.Changes(ctx, since, limit)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "changes stream stopped", "db", r.PathValue("db"), "seq", since, "err", err)
			}
			return
		}
		cs = next
	}
}

// startEventStream sends the 200 and the headers of a server-sent event
// stream (no caching, no proxy buffering) and flushes them; every stream
// of the API (changes, live queries, replication state) opens with it.
func startEventStream(w http.ResponseWriter) (*http.ResponseController, error) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return rc, rc.Flush()
}
