package httpapi

import (
	"fmt"
	"net/http"
	"time"
)

// attachmentPattern is the route of one attachment. It is more specific
// than "GET /dbs/{db}/docs/{id}/{path...}" (a path inside the document), so
// the ServeMux sends GET .../_attachments/NAME here.
const attachmentPattern = "/dbs/{db}/docs/{id}/_attachments/{name}"

func (s *server) attachmentRoutes() {
	s.route("PUT "+attachmentPattern, s.handlePutAttachment)
	s.route("GET "+attachmentPattern, s.handleGetAttachment)
	s.route("DELETE "+attachmentPattern, s.handleDeleteAttachment)
	s.route("POST /dbs/{db}/blobs/compact", s.handleCompactBlobs)
}

func (s *server) handlePutAttachment(w http.ResponseWriter, r *http.Request) error {
	id, name := r.PathValue("id"), r.PathValue("name")
	d, err := s.db(r)
	if err != nil {
		return err
	}
	// r.Body keeps the read deadline ReadTimeout ahead of every read and
	// enforces MinBodyRate (see body and ServeHTTP).
	q := r.URL.Query()
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if err := checkContentType(ct); err != nil {
		return err
	}
	res, err := d.PutAttachmentDigest(r.Context(), id, name, ct, r.Body, q.Get("rev"), q.Get("digest"))
	if err != nil {
		return fmt.Errorf("put attachment %q of %q: %w", name, id, err)
	}
	writeJSON(w, http.StatusCreated, newResult(res))
	return nil
}

// maxContentTypeBytes bounds an attachment's Content-Type: RFC 6838 allows
// 127 characters each for type and subtype, the rest is for parameters.
const maxContentTypeBytes = 512

// checkContentType refuses a Content-Type the document could not carry: it
// is stored in the document's _attachments, so bytes that are not UTF-8
// would make the document unreadable (500 on every read) and could not
// replicate. Header values are printable ASCII (RFC 9110 5.5; obs-text is
// obsolete), which is what is accepted.
func checkContentType(ct string) error {
	if len(ct) > maxContentTypeBytes {
		return badRequest(fmt.Sprintf("Content-Type longer than %d bytes", maxContentTypeBytes))
	}
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; c < 0x20 || c > 0x7e {
			return badRequest(fmt.Sprintf("Content-Type byte %d is 0x%02x: want printable ASCII", i, c))
		}
	}
	return nil
}

func (s *server) handleGetAttachment(w http.ResponseWriter, r *http.Request) error {
	id, name := r.PathValue("id"), r.PathValue("name")
	d, err := s.db(r)
	if err != nil {
		return err
	}
	info, rd, err := d.Attachment(r.Context(), id, name)
	if err != nil {
		return fmt.Errorf("get attachment %q of %q: %w", name, id, err)
	}
	defer rd.Close()
	h := w.Header()
	if info.ContentType != "" {
		h.Set("Content-Type", info.ContentType)
	}
	h.Set("ETag", `"`+info.Digest+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	// ServeContent answers Range, If-Range and If-None-Match from the
	// seeker and the ETag, and sets Content-Length.
	http.ServeContent(w, r, "", time.Time{}, rd)
	return nil
}

func (s *server) handleDeleteAttachment(w http.ResponseWriter, r *http.Request) error {
	id, name := r.PathValue("id"), r.PathValue("name")
	d, err := s.db(r)
	if err != nil {
		return err
	}
	res, err := d.DeleteAttachment(r.Context(), id, name, r.URL.Query().Get("rev"))
	if err != nil {
		return fmt.Errorf("delete attachment %q of %q: %w", name, id, err)
	}
	writeJSON(w, http.StatusOK, newResult(res))
	return nil
}

func (s *server) handleCompactBlobs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("db")
	st, err := s.n.CompactBlobs(r.Context(), name)
	if err != nil {
		return fmt.Errorf("compact blobs of %q: %w", name, err)
	}
	writeJSON(w, http.StatusOK, newBlobCompaction(st))
	return nil
}
