package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/barrel-db/barrel/node"
)

// Export streaming: the answer is flushed every exportFlushBytes, and a
// client that takes longer than exportWriteTimeout to take one flush is cut
// off, so a stalled reader does not pin the store snapshot for ever.
const exportFlushBytes = 64 << 10

var exportWriteTimeout = time.Minute // a variable so tests can shorten it

// exportEnd is the last line of an export, {"_export_end": ...}. A stream
// without it was cut short.
type exportEnd struct {
	Docs   int64  `json:"docs"`            // documents written
	Failed int64  `json:"failed"`          // documents that could not be read
	Seq    uint64 `json:"seq"`             // the database's update_seq as of the snapshot
	Error  string `json:"error,omitempty"` // why the export stopped early, if it did
}

// exportError is the line written for a document that cannot be read,
// {"_export_error": ...}; the export goes on.
type exportError struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// handleExport streams every live document of the database as NDJSON, read
// from one store snapshot: each line is a document, `{"_id":ID,` then its
// body fields in key order (no _rev, so the output imports as it is), a
// line {"_export_error":{"id","reason"}} for a document that cannot be
// read, and a last line {"_export_end":{"docs","failed","seq","error"}}.
// Document lines, and only they, start with {"_id":. The headers
// X-Barrel-Doc-Count and X-Barrel-Update-Seq give the snapshot's document
// count and sequence number before the first line. ?prefix=P exports only
// the documents whose id starts with P; ?rev=true adds "_rev" after "_id".
func (s *server) handleExport(w http.ResponseWriter, r *http.Request) error {
	withRev, err := boolParam(r, "rev")
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	e, err := d.Export(ctx, r.URL.Query().Get("prefix"))
	if err != nil {
		return err
	}
	defer e.Close()
	start := time.Now()
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Barrel-Doc-Count", strconv.FormatInt(e.DocCount(), 10))
	h.Set("X-Barrel-Update-Seq", strconv.FormatUint(e.Seq(), 10))
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	// net/http clears the write deadline set here once the response is
	// finished, so it does not outlive the request on a kept-alive
	// connection (TestExportDeadlineCleared).
	bw := bufio.NewWriterSize(w, exportFlushBytes+exportFlushBytes/4)
	flush := func() error {
		if err := rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	var line, body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	end := exportEnd{Seq: e.Seq()}
	for {
		doc, ok := e.Next(ctx)
		if !ok {
			break
		}
		line.Reset()
		if doc.Err != nil {
			end.Failed++
			s.log.LogAttrs(ctx, slog.LevelDebug, "export: unreadable document",
				slog.String("db", d.Name()), slog.String("doc_id", doc.ID), slog.Any("err", doc.Err))
			if err := appendLine(&line, map[string]exportError{"_export_error": {ID: doc.ID, Reason: doc.Err.Error()}}); err != nil {
				return nil // cannot happen for strings
			}
		} else if err := appendDoc(&line, &body, enc, doc, withRev); err != nil {
			end.Failed++
			line.Reset()
			_ = appendLine(&line, map[string]exportError{"_export_error": {ID: doc.ID, Reason: err.Error()}})
		} else {
			end.Docs++
		}
		if _, err := bw.Write(line.Bytes()); err != nil {
			return nil // the client went away
		}
		if bw.Buffered() >= exportFlushBytes {
			if err := flush(); err != nil {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil // the client went away
	}
	if err := e.Err(); err != nil {
		end.Error = err.Error()
		s.log.LogAttrs(ctx, slog.LevelWarn, "export stopped early", slog.String("db", d.Name()),
			slog.Int64("docs", end.Docs), slog.Any("err", err))
	}
	if end.Failed > 0 {
		s.log.LogAttrs(ctx, slog.LevelError, "export found unreadable documents", slog.String("db", d.Name()),
			slog.Int64("failed", end.Failed), slog.Int64("docs", end.Docs))
	}
	line.Reset()
	_ = appendLine(&line, map[string]exportEnd{"_export_end": end})
	if _, err := bw.Write(line.Bytes()); err == nil {
		_ = flush()
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "export done", slog.String("db", d.Name()),
		slog.Int64("docs", end.Docs), slog.Int64("failed", end.Failed), slog.Uint64("seq", end.Seq),
		slog.Duration("dur", time.Since(start)))
	return nil
}

// appendDoc appends the export line of doc: {"_id":ID, with rev
// "_rev":REV, then the body's fields as encoding/json orders them (by key),
// then }.
func appendDoc(line, body *bytes.Buffer, enc *json.Encoder, doc node.ExportDoc, withRev bool) error {
	body.Reset()
	if err := enc.Encode(doc.ID); err != nil {
		return err
	}
	line.WriteString(`{"_id":`)
	line.Write(bytes.TrimSuffix(body.Bytes(), []byte("\n")))
	if withRev {
		line.WriteString(`,"_rev":"`)
		line.WriteString(doc.Rev) // hex digits
		line.WriteByte('"')
	}
	body.Reset()
	if err := enc.Encode(doc.Body); err != nil {
		return err
	}
	// body is {...}\n, or null\n for a nil body.
	if inner := bytes.TrimSuffix(body.Bytes(), []byte("\n")); len(inner) > 2 && inner[0] == '{' {
		line.WriteByte(',')
		line.Write(inner[1 : len(inner)-1])
	}
	line.WriteString("}\n")
	return nil
}

// appendLine appends v as one line of compact JSON.
func appendLine(line *bytes.Buffer, v any) error {
	enc := json.NewEncoder(line)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
