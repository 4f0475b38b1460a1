package couch

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// MaxBulkDocs is the most documents one _bulk_docs or _bulk_get body may
// list, and the most document ids one _revs_diff body may hold. PouchDB
// sends batches of batch_size (100 by default).
const MaxBulkDocs = 10000

// Request bodies.
//
// Each decoder reads at most max bytes of r (a longer body is a 413
// too_large *Error), refuses a body that is not valid UTF-8 (encoding/json
// would silently replace the bad bytes), decodes JSON numbers as
// json.Number so large integers keep every digit (converting them is the
// caller's), and returns a 400 *Error whose reason says what is wrong.
// None panics on any input. Duplicate object keys are not detected: the
// last one wins, as in encoding/json.

// BulkDocs is a POST /{db}/_bulk_docs body.
type BulkDocs struct {
	// NewEdits is false when the replicator writes revisions as they are
	// (with their _revisions), true (the default when absent) when the
	// server makes the next revision of each document.
	NewEdits bool
	Docs     []BulkDoc
}

// BulkDoc is one document of a _bulk_docs body, its special members
// parsed and checked, the rest in Body.
type BulkDoc struct {
	ID  string // _id; "" when absent (allowed only with NewEdits)
	Rev string // _rev, a valid Rev's string; "" when absent
	// Deleted is _deleted: this revision is a tombstone.
	Deleted bool
	// Revisions is _revisions, checked by Revisions.Revs (nil when
	// absent). When _rev is given too it is the first of them.
	Revisions *Revisions
	// Attachments is _attachments by name (nil when absent).
	Attachments map[string]Attachment
	// Body is the document without any "_"-prefixed member, never nil.
	// Numbers are json.Number.
	Body map[string]any
}

// Attachment is one entry of a document's _attachments: inline (Data
// holds the decoded bytes) or a stub (Stub, no Data) naming an attachment
// the receiver already has from revision RevPos. Digest is passed on as
// sent ("md5-<base64>" from CouchDB and PouchDB): checking it against Data
// is the caller's.
type Attachment struct {
	ContentType string
	Data        []byte
	Stub        bool
	Digest      string
	// Length is the attachment's size in bytes: len(Data) for an inline
	// one, the sender's word for a stub (0 when it sent none).
	Length int64
	RevPos uint64
}

// BulkGetItem is one entry of a POST /{db}/_bulk_get body.
type BulkGetItem struct {
	ID  string // never ""
	Rev string // a valid Rev's string; "" for the winning revision
	// AttsSince lists revisions (valid Revs' strings) whose attachments
	// the client has: send only newer ones.
	AttsSince []string
}

// LocalDoc is a PUT /{db}/_local/{id} body: a replication checkpoint.
// Local documents have no revision tree: Rev is CouchDB's "0-N" (or what
// the client sent back), checked only for length.
type LocalDoc struct {
	ID      string // _id as sent; "" when absent (the URL names it)
	Rev     string
	Deleted bool
	Body    map[string]any // the document without "_" members, never nil
}

// DecodeRevsDiff decodes a POST /{db}/_revs_diff body,
// {"docid": ["1-a", "2-b"], ...}: document id to the revisions the client
// has. At most MaxBulkDocs ids; every revision must parse.
func DecodeRevsDiff(r io.Reader, max int64) (map[string][]Rev, error) {
	b, err := readBody(r, max)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := decodeJSON(b, &raw); err != nil {
		return nil, jsonError(err, "Request body must be a JSON object")
	}
	if raw == nil {
		return nil, BadRequest("Request body must be a JSON object")
	}
	if len(raw) > MaxBulkDocs {
		return nil, BadRequest(fmt.Sprintf("_revs_diff lists %d documents, more than %d", len(raw), MaxBulkDocs))
	}
	out := make(map[string][]Rev, len(raw))
	for id, v := range raw {
		var ss []string
		if err := decodeJSON(v, &ss); err != nil || ss == nil {
			return nil, BadRequest(fmt.Sprintf("revisions of %s must be a list of strings", quote(id)))
		}
		revs := make([]Rev, len(ss))
		for i, s := range ss {
			if revs[i], err = ParseRev(s); err != nil {
				return nil, BadRequest(fmt.Sprintf("document %s: %v", quote(id), err))
			}
		}
		out[id] = revs
	}
	return out, nil
}

// DecodeBulkDocs decodes a POST /{db}/_bulk_docs body,
// {"docs": [...], "new_edits": false}. At most MaxBulkDocs documents. A
// document's "_"-prefixed member other than _id, _rev, _deleted,
// _revisions and _attachments is refused as CouchDB refuses it (400
// doc_validation "Bad special document member: _foo"), except the
// read-only ones CouchDB drops on write (_conflicts, _deleted_conflicts,
// _revs_info, _local_seq), which are dropped. With new_edits false every
// document needs an _id and a _rev or _revisions. Other top-level members
// are ignored.
func DecodeBulkDocs(r io.Reader, max int64) (BulkDocs, error) {
	b, err := readBody(r, max)
	if err != nil {
		return BulkDocs{}, err
	}
	var top struct {
		Docs     json.RawMessage `json:"docs"`
		NewEdits json.RawMessage `json:"new_edits"`
	}
	if err := decodeJSON(b, &top); err != nil {
		return BulkDocs{}, jsonError(err, "Request body must be a JSON object")
	}
	out := BulkDocs{NewEdits: true}
	if top.NewEdits != nil {
		if err := decodeJSON(top.NewEdits, &out.NewEdits); err != nil || isNull(top.NewEdits) {
			return BulkDocs{}, BadRequest("`new_edits` parameter must be a boolean.")
		}
	}
	if top.Docs == nil || isNull(top.Docs) {
		return BulkDocs{}, BadRequest("POST body must include `docs` parameter.")
	}
	var docs []json.RawMessage
	if err := decodeJSON(top.Docs, &docs); err != nil {
		return BulkDocs{}, BadRequest("`docs` parameter must be an array.")
	}
	if len(docs) > MaxBulkDocs {
		return BulkDocs{}, BadRequest(fmt.Sprintf("_bulk_docs has %d documents, more than %d", len(docs), MaxBulkDocs))
	}
	out.Docs = make([]BulkDoc, len(docs))
	for i, raw := range docs {
		d, err := decodeBulkDoc(raw)
		if err != nil {
			return BulkDocs{}, prefixError(fmt.Sprintf("docs[%d]: ", i), err)
		}
		if !out.NewEdits {
			if d.ID == "" {
				return BulkDocs{}, BadRequest(fmt.Sprintf("docs[%d]: new_edits false needs an _id", i))
			}
			if d.Rev == "" && d.Revisions == nil {
				return BulkDocs{}, BadRequest(fmt.Sprintf("docs[%d]: new_edits false needs a _rev or _revisions", i))
			}
		}
		out.Docs[i] = d
	}
	return out, nil
}

// ignoredMembers are special members CouchDB accepts in a written
// document and drops: they describe a read, not a write.
var ignoredMembers = map[string]bool{
	"_conflicts":         true,
	"_deleted_conflicts": true,
	"_revs_info":         true,
	"_local_seq":         true,
}

func decodeBulkDoc(raw json.RawMessage) (BulkDoc, error) {
	fields, err := decodeObject(raw)
	if err != nil {
		return BulkDoc{}, err
	}
	d := BulkDoc{Body: make(map[string]any, len(fields))}
	for k, v := range fields {
		switch {
		case !strings.HasPrefix(k, "_"):
			var x any
			if err := decodeJSON(v, &x); err != nil {
				return BulkDoc{}, BadRequest("invalid JSON") // unreachable: v was decoded once
			}
			d.Body[k] = x
		case k == "_id":
			if d.ID, err = decodeString(v, k); err != nil {
				return BulkDoc{}, err
			}
		case k == "_rev":
			if d.Rev, err = decodeString(v, k); err != nil {
				return BulkDoc{}, err
			}
			if _, err := ParseRev(d.Rev); err != nil {
				return BulkDoc{}, BadRequest(err.Error())
			}
		case k == "_deleted":
			if err := decodeJSON(v, &d.Deleted); err != nil || isNull(v) {
				return BulkDoc{}, BadRequest("_deleted must be a boolean")
			}
		case k == "_revisions":
			var rs Revisions
			if err := decodeJSON(v, &rs); err != nil || isNull(v) {
				return BulkDoc{}, BadRequest(`_revisions must be {"start": integer, "ids": [string, ...]}`)
			}
			if _, err := rs.Revs(); err != nil {
				return BulkDoc{}, BadRequest(err.Error())
			}
			d.Revisions = &rs
		case k == "_attachments":
			if d.Attachments, err = decodeAttachments(v); err != nil {
				return BulkDoc{}, err
			}
		case ignoredMembers[k]:
		default:
			return BulkDoc{}, DocValidation("Bad special document member: " + quoteShort(k))
		}
	}
	if d.Rev != "" && d.Revisions != nil {
		if want := (Rev{Gen: d.Revisions.Start, Hash: d.Revisions.IDs[0]}).String(); d.Rev != want {
			return BulkDoc{}, BadRequest(fmt.Sprintf("_rev %s is not the first of _revisions (%s)", d.Rev, want))
		}
	}
	return d, nil
}

func decodeAttachments(v json.RawMessage) (map[string]Attachment, error) {
	var raw map[string]json.RawMessage
	if err := decodeJSON(v, &raw); err != nil || raw == nil {
		return nil, BadRequest("_attachments must be an object")
	}
	out := make(map[string]Attachment, len(raw))
	for name, v := range raw {
		if name == "" {
			return nil, BadRequest("Attachment name can't be empty")
		}
		if strings.HasPrefix(name, "_") {
			return nil, BadRequest("Attachment name can't start with '_'")
		}
		var w struct {
			ContentType *string `json:"content_type"`
			Data        *string `json:"data"`
			Stub        bool    `json:"stub"`
			Follows     bool    `json:"follows"`
			Digest      string  `json:"digest"`
			Length      int64   `json:"length"`
			RevPos      uint64  `json:"revpos"`
		}
		if err := decodeJSON(v, &w); err != nil || isNull(v) {
			return nil, BadRequest(fmt.Sprintf("attachment %s must be an object with content_type, data or stub, digest, length and revpos of the right types", quote(name)))
		}
		a := Attachment{Stub: w.Stub, Digest: w.Digest, RevPos: w.RevPos, Length: w.Length}
		if w.ContentType != nil {
			a.ContentType = *w.ContentType
		}
		switch {
		case w.Follows:
			return nil, BadRequest(fmt.Sprintf("attachment %s: attachments that follow in a multipart body are not supported", quote(name)))
		case w.Stub && w.Data != nil:
			return nil, BadRequest(fmt.Sprintf("attachment %s is a stub with data", quote(name)))
		case w.Stub:
		case w.Data == nil:
			return nil, BadRequest(fmt.Sprintf("attachment %s has neither data nor stub", quote(name)))
		default:
			data, err := base64.StdEncoding.DecodeString(*w.Data)
			if err != nil {
				return nil, BadRequest("Invalid attachment data for " + quote(name))
			}
			if w.Length != 0 && w.Length != int64(len(data)) {
				return nil, BadRequest(fmt.Sprintf("attachment %s: length %d, but its data has %d bytes", quote(name), w.Length, len(data)))
			}
			a.Data, a.Length = data, int64(len(data))
		}
		if a.Length < 0 {
			return nil, BadRequest(fmt.Sprintf("attachment %s: negative length", quote(name)))
		}
		out[name] = a
	}
	return out, nil
}

// DecodeBulkGet decodes a POST /{db}/_bulk_get body,
// {"docs": [{"id": "a", "rev": "1-x", "atts_since": ["1-x"]}, ...]}. At
// most MaxBulkDocs entries; each needs an id; revisions must parse.
// (CouchDB answers an entry without id with an error in its place in the
// results; this refuses the body, which PouchDB never sends.)
func DecodeBulkGet(r io.Reader, max int64) ([]BulkGetItem, error) {
	b, err := readBody(r, max)
	if err != nil {
		return nil, err
	}
	var top struct {
		Docs json.RawMessage `json:"docs"`
	}
	if err := decodeJSON(b, &top); err != nil {
		return nil, jsonError(err, "Request body must be a JSON object")
	}
	if top.Docs == nil || isNull(top.Docs) {
		return nil, BadRequest("Missing JSON list of 'docs'.")
	}
	var docs []json.RawMessage
	if err := decodeJSON(top.Docs, &docs); err != nil {
		return nil, BadRequest("`docs` must be an array.")
	}
	if len(docs) > MaxBulkDocs {
		return nil, BadRequest(fmt.Sprintf("_bulk_get lists %d documents, more than %d", len(docs), MaxBulkDocs))
	}
	out := make([]BulkGetItem, len(docs))
	for i, raw := range docs {
		var w struct {
			ID        *string  `json:"id"`
			Rev       *string  `json:"rev"`
			AttsSince []string `json:"atts_since"`
		}
		if err := decodeJSON(raw, &w); err != nil || isNull(raw) {
			return nil, BadRequest(fmt.Sprintf(`docs[%d] must be {"id": string, "rev": string, "atts_since": [string, ...]}`, i))
		}
		if w.ID == nil || *w.ID == "" {
			return nil, BadRequest(fmt.Sprintf("docs[%d]: document id missed", i))
		}
		it := BulkGetItem{ID: *w.ID, AttsSince: w.AttsSince}
		if w.Rev != nil {
			if _, err := ParseRev(*w.Rev); err != nil {
				return nil, BadRequest(fmt.Sprintf("docs[%d]: %v", i, err))
			}
			it.Rev = *w.Rev
		}
		if len(w.AttsSince) > MaxRevisions {
			return nil, BadRequest(fmt.Sprintf("docs[%d]: atts_since has %d revisions, more than %d", i, len(w.AttsSince), MaxRevisions))
		}
		for _, s := range w.AttsSince {
			if _, err := ParseRev(s); err != nil {
				return nil, BadRequest(fmt.Sprintf("docs[%d]: atts_since: %v", i, err))
			}
		}
		out[i] = it
	}
	return out, nil
}

// DecodeLocalDoc decodes a PUT /{db}/_local/{id} body. Special members
// are those of DecodeBulkDocs less _revisions (ignored: a local document
// has no history) and _attachments (refused: a local document has none);
// _rev is any string of at most MaxRevLen bytes.
func DecodeLocalDoc(r io.Reader, max int64) (LocalDoc, error) {
	b, err := readBody(r, max)
	if err != nil {
		return LocalDoc{}, err
	}
	fields, err := decodeObject(b)
	if err != nil {
		return LocalDoc{}, err
	}
	d := LocalDoc{Body: make(map[string]any, len(fields))}
	for k, v := range fields {
		switch {
		case !strings.HasPrefix(k, "_"):
			var x any
			if err := decodeJSON(v, &x); err != nil {
				return LocalDoc{}, BadRequest("invalid JSON")
			}
			d.Body[k] = x
		case k == "_id":
			if d.ID, err = decodeString(v, k); err != nil {
				return LocalDoc{}, err
			}
		case k == "_rev":
			if d.Rev, err = decodeString(v, k); err != nil {
				return LocalDoc{}, err
			}
			if len(d.Rev) > MaxRevLen {
				return LocalDoc{}, BadRequest(fmt.Sprintf("_rev longer than %d bytes", MaxRevLen))
			}
		case k == "_deleted":
			if err := decodeJSON(v, &d.Deleted); err != nil || isNull(v) {
				return LocalDoc{}, BadRequest("_deleted must be a boolean")
			}
		case k == "_attachments":
			return LocalDoc{}, BadRequest("_local documents have no attachments")
		case k == "_revisions" || ignoredMembers[k]:
		default:
			return LocalDoc{}, DocValidation("Bad special document member: " + quoteShort(k))
		}
	}
	return d, nil
}

// readBody reads all of r, at most max bytes, and checks it is UTF-8.
func readBody(r io.Reader, max int64) ([]byte, error) {
	if max < 0 {
		max = 0
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, TooLarge("the request entity is too large")
		}
		return nil, BadRequest("the request body could not be read")
	}
	if int64(len(b)) > max {
		return nil, TooLarge(fmt.Sprintf("the request entity is too large (more than %d bytes)", max))
	}
	if !utf8.Valid(b) {
		return nil, BadRequest("the request body is not valid UTF-8")
	}
	return b, nil
}

// decodeJSON decodes the one JSON value in b into v, numbers as
// json.Number, and refuses anything after it.
func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}

var errTrailing = errors.New("data after the JSON value")

// jsonError turns a decoding error into a 400: the syntax error as
// encoding/json words it (an offset and what it found), else shape,
// which says what was expected without naming Go types.
func jsonError(err error, shape string) *Error {
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return BadRequest("invalid JSON: " + err.Error())
	}
	if errors.Is(err, errTrailing) {
		return BadRequest("invalid JSON: " + err.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return BadRequest("invalid JSON: the body ends early")
	}
	return BadRequest(shape)
}

// decodeObject decodes a JSON object into its members, undecoded.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := decodeJSON(b, &fields); err != nil {
		return nil, jsonError(err, "Document must be a JSON object")
	}
	if fields == nil {
		return nil, BadRequest("Document must be a JSON object")
	}
	return fields, nil
}

func decodeString(v json.RawMessage, name string) (string, error) {
	var s string
	if err := decodeJSON(v, &s); err != nil || isNull(v) {
		return "", BadRequest(name + " must be a string")
	}
	return s, nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// prefixError puts p before an *Error's reason.
func prefixError(p string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{Status: e.Status, Code: e.Code, Reason: p + e.Reason}
	}
	return err
}

// quote quotes a client's string for a reason, cut to a readable length.
func quote(s string) string {
	const max = 100
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

// quoteShort returns s as it is when short and printable (CouchDB's
// "Bad special document member: _foo" has no quotes), else quote(s).
func quoteShort(s string) string {
	if len(s) <= 100 && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }) {
		return s
	}
	return quote(s)
}

// Response bodies, with CouchDB's json names: a field CouchDB omits when
// empty is omitempty here.

// Welcome is GET / (here GET /couch/): the server's identity. UUID must
// be stable across restarts: the replicator uses it in checkpoint ids.
type Welcome struct {
	CouchDB  string   `json:"couchdb"` // always "Welcome"
	Version  string   `json:"version"`
	UUID     string   `json:"uuid"`
	Features []string `json:"features,omitempty"`
	Vendor   Vendor   `json:"vendor"`
}

// Vendor is Welcome's vendor member.
type Vendor struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// DBInfo is GET /{db}: what PouchDB reads of a database's info.
// UpdateSeq is an opaque sequence, as in ChangesRow.
type DBInfo struct {
	DBName            string `json:"db_name"`
	DocCount          int64  `json:"doc_count"`
	DocDelCount       int64  `json:"doc_del_count"`
	UpdateSeq         string `json:"update_seq"`
	InstanceStartTime string `json:"instance_start_time"` // CouchDB 2+ sends "0"
}

// ChangesResult is a GET|POST /{db}/_changes answer for feed=normal and
// longpoll. Pending counts the changes after LastSeq (CouchDB 2+).
type ChangesResult struct {
	Results []ChangesRow `json:"results"`
	LastSeq string       `json:"last_seq"`
	Pending int64        `json:"pending"`
}

// ChangesRow is one row of the changes feed. Seq is opaque to clients
// (CouchDB 2+ sends a string; PouchDB passes it back as since). Changes
// lists the winning revision, or every leaf with style=all_docs. Doc is
// sent with include_docs.
type ChangesRow struct {
	Seq     string         `json:"seq"`
	ID      string         `json:"id"`
	Changes []ChangeRev    `json:"changes"`
	Deleted bool           `json:"deleted,omitempty"`
	Doc     map[string]any `json:"doc,omitempty"`
}

// ChangeRev is one entry of ChangesRow.Changes.
type ChangeRev struct {
	Rev string `json:"rev"`
}

// RevsDiffResult is one document's entry of a _revs_diff answer (a map
// from document id; documents with nothing missing are left out).
// Missing is never empty for a listed document.
type RevsDiffResult struct {
	Missing           []string `json:"missing"`
	PossibleAncestors []string `json:"possible_ancestors,omitempty"`
}

// BulkDocsResult is one entry of a _bulk_docs answer, in the order of the
// request: {"ok":true,"id","rev"} or {"id","error","reason"}. With
// new_edits false CouchDB lists only the documents that failed.
type BulkDocsResult struct {
	ID     string `json:"id"`
	Rev    string `json:"rev,omitempty"`
	OK     bool   `json:"ok,omitempty"`
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// BulkGetResult is a _bulk_get answer: one entry per requested item, in
// order.
type BulkGetResult struct {
	Results []BulkGetResultItem `json:"results"`
}

// BulkGetResultItem holds the revisions found for one requested item:
// one per open revision asked for, each a document or an error.
type BulkGetResultItem struct {
	ID   string       `json:"id"`
	Docs []BulkGetDoc `json:"docs"`
}

// BulkGetDoc is {"ok": document} or {"error": {...}}.
type BulkGetDoc struct {
	OK    map[string]any `json:"ok,omitempty"`
	Error *BulkGetError  `json:"error,omitempty"`
}

// BulkGetError is why one revision of a _bulk_get could not be sent
// (Error "not_found", Reason "missing", usually).
type BulkGetError struct {
	ID     string `json:"id"`
	Rev    string `json:"rev"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
}
