package datastore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Why the store checks its MANIFEST itself: Pebble reads the MANIFEST (the
// list of sstables and the WALs still to replay) with the same reader as a
// log, and treats the first bad record as the end of the file, as if a
// crash had torn the last write. A flipped byte in the middle therefore
// makes Pebble drop every later edit, open an older (often empty) version,
// and delete the sstables that version does not name: the store opens empty
// and the data is gone. Pebble syncs the MANIFEST after every edit, so a
// bad record followed by a good one cannot come from a crash: it is damage.
// checkManifest reads the chunks itself and refuses the store before Pebble
// opens it.

// Pebble's record chunk layout (record/record.go): a header of checksum
// (4 bytes), length (2), chunk type (1), then for the recyclable types a log
// number (4) and for the WAL-sync types a synced offset (8); chunks never
// cross a 32 KiB block.
const (
	chunkBlockBytes = 32 << 10
	chunkLegacyHdr  = 7
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// chunkHeaderBytes returns the header size of a chunk type, 0 if invalid.
func chunkHeaderBytes(typ byte) int {
	switch {
	case typ >= 1 && typ <= 4:
		return chunkLegacyHdr
	case typ >= 5 && typ <= 8:
		return chunkLegacyHdr + 4
	case typ >= 9 && typ <= 12:
		return chunkLegacyHdr + 4 + 8
	}
	return 0
}

// validChunk reports whether a whole, checksummed chunk starts at
// block[off:], and returns its length in bytes.
func validChunk(block []byte, off int) (int, bool) {
	if off+chunkLegacyHdr > len(block) {
		return 0, false
	}
	hdr := chunkHeaderBytes(block[off+6])
	if hdr == 0 || off+hdr > len(block) {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint16(block[off+4:]))
	end := off + hdr + n
	if end > len(block) {
		return 0, false
	}
	sum := crc32.Update(0, crcTable, block[off+6:end])
	masked := (sum>>15 | sum<<17) + 0xa282ead8
	return hdr + n, masked == binary.LittleEndian.Uint32(block[off:])
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkManifest scans the MANIFEST at path chunk by chunk. A torn tail (the
// file ends inside a chunk, or only zeroes follow the last good chunk) is
// what a crash during an edit leaves and is accepted: that edit was never
// acknowledged. Anything else that is not a valid chunk (a bad checksum, a
// bad header) is damage: the error wraps ErrCorrupt and names the file and
// offset. The scan reads one block at a time.
func checkManifest(fs vfs.FS, path string) error {
	f, err := fs.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	block := make([]byte, chunkBlockBytes)
	for blockNum := int64(0); ; blockNum++ {
		n, err := io.ReadFull(f, block)
		if err == io.EOF {
			return nil
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return fmt.Errorf("read %s: %w", path, err)
		}
		b := block[:n]
		off := 0
		for off < len(b) {
			if len(b)-off < chunkLegacyHdr+4 && allZero(b[off:]) {
				break // the writer pads a block's tail with zeroes
			}
			size, ok := validChunk(b, off)
			if ok {
				off += size
				continue
			}
			at := blockNum*chunkBlockBytes + int64(off)
			if n < chunkBlockBytes && (allZero(b[off:]) || truncatedChunk(b, off)) {
				return nil // torn tail: the last edit's write was cut short
			}
			return fmt.Errorf("%w: %s: bad record at byte %d (its checksum or header does not match its contents); nothing was changed or deleted",
				ErrCorrupt, path, at)
		}
		if n < chunkBlockBytes {
			return nil
		}
	}
}

// truncatedChunk reports whether the chunk at b[off:] has a plausible header
// but runs past the end of the data: the file ends inside it.
func truncatedChunk(b []byte, off int) bool {
	if off+chunkLegacyHdr > len(b) {
		return true
	}
	hdr := chunkHeaderBytes(b[off+6])
	if hdr == 0 {
		return false
	}
	n := int(binary.LittleEndian.Uint16(b[off+4:]))
	return off+hdr+n > len(b) && off+hdr+n <= chunkBlockBytes
}

// checkExisting looks at dir before Pebble opens it. It reports whether a
// store exists there, and refuses (ErrCorrupt) a dir that holds Pebble's
// files but no current MANIFEST, or whose MANIFEST is damaged: Pebble would
// open either as a new, empty store and delete the files it does not know.
func checkExisting(fs vfs.FS, dir string) (exists bool, err error) {
	names, err := fs.List(dir)
	if err != nil {
		return false, nil // no dir yet: a new store
	}
	desc, err := pebble.Peek(dir, fs)
	if err != nil {
		return false, fmt.Errorf("%w: %s: read the store's markers: %v", ErrCorrupt, dir, err)
	}
	if !desc.Exists {
		for _, name := range names {
			if strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".log") ||
				strings.HasPrefix(name, "MANIFEST-") || strings.HasPrefix(name, "marker.manifest.") {
				return false, fmt.Errorf("%w: %s holds store files (%s) but no current MANIFEST", ErrCorrupt, dir, name)
			}
		}
		return false, nil
	}
	if err := checkManifest(fs, desc.ManifestFilename); err != nil {
		return true, err
	}
	return true, nil
}

// walDamage scans the WAL at path (file number num) for a bad chunk that
// is followed by good chunks of the same log: damage, not the torn tail a
// crash leaves. It returns the offset of the bad chunk and how many good
// chunks follow it (0, 0 when there is no such damage). Only the chunk
// types that carry a log number count, so the stale chunks of a recycled
// log and the EOF trailer are not taken for records.
//
// Pebble finds this damage itself when the log was synced after it (the
// WAL-sync chunks say how far); under DurabilityBatch nothing is synced per
// commit, so the store looks for it, to say so and keep a copy.
func walDamage(fs vfs.FS, path string, num uint32) (badAt int64, after int, err error) {
	f, err := fs.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	block := make([]byte, chunkBlockBytes)
	badAt = -1
	for blockNum := int64(0); ; blockNum++ {
		n, err := io.ReadFull(f, block)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return 0, 0, err
		}
		b := block[:n]
		off := 0
		for off+chunkLegacyHdr <= len(b) {
			size, ok := validChunk(b, off)
			if ok && chunkHeaderBytes(b[off+6]) > chunkLegacyHdr && binary.LittleEndian.Uint32(b[off+7:]) == num {
				if badAt >= 0 {
					after++
				}
				off += size
				continue
			}
			if badAt < 0 && !allZero(b[off:min(off+chunkLegacyHdr+4, len(b))]) {
				badAt = blockNum*chunkBlockBytes + int64(off)
			}
			// Skip a chunk whose header still reads, else the block.
			hdr := chunkHeaderBytes(b[off+6])
			l := int(binary.LittleEndian.Uint16(b[off+4:]))
			if hdr == 0 || off+hdr+l > len(b) || hdr+l == 0 {
				break
			}
			off += hdr + l
		}
		if n < chunkBlockBytes {
			break
		}
	}
	if badAt < 0 || after == 0 {
		return 0, 0, nil
	}
	return badAt, after, nil
}
