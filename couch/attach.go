package couch

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/barrel-db/barrel/node"
)

// Attachments through /couch/: a client's inline attachment is stored as
// a barrel blob (content-addressed by sha256) and the document's
// _attachments set to exactly the client's, in the same change as its
// body; a stub names an attachment the document already has. barrel's
// attachments go to a client as stubs, or inline (base64, with CouchDB's
// md5 digest) when it asks with attachments=true.

// maxInlineBytes bounds the attachment content one answer carries inline:
// past it the request fails with 413 (ask for fewer documents at a time).
const maxInlineBytes int64 = 128 << 20

// inline replaces the stubs of doc (the document id as a client sees it)
// with the attachments' content, charging budget.
func (s *Server) inline(ctx context.Context, d *node.DB, id string, doc map[string]any, budget *int64) error {
	atts, _ := doc["_attachments"].(map[string]any)
	for name, a := range atts {
		stub, _ := a.(map[string]any)
		info, rd, err := d.Attachment(ctx, id, name)
		if err != nil {
			return err
		}
		if info.Length > *budget {
			_ = rd.Close()
			return TooLarge(fmt.Sprintf("attachments of this answer pass %d bytes: ask for fewer documents at a time", maxInlineBytes))
		}
		*budget -= info.Length
		var buf bytes.Buffer
		h := md5.New()
		_, err = io.Copy(io.MultiWriter(&buf, h), rd)
		_ = rd.Close()
		if err != nil {
			return fmt.Errorf("read attachment %s of %s: %w", name, id, err)
		}
		atts[name] = map[string]any{"content_type": info.ContentType, "length": info.Length,
			"digest": "md5-" + base64.StdEncoding.EncodeToString(h.Sum(nil)),
			"data":   base64.StdEncoding.EncodeToString(buf.Bytes()), "revpos": stub["revpos"]}
	}
	return nil
}

// attachments turns a written document's _attachments into the set the
// barrel document gets: inline content stored as blobs (its md5 digest
// checked when sent), stubs resolved against the document's current
// attachments. Nil (no _attachments) is the empty set: CouchDB's write of
// a document without them removes them.
func (s *Server) attachments(ctx context.Context, d *node.DB, id string, atts map[string]Attachment) (map[string]node.AttachmentInfo, error) {
	out := make(map[string]node.AttachmentInfo, len(atts))
	var cur map[string]node.AttachmentInfo
	for name, a := range atts {
		if a.Stub {
			if cur == nil {
				var err error
				if cur, err = d.Attachments(ctx, id); err != nil {
					cur = map[string]node.AttachmentInfo{}
				}
			}
			info, ok := cur[name]
			if !ok {
				return nil, MissingStub(fmt.Sprintf("Invalid attachment stub in %s for %s", id, name))
			}
			out[name] = info
			continue
		}
		if want, ok := md5Digest(a.Digest); ok {
			if got := md5.Sum(a.Data); !bytes.Equal(got[:], want) {
				return nil, BadRequest(fmt.Sprintf("attachment %s of %s: content does not match its digest %s", name, id, a.Digest))
			}
		}
		b, err := d.PutBlob(ctx, bytes.NewReader(a.Data), "")
		if err != nil {
			return nil, err
		}
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[name] = node.AttachmentInfo{Name: name, ContentType: ct, Length: b.Length, Digest: b.Digest}
	}
	return out, nil
}

// md5Digest parses CouchDB's "md5-<base64>" digest; ok is false for any
// other (a sha256 stub digest this server gave, or none).
func md5Digest(s string) ([]byte, bool) {
	const p = "md5-"
	if len(s) <= len(p) || s[:len(p)] != p {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s[len(p):])
	if err != nil || len(b) != md5.Size {
		return nil, false
	}
	return b, true
}

// getAttachment is GET /{db}/{id}/{att}: the content as stored (the
// current revision's: barrel keeps no older ones).
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	info, rd, err := d.Attachment(r.Context(), r.PathValue("id"), r.PathValue("att"))
	if err != nil {
		return err
	}
	defer rd.Close()
	w.Header().Set("Content-Type", info.ContentType)
	http.ServeContent(w, r, "", time.Time{}, rd)
	return nil
}

// putAttachment is PUT /{db}/{id}/{att}?rev=: a new edit of the document
// that sets one attachment (the body is its content, streamed).
func (s *Server) putAttachment(w http.ResponseWriter, r *http.Request) error {
	return s.editAttachment(w, r, false)
}

func (s *Server) deleteAttachment(w http.ResponseWriter, r *http.Request) error {
	return s.editAttachment(w, r, true)
}

func (s *Server) editAttachment(w http.ResponseWriter, r *http.Request, del bool) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	if err := s.mayWrite(d); err != nil {
		return err
	}
	id, name := r.PathValue("id"), r.PathValue("att")
	defer s.lock(d.Name())()
	views, err := s.present(r.Context(), d, []string{id})
	if err != nil {
		return err
	}
	v := views[id]
	rev := r.URL.Query().Get("rev")
	if rev == "" {
		rev = r.Header.Get("If-Match")
	}
	switch {
	case v.rec != nil && !v.rec.Deleted && rev != v.rec.rev():
		return Conflict()
	case (v.rec == nil || v.rec.Deleted) && del:
		return NotFound(ReasonMissing)
	}
	// The base: the document as shown at its current revision.
	base := ""
	if v.exists {
		base = v.doc.Rev
	}
	if del {
		_, err = d.DeleteAttachment(r.Context(), id, name, base)
	} else {
		ct := r.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		_, err = d.PutAttachment(r.Context(), id, name, ct, r.Body, base)
	}
	if err != nil {
		return err
	}
	now, err := s.present(r.Context(), d, []string{id})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if del {
		status = http.StatusOK
	}
	return writeJSON(w, status, BulkDocsResult{ID: id, Rev: now[id].rec.rev(), OK: true})
}
