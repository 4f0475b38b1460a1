package blobstore

import (
	"context"
	"fmt"

	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

// Stats counts what Compact reclaimed.
type Stats struct {
	Blobs   int   // unreferenced complete blobs deleted
	Bytes   int64 // their content length
	Uploads int   // abandoned uploads (a crash mid-upload) deleted
}

// Compact deletes the blobs no document references (referenced, called
// once the compaction tracks every pin, lists them) and the chunks of
// abandoned uploads and of transfers of blobs nothing wants any more. It
// never takes a blob from a reader: readers read a snapshot, which keeps
// deleted data until they close. Blobs pinned at any point of it, uploads
// and transfers running are spared. One Compact at a time per store range
// (the caller's lock).
func Compact(ctx context.Context, s *datastore.Store, keys layout.Keys, bs *Pins, referenced func(context.Context) (map[Digest]bool, error)) (Stats, error) {
	bs.mu.Lock()
	bs.compacting = true
	bs.touched = map[Digest]bool{}
	bs.touchedUp = map[UploadID]bool{}
	for dg := range bs.pins {
		bs.touched[dg] = true
	}
	for u := range bs.uploads {
		bs.touchedUp[u] = true
	}
	bs.mu.Unlock()
	defer func() {
		bs.mu.Lock()
		bs.compacting, bs.touched, bs.touchedUp = false, nil, nil
		bs.mu.Unlock()
	}()

	refs, err := referenced(ctx)
	if err != nil {
		return Stats{}, err
	}
	type cand struct {
		dg Digest
		m  Meta
	}
	var dead []cand
	live := map[UploadID]bool{}
	pre := keys.BlobMetas()
	err = s.Range(pre, datastore.PrefixEnd(pre), false, func(k, v []byte) (bool, error) {
		var dg Digest
		if len(k) != len(pre)+len(dg) {
			return false, fmt.Errorf("blob metadata key %x: corrupt", k)
		}
		copy(dg[:], k[len(pre):])
		m, err := DecodeMeta(v)
		if err != nil {
			return false, fmt.Errorf("blob %s: %w", dg, err)
		}
		live[m.Upload] = true
		if !refs[dg] {
			dead = append(dead, cand{dg, m})
		}
		return true, ctx.Err()
	})
	if err != nil {
		return Stats{}, fmt.Errorf("list blobs: %w", err)
	}
	// A wanted blob's partial transfer is live while a document references
	// the blob; a want no document needs any more goes with its chunks.
	var deadWants []cand
	wpre := keys.BlobWants()
	err = s.Range(wpre, datastore.PrefixEnd(wpre), false, func(k, v []byte) (bool, error) {
		var dg Digest
		if len(k) != len(wpre)+len(dg) {
			return false, fmt.Errorf("blob want key %x: corrupt", k)
		}
		copy(dg[:], k[len(wpre):])
		w, _ := DecodeWant(v) // a corrupt record still names its upload
		live[w.Upload] = true
		if !refs[dg] {
			deadWants = append(deadWants, cand{dg, Meta{Upload: w.Upload}})
		}
		return true, ctx.Err()
	})
	if err != nil {
		return Stats{}, fmt.Errorf("list wanted blobs: %w", err)
	}
	var orphans []UploadID
	cpre := keys.AllBlobChunks()
	for lo := cpre; ; {
		var u UploadID
		var found bool
		err := s.Range(lo, datastore.PrefixEnd(cpre), false, func(k, _ []byte) (bool, error) {
			if len(k) < len(cpre)+len(u) {
				return false, fmt.Errorf("blob chunk key %x: corrupt", k)
			}
			copy(u[:], k[len(cpre):])
			found = true
			return false, nil
		})
		if err != nil {
			return Stats{}, fmt.Errorf("list uploads: %w", err)
		}
		if !found {
			break
		}
		if !live[u] {
			orphans = append(orphans, u)
		}
		lo = datastore.PrefixEnd(keys.BlobChunks(u))
		if err := ctx.Err(); err != nil {
			return Stats{}, err
		}
	}

	// The check against the pins and the deletion happen under bs.mu, held
	// across one batch commit: a writer that pins a Digest after this
	// finds its metadata gone and writes it anew, one that pinned it before
	// is spared. A "condemned" set released before the commit was the
	// alternative; it makes writers wait on compaction instead.
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var st Stats
	b := s.NewWriteBatch()
	defer b.Close()
	for _, c := range dead {
		if bs.touched[c.dg] || bs.pins[c.dg] > 0 {
			continue
		}
		b.Delete(keys.BlobMeta(c.dg))
		b.DeleteRange(keys.BlobChunks(c.m.Upload), datastore.PrefixEnd(keys.BlobChunks(c.m.Upload)))
		st.Blobs++
		st.Bytes += c.m.Length
	}
	for _, c := range deadWants {
		if bs.touched[c.dg] || bs.pins[c.dg] > 0 || bs.receiving[c.dg] != nil || bs.touchedUp[c.m.Upload] {
			continue
		}
		b.Delete(keys.BlobWant(c.dg))
		b.DeleteRange(keys.BlobChunks(c.m.Upload), datastore.PrefixEnd(keys.BlobChunks(c.m.Upload)))
		st.Uploads++
	}
	for _, u := range orphans {
		if bs.touchedUp[u] || bs.uploads[u] {
			continue
		}
		b.DeleteRange(keys.BlobChunks(u), datastore.PrefixEnd(keys.BlobChunks(u)))
		st.Uploads++
	}
	if b.Len() == 0 {
		return st, nil
	}
	if err := b.Commit(); err != nil {
		return Stats{}, fmt.Errorf("delete blobs: %w", err)
	}
	return st, nil
}
