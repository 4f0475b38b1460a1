package blobstore

import (
	"sync"
	"sync/atomic"
)

// Pins are what blob writers and Compact share: the blobs pinned (being
// written or about to be referenced), the uploads and replication
// transfers running, and during a compaction what was pinned at any point
// of it. mu guards every field; Compact holds it across its final delete
// batch (see there). The zero value is ready.
type Pins struct {
	mu         sync.Mutex
	pins       map[Digest]int
	uploads    map[UploadID]bool
	compacting bool
	touched    map[Digest]bool          // pinned at some point of the running compaction
	touchedUp  map[UploadID]bool        // uploading at some point of the running compaction
	receiving  map[Digest]*atomic.Int64 // blobs a replication transfer is writing: bytes received
}

// StartReceive claims d for one replication transfer, whose sink counts
// the bytes received in the counter returned; nil if another transfer
// holds dg.
func (b *Pins) StartReceive(d Digest) *atomic.Int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.receiving[d] != nil {
		return nil
	}
	if b.receiving == nil {
		b.receiving = map[Digest]*atomic.Int64{}
	}
	got := new(atomic.Int64)
	b.receiving[d] = got
	return got
}

// Received reports the bytes of d a running transfer holds (stored or
// not yet); false when no transfer of dg runs.
func (b *Pins) Received(d Digest) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := b.receiving[d]; got != nil {
		return got.Load(), true
	}
	return 0, false
}

// EndReceive ends the transfer of d.
func (b *Pins) EndReceive(d Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.receiving, d)
}

// Pin spares d from compaction until Unpin.
func (b *Pins) Pin(d Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pins == nil {
		b.pins = map[Digest]int{}
	}
	b.pins[d]++
	if b.compacting {
		b.touched[d] = true
	}
}

// Unpin undoes one Pin.
func (b *Pins) Unpin(d Digest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pins[d]--; b.pins[d] <= 0 {
		delete(b.pins, d)
	}
}

// StartUpload spares the chunks of upload u from compaction until
// EndUpload.
func (b *Pins) StartUpload(u UploadID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.uploads == nil {
		b.uploads = map[UploadID]bool{}
	}
	b.uploads[u] = true
	if b.compacting {
		b.touchedUp[u] = true
	}
}

// EndUpload ends upload u.
func (b *Pins) EndUpload(u UploadID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.uploads, u)
}
