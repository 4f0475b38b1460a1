package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/blobstore"
	"github.com/barrel-db/barrel/node/internal/commit"
)

// AttachmentsField is the reserved top-level field of a document that lists
// its attachments: {"name": {"content_type", "length", "digest"}}. Only the
// attachment methods write it; Put keeps it as it is.
const AttachmentsField = commit.AttachmentsField

// AttachmentInfo is one entry of a document's _attachments.
type AttachmentInfo struct {
	Name        string
	ContentType string
	Length      int64
	Digest      string // "sha256-<hex>"
}

// attachWrite is an attachment write: set (info != nil) or delete one
// entry of _attachments.
type attachWrite struct {
	name string
	info *AttachmentInfo
}

// attachDocWrite is the writer's request for an attachment write: its
// operations are built against the document as the writer holds it.
func attachDocWrite(docID, rev, name string, info *AttachmentInfo) commit.DocWrite {
	a := &attachWrite{name: name, info: info}
	return commit.DocWrite{ID: docID, Rev: rev, Ops: func(st *crdt.State, base map[string]any) ([]crdt.Op, error) {
		return attachOps(st, base, a)
	}}
}

func (a AttachmentInfo) value() map[string]any {
	return map[string]any{"content_type": a.ContentType, "length": a.Length, "digest": a.Digest}
}

func validAttachmentName(name string) error {
	if err := crdt.ValidateName("attachment name", name); err != nil {
		return invalid("attachment name", "%v", err)
	}
	return nil
}

// PutAttachment stores the content of r (streamed: memory stays bounded
// whatever its size) and sets the attachment name of document docID to it,
// creating the document if it does not exist. rev, when set, is the base
// revision as for Put. The content is stored once per digest. Errors:
// ErrInvalid, ErrRevMismatch, ErrOverloaded, ErrClosed, or the reader's.
func (d *DB) PutAttachment(ctx context.Context, docID, name, contentType string, r io.Reader, rev string) (Result, error) {
	return d.PutAttachmentDigest(ctx, docID, name, contentType, r, rev, "")
}

// PutAttachmentDigest is PutAttachment that also checks the content
// against want ("sha256-<hex>"; "" checks nothing): a mismatch returns
// ErrDigestMismatch and leaves neither the blob nor a change behind.
func (d *DB) PutAttachmentDigest(ctx context.Context, docID, name, contentType string, r io.Reader, rev, want string) (Result, error) {
	if err := d.checkOpen(); err != nil {
		return Result{}, err
	}
	if err := crdt.ValidateName("doc id", docID); err != nil {
		return Result{}, invalid("doc id", "%v", err)
	}
	if err := validAttachmentName(name); err != nil {
		return Result{}, err
	}
	dg, m, err := d.writeBlob(ctx, r, want)
	if err != nil {
		return Result{}, fmt.Errorf("attachment %s of %s: %w", name, docID, err)
	}
	defer d.blobs.Unpin(dg)
	info := AttachmentInfo{Name: name, ContentType: contentType, Length: m.Length, Digest: dg.String()}
	return d.writeOne(ctx, attachDocWrite(docID, rev, name, &info))
}

// LinkAttachment sets the attachment name of document docID to a blob
// already stored (PutBlob). ErrNotFound if the database holds no blob with
// that digest, ErrInvalid for a malformed digest.
func (d *DB) LinkAttachment(ctx context.Context, docID, name, contentType, dgst, rev string) (Result, error) {
	if err := validAttachmentName(name); err != nil {
		return Result{}, err
	}
	dg, err := parseDigest(dgst)
	if err != nil {
		return Result{}, err
	}
	d.blobs.Pin(dg)
	defer d.blobs.Unpin(dg)
	m, err := d.blobMetaOf(dg)
	if err != nil {
		return Result{}, fmt.Errorf("attachment %s of %s: %w", name, docID, err)
	}
	info := AttachmentInfo{Name: name, ContentType: contentType, Length: m.Length, Digest: dg.String()}
	return d.writeOne(ctx, attachDocWrite(docID, rev, name, &info))
}

// DeleteAttachment removes the attachment name from document docID (a
// change like any other). ErrNotFound if the document or the attachment
// does not exist. The blob stays until CompactBlobs finds it unreferenced.
func (d *DB) DeleteAttachment(ctx context.Context, docID, name, rev string) (Result, error) {
	if err := validAttachmentName(name); err != nil {
		return Result{}, err
	}
	return d.writeOne(ctx, attachDocWrite(docID, rev, name, nil))
}

// attachmentSet checks a DocOp's attachments and returns them as the
// writer sets them, with the blobs it pinned (unpin them once the write is
// answered): every blob must be held, and its length is the store's.
func (d *DB) attachmentSet(atts map[string]AttachmentInfo) (map[string]any, [][32]byte, error) {
	out := make(map[string]any, len(atts))
	var pinned [][32]byte
	for name, a := range atts {
		if err := validAttachmentName(name); err != nil {
			return nil, pinned, err
		}
		dg, err := parseDigest(a.Digest)
		if err != nil {
			return nil, pinned, err
		}
		d.blobs.Pin(dg)
		pinned = append(pinned, dg)
		m, err := d.blobMetaOf(dg)
		if err != nil {
			return nil, pinned, fmt.Errorf("attachment %s: %w", name, err)
		}
		a.Length = m.Length
		v, err := crdt.Normalize(a.value())
		if err != nil {
			return nil, pinned, invalid("attachment", "%v", err)
		}
		out[name] = v
	}
	return out, pinned, nil
}

// Attachments lists the attachments of a live document by name.
// ErrNotFound if the document does not exist or is deleted.
func (d *DB) Attachments(ctx context.Context, docID string) (map[string]AttachmentInfo, error) {
	doc, err := d.Get(ctx, docID)
	if err != nil {
		return nil, err
	}
	if doc.Deleted {
		return nil, fmt.Errorf("document %s: %w", docID, ErrNotFound)
	}
	out := map[string]AttachmentInfo{}
	atts, _ := doc.Body[AttachmentsField].(map[string]any)
	for name, v := range atts {
		if info, ok := attachmentInfo(name, v); ok {
			out[name] = info
		}
	}
	return out, nil
}

// Attachment opens attachment name of document docID for reading. The
// reader seeks (for Range requests) and holds one chunk in memory; it reads
// a snapshot, so it sees the content whole even if the attachment is
// replaced or compacted meanwhile. The caller must close it. ErrNotFound if
// the document, the attachment or its blob does not exist.
func (d *DB) Attachment(ctx context.Context, docID, name string) (AttachmentInfo, io.ReadSeekCloser, error) {
	if err := d.checkOpen(); err != nil {
		return AttachmentInfo{}, nil, err
	}
	snap, err := d.store.Snapshot()
	if err != nil {
		return AttachmentInfo{}, nil, err
	}
	info, m, err := d.openAttachment(snap, docID, name)
	if err != nil {
		_ = snap.Close()
		return AttachmentInfo{}, nil, err
	}
	return info, blobstore.NewReader(snap, d.keys, m), nil
}

func (d *DB) openAttachment(snap *datastore.Snapshot, docID, name string) (AttachmentInfo, blobMeta, error) {
	notFound := fmt.Errorf("attachment %s of %s: %w", name, docID, ErrNotFound)
	v, err := snap.Get(d.keys.Doc(docID))
	if errors.Is(err, datastore.ErrNotFound) {
		return AttachmentInfo{}, blobMeta{}, notFound
	}
	if err != nil || len(v) < 8 {
		return AttachmentInfo{}, blobMeta{}, fmt.Errorf("read document %s: %w", docID, errors.Join(err, errCorrupt))
	}
	st, err := crdt.DecodeView(v[8:])
	if err != nil {
		return AttachmentInfo{}, blobMeta{}, fmt.Errorf("read document %s: %w", docID, err)
	}
	if !st.Exists() || st.Deleted {
		return AttachmentInfo{}, blobMeta{}, notFound
	}
	atts, _ := st.Body[AttachmentsField].(map[string]any)
	info, ok := attachmentInfo(name, atts[name])
	if !ok {
		return AttachmentInfo{}, blobMeta{}, notFound
	}
	dg, err := parseDigest(info.Digest)
	if err != nil {
		return AttachmentInfo{}, blobMeta{}, notFound
	}
	mv, err := snap.Get(d.keys.BlobMeta(dg))
	if errors.Is(err, datastore.ErrNotFound) {
		// A replicated document whose blob has not arrived yet: the
		// fetcher pulls it in the background (blob_fetch.go); answer now
		// rather than hold a reader for a transfer of unknown length.
		progress := "replicating"
		if got, ok := d.blobs.Received(dg); ok {
			progress = fmt.Sprintf("replicating: %d of %d bytes received", got, info.Length)
		}
		return AttachmentInfo{}, blobMeta{}, fmt.Errorf("attachment %s of %s: blob %s has not arrived from peers yet (%s): %w", name, docID, dg, progress, ErrNotFound)
	}
	if err != nil {
		return AttachmentInfo{}, blobMeta{}, fmt.Errorf("read blob %s: %w", dg, err)
	}
	m, err := decodeBlobMeta(mv)
	if err != nil {
		return AttachmentInfo{}, blobMeta{}, fmt.Errorf("blob %s: %w", dg, err)
	}
	if m.Length != info.Length {
		return AttachmentInfo{}, blobMeta{}, fmt.Errorf("blob %s: %d bytes, document says %d: %w", dg, m.Length, info.Length, errCorrupt)
	}
	return info, m, nil
}

var errCorrupt = errors.New("corrupt record")

// attachmentInfo reads one _attachments entry; ok is false when v does
// not have the shape (a replicated document may carry anything).
func attachmentInfo(name string, v any) (AttachmentInfo, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return AttachmentInfo{}, false
	}
	ct, _ := m["content_type"].(string)
	length, ok1 := m["length"].(int64)
	dg, ok2 := m["digest"].(string)
	if !ok1 || !ok2 || !strings.HasPrefix(dg, DigestPrefix) {
		return AttachmentInfo{}, false
	}
	return AttachmentInfo{Name: name, ContentType: ct, Length: length, Digest: dg}, true
}

// referencedDigests lists every digest a document of the database refers
// to, in its body or in a conflict value kept beside it (a losing value
// can be restored, with its attachments).
func (d *DB) referencedDigests(ctx context.Context) (map[digest]bool, error) {
	refs := map[digest]bool{}
	addAtts := func(v any) {
		atts, _ := v.(map[string]any)
		for name, e := range atts {
			if info, ok := attachmentInfo(name, e); ok {
				if dg, err := parseDigest(info.Digest); err == nil {
					refs[dg] = true
				}
			}
		}
	}
	pre := d.keys.Docs()
	err := d.store.Range(pre, datastore.PrefixEnd(pre), false, func(k, v []byte) (bool, error) {
		if len(v) < 8 {
			return false, fmt.Errorf("document key %x: %w", k, errCorrupt)
		}
		st, err := crdt.DecodeView(v[8:])
		if err != nil {
			return false, fmt.Errorf("document key %x: %w", k, err)
		}
		addAtts(st.Body[AttachmentsField])
		for _, c := range st.Conflicts {
			switch {
			case c.Path == "":
				body, _ := c.Value.(map[string]any)
				addAtts(body[AttachmentsField])
			case c.Path == "/"+AttachmentsField:
				addAtts(c.Value)
			case strings.HasPrefix(c.Path, "/"+AttachmentsField+"/"):
				tokens, err := crdt.ParsePointer(c.Path)
				if err == nil && len(tokens) == 2 {
					addAtts(map[string]any{tokens[1]: c.Value})
				}
			}
		}
		return true, ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("find referenced blobs: %w", err)
	}
	return refs, nil
}

// attachOps builds the change of an attachment write against the
// document's state.
func attachOps(st *crdt.State, base map[string]any, a *attachWrite) ([]crdt.Op, error) {
	path := crdt.FormatPointer([]string{AttachmentsField, a.name})
	if a.info == nil {
		atts, _ := base[AttachmentsField].(map[string]any)
		if _, ok := atts[a.name]; !ok || !st.Exists() || st.Deleted {
			return nil, fmt.Errorf("attachment %s: %w", a.name, ErrNotFound)
		}
		return []crdt.Op{{Kind: crdt.OpDelete, Path: path}}, nil
	}
	v, err := crdt.Normalize(a.info.value())
	if err != nil {
		return nil, invalid("attachment", "%v", err)
	}
	return []crdt.Op{{Kind: crdt.OpSet, Path: path, Value: v}}, nil
}
