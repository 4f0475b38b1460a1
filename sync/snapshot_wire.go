package sync

import (
	"fmt"

	"github.com/barrel-db/barrel/crdt"
)

// SnapshotProtocolID is the libp2p protocol that carries a database's
// current state instead of its history (docs/sync-protocol.md,
// "Snapshots"), a sibling of ProtocolID with the same frames and a message
// space of its own. A client uses it when a pull is refused with
// ErrSnapshotNeeded.
const SnapshotProtocolID = "/barrel/snapshot/1.0.0"

// SnapshotVersion is the message-level version a client sends.
const SnapshotVersion = 1

// Snapshot message types. Error keeps the sync protocol's number.
const (
	msgSnapHello msgType = 1 // client: send the snapshot, documents after a cursor
	msgSnapHead  msgType = 2 // server: the feed position and purge clock of the snapshot
	msgSnapDocs  msgType = 3 // server: the next documents, in id order
)

// ACLDoc is the id of a database's access-control document: a snapshot
// sends it first, so that the receiver checks the sender against it before
// installing anything.
const ACLDoc = "_acl"

// maxSnapAuthors bounds the author clocks of one snapshot document.
const maxSnapAuthors = 1024

type snapHelloMsg struct {
	_        struct{} `cbor:",toarray"`
	Version  uint32
	DB       string
	After    string // document id cursor: "" from the start
	Filter   *Filter
	MaxFrame uint32
}

// SnapshotHead says where a snapshot stands: the server's feed sequence
// when it was taken (the client's checkpoint once it is installed) and the
// latest clock of a tombstone the server purged.
type SnapshotHead struct {
	_      struct{} `cbor:",toarray"`
	Seq    uint64
	Purged crdt.HLC
}

type snapDocsMsg struct {
	_    struct{} `cbor:",toarray"`
	Docs []SnapshotDoc
	Done bool // no documents follow
}

// SnapshotDoc is one document of a snapshot: the base state its history
// was folded into, if any (crdt.FoldHistory), and the changes kept after
// it, parents first. A document whose history is whole has no base and
// all its changes.
type SnapshotDoc struct {
	_       struct{}      `cbor:",toarray"`
	Doc     string        // document id
	Base    []byte        // crdt.State encoding; empty: no base
	Clock   crdt.HLC      // the latest clock folded into Base
	Authors []AuthorClock // per author, the latest clock of theirs folded into Base
	Changes [][]byte      // kept changes, encoded and signed, parents first
}

// AuthorClock is the latest clock of one author's changes folded into a
// base: that author's changes up to it are in the base.
type AuthorClock struct {
	_      struct{} `cbor:",toarray"`
	Author []byte   // peer id bytes
	Clock  crdt.HLC
}

// Size is the bytes a document adds to a SnapDocs frame, about.
func (d *SnapshotDoc) Size() int {
	n := len(d.Doc) + len(d.Base) + 64 + len(d.Authors)*64
	for _, c := range d.Changes {
		n += len(c) + 8
	}
	return n
}

// decodeSnapMessage decodes and checks a snapshot frame's payload: one of
// *snapHelloMsg, *SnapshotHead, *snapDocsMsg, *errorMsg, or an error
// wrapping ErrBadRequest. It never panics on any input.
func decodeSnapMessage(p []byte) (any, error) {
	return decodeIn(p, "snapshot ", func(t msgType) any {
		switch t {
		case msgSnapHello:
			return new(snapHelloMsg)
		case msgSnapHead:
			return new(SnapshotHead)
		case msgSnapDocs:
			return new(snapDocsMsg)
		case msgError:
			return new(errorMsg)
		}
		return nil
	}, checkSnap)
}

func checkSnap(m any) error {
	switch m := m.(type) {
	case *snapHelloMsg:
		if err := crdt.ValidateName("database", m.DB); err != nil {
			return err
		}
		if m.After != "" {
			if err := crdt.ValidateName("document cursor", m.After); err != nil {
				return err
			}
		}
		return checkFilter(m.Filter)
	case *snapDocsMsg:
		prev := ""
		for i, d := range m.Docs {
			if err := crdt.ValidateName("document", d.Doc); err != nil {
				return fmt.Errorf("doc %d: %v", i, err)
			}
			if i == 0 && d.Doc == ACLDoc {
				continue // the access list comes first, out of order
			}
			if d.Doc <= prev || d.Doc == ACLDoc {
				return fmt.Errorf("doc %d: %q out of order", i, d.Doc)
			}
			prev = d.Doc
			if len(d.Authors) > maxSnapAuthors {
				return fmt.Errorf("doc %q: %d author clocks", d.Doc, len(d.Authors))
			}
			if len(d.Base) == 0 && len(d.Changes) == 0 {
				return fmt.Errorf("doc %q: neither base nor changes", d.Doc)
			}
		}
	case *errorMsg:
		return check(m)
	}
	return nil
}
