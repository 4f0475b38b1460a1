package sync

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/barrel-db/barrel/crdt"
)

// ReconProtocolID is the libp2p protocol of version 2: range-based set
// reconciliation, then Want/Bodies as in version 1. A client tries it
// first and falls back to ProtocolID when the remote does not support it.
const ReconProtocolID = "/barrel/sync/2.0.0"

// ReconVersion is the message-level version of ReconHello.
const ReconVersion = 2

// Message types of version 2, in the same space as version 1's (whose
// Want, Bodies and Error it uses). Never renumber.
const (
	msgReconHello msgType = 7 // client: open a reconciliation, with its whole set's fingerprint
	msgRecon      msgType = 8 // client: ranges to split, leaves to compare
	msgDiff       msgType = 9 // server: sub-range fingerprints, documents the client lacks
)

// reconHelloMsg opens a version 2 session.
type reconHelloMsg struct {
	_        struct{} `cbor:",toarray"`
	Version  uint32
	DB       string
	MaxFrame uint32
	Salt     []byte // saltBytes, chosen by the client for this session
	Count    uint64 // the client's number of items
	FP       uint32 // the client's salted fingerprint of the whole set
}

// wireRange names a range to split.
type wireRange struct {
	_     struct{} `cbor:",toarray"`
	Depth uint8
	Path  uint64
}

// wireLeaf is a range the client lists its items of.
type wireLeaf struct {
	_      struct{} `cbor:",toarray"`
	Depth  uint8
	Path   uint64
	Hashes []byte // shortHashBytes per item, at most MaxLeafItems
}

// reconMsg asks for the sub-ranges of Split and the documents of Leaves
// the client lacks.
type reconMsg struct {
	_      struct{} `cbor:",toarray"`
	Split  []wireRange
	Leaves []wireLeaf
}

// wireSplit gives the server's fingerprints of a range's 16 sub-ranges,
// packed: a 2-byte bitmap of the sub-ranges that hold items (bit i for
// sub-range i, big endian), then for each of them, in order, its salted
// fingerprint in 4 bytes, big endian. An empty sub-range has none.
type wireSplit struct {
	_        struct{} `cbor:",toarray"`
	Depth    uint8
	Path     uint64
	Children []byte
}

// wireDoc is a document the client lacks (or holds other heads of).
type wireDoc struct {
	_     struct{} `cbor:",toarray"`
	Doc   string
	Heads []wireID
}

// diffMsg answers ReconHello or Recon, in one or more frames (More: the
// answer goes on in the next frame).
type diffMsg struct {
	_      struct{} `cbor:",toarray"`
	Seq    uint64   // the server's feed sequence its set reflects
	Splits []wireSplit
	Docs   []wireDoc
	More   bool
	InSync bool // the whole sets compare equal (answers ReconHello only)
}

// child is one packed sub-range of a split.
type child struct {
	full bool // the sub-range holds items
	fp   uint32
}

// packChildren packs 16 fingerprints.
func packChildren(salt []byte, r Range, fs *[16]Fingerprint) []byte {
	out := make([]byte, 2, 2+16*4)
	for i, f := range fs {
		if f.Count > 0 {
			out[i/8] |= 0x80 >> (i % 8)
			out = binary.BigEndian.AppendUint32(out, f.wire(salt, r.child(i)))
		}
	}
	return out
}

// unpackChildren parses a split's children; every byte must be used.
func unpackChildren(p []byte) ([16]child, error) {
	var out [16]child
	if len(p) < 2 {
		return out, errors.New("children: no bitmap")
	}
	bits, p := p[:2], p[2:]
	for i := range out {
		if bits[i/8]&(0x80>>(i%8)) == 0 {
			continue
		}
		if len(p) < 4 {
			return out, errors.New("children: cut short")
		}
		out[i] = child{full: true, fp: binary.BigEndian.Uint32(p)}
		p = p[4:]
	}
	if len(p) != 0 {
		return out, errors.New("children: trailing bytes")
	}
	return out, nil
}

// checkRecon validates what version 2 messages' types cannot express.
func checkRecon(m any) error {
	switch m := m.(type) {
	case *reconHelloMsg:
		if err := crdt.ValidateName("database", m.DB); err != nil {
			return err
		}
		if len(m.Salt) != saltBytes {
			return fmt.Errorf("salt of %d bytes, want %d", len(m.Salt), saltBytes)
		}
	case *reconMsg:
		if n := len(m.Split) + len(m.Leaves); n > MaxReconRanges {
			return fmt.Errorf("%d ranges exceed %d", n, MaxReconRanges)
		}
		for _, r := range m.Split {
			if rg := (Range{Depth: r.Depth, Path: r.Path}); !rg.valid() || r.Depth >= MaxReconDepth {
				return fmt.Errorf("range %d/%x cannot be split", r.Depth, r.Path)
			}
		}
		for _, l := range m.Leaves {
			if !(Range{Depth: l.Depth, Path: l.Path}).valid() {
				return fmt.Errorf("range %d/%x invalid", l.Depth, l.Path)
			}
			if len(l.Hashes)%shortHashBytes != 0 || len(l.Hashes) > MaxLeafItems*shortHashBytes {
				return fmt.Errorf("leaf of %d hash bytes", len(l.Hashes))
			}
		}
	case *diffMsg:
		for _, s := range m.Splits {
			if rg := (Range{Depth: s.Depth, Path: s.Path}); !rg.valid() || s.Depth >= MaxReconDepth {
				return fmt.Errorf("split of range %d/%x", s.Depth, s.Path)
			}
			if _, err := unpackChildren(s.Children); err != nil {
				return err
			}
		}
		for _, d := range m.Docs {
			if err := crdt.ValidateName("doc id", d.Doc); err != nil {
				return err
			}
			if len(d.Heads) == 0 || len(d.Heads) > MaxEntryHeads {
				return fmt.Errorf("document %q with %d heads", d.Doc, len(d.Heads))
			}
		}
	}
	return nil
}
