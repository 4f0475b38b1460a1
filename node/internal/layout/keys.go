package layout

import (
	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
)

// Key layout. Node-wide keys start with 0x00; a database's keys start with
// 'd' and its 8-byte id, so dropping a database is one range delete and a
// database recreated under the same name starts empty.
//
//	0x00 'c' name            -> catalog entry (node's dbMeta, CBOR)
//	0x00 'n' "next_db"       -> next database id
//	0x00 'n' "format"        -> store format (format.go)
//	'd' dbid 'c' changeID    -> change record (ChangeRecord: the signed encoding, or a member of a group)
//	'd' dbid 'g' group       -> a signing group's record (GroupRecord): signature and leaves, once for its members
//	'd' dbid 'f' seq         -> feed entry: the change stored at local seq
//	'd' dbid 's' docID       -> document record (seq + crdt.State)
//	'd' dbid 'r' docID seq   -> nothing: the document's history in local order (the feed entry at seq names the change; format 1 wrote its id here)
//	'd' dbid 'i' path value docID -> nil: the automatic index
//	'd' dbid 'm' name        -> database metadata (seq, doc count, hlc, digest)
//	'd' dbid 'k' peerID      -> sync checkpoint: the peer's feed seq pulled up to
//	'd' dbid 'p' txID changeID -> a received change whose transaction is incomplete
//	'd' dbid 'x' changeID    -> reason: a received change rejected by access control
//	'd' dbid 'B' digest      -> blob metadata (length, chunks, upload id): the blob is complete
//	'd' dbid 'b' uploadID chunk -> one chunk of a blob's content
//	'd' dbid 'z' docID       -> fold record: the base state history was folded into
//	'd' dbid 'q' peerID      -> progress of an interrupted snapshot install from that peer
//	'd' dbid 'W' digest      -> a blob wanted from peers: length, transfer progress (upload id, chunks, hash state)
//	'd' dbid 'l' key         -> a local record: kept for a client of this node (couch/), never replicated
//
// A record kind added here that older binaries never read (as 'l') is not
// a change of Format: they ignore it, and it is dropped with its database.
const (
	tagCheckpoint = 'k'
	tagPending    = 'p'
	tagChange     = 'c'
	tagFeed       = 'f'
	tagDoc        = 's'
	tagHistory    = 'r'
	tagIndex      = 'i'
	tagMeta       = 'm'
	tagRejected   = 'x'
	tagBlobMeta   = 'B'
	tagBlobChunk  = 'b'
	tagFold       = 'z'
	tagSnapshot   = 'q'
	tagBlobWant   = 'W'
	tagLocal      = 'l'
	tagGroup      = 'g'
)

// Node-wide keys.
var (
	// CatalogPrefix starts every catalog key.
	CatalogPrefix = []byte{0, 'c'}
	// NextDBKey holds the id the next database created gets (8 bytes).
	NextDBKey = []byte("\x00nnext_db")
)

// CatalogKey is the key of database name's catalog entry.
func CatalogKey(name string) []byte { return tuple.AppendString([]byte{0, 'c'}, name) }

// CatalogName is the database name a catalog key names.
func CatalogName(key []byte) (string, error) {
	name, _, err := tuple.ReadString(key[len(CatalogPrefix):])
	return name, err
}

// Keys builds the keys of one database.
type Keys struct{ prefix []byte } // 'd' + dbid

// NewKeys returns the keys of the database with id dbID.
func NewKeys(dbID uint64) Keys { return Keys{prefix: tuple.AppendUint64([]byte{'d'}, dbID)} }

func (k Keys) sub(tag byte) []byte {
	b := make([]byte, 0, len(k.prefix)+48)
	return append(append(b, k.prefix...), tag)
}

// All is the range of every key of the database.
func (k Keys) All() (lo, hi []byte) { return k.prefix, datastore.PrefixEnd(k.prefix) }

// Change is the key of a stored change.
func (k Keys) Change(id crdt.ID) []byte { return append(k.sub(tagChange), id[:]...) }

// Group is the key of a signing group's record (GroupRecord); group is
// the local seq of the first of its changes the database stored.
func (k Keys) Group(group uint64) []byte { return tuple.AppendUint64(k.sub(tagGroup), group) }

// Feed is the key of the feed entry at seq; Feeds the prefix of them all.
func (k Keys) Feed(seq uint64) []byte { return tuple.AppendUint64(k.sub(tagFeed), seq) }
func (k Keys) Feeds() []byte          { return k.sub(tagFeed) }

// Doc is the key of a document record; Docs the prefix of them all, in
// document id order.
func (k Keys) Doc(id string) []byte { return tuple.AppendString(k.sub(tagDoc), id) }
func (k Keys) Docs() []byte         { return k.sub(tagDoc) }

// History is the prefix of a document's history entries, HistoryEntry the
// one at local seq, Histories the prefix of every document's.
func (k Keys) History(id string) []byte { return tuple.AppendString(k.sub(tagHistory), id) }
func (k Keys) HistoryEntry(id string, seq uint64) []byte {
	return tuple.AppendUint64(k.History(id), seq)
}
func (k Keys) Histories() []byte { return k.sub(tagHistory) }

// Fold is the key of a document's fold record; Folds the prefix of them all.
func (k Keys) Fold(id string) []byte { return tuple.AppendString(k.sub(tagFold), id) }
func (k Keys) Folds() []byte         { return k.sub(tagFold) }

// Index is the prefix of the automatic index.
func (k Keys) Index() []byte { return k.sub(tagIndex) }

// Meta is the key of the database metadata entry name (see the Meta* names).
func (k Keys) Meta(name string) []byte { return append(k.sub(tagMeta), name...) }

// Checkpoint is the key of the sync checkpoint of a peer (its id bytes);
// Checkpoints the prefix of them all.
func (k Keys) Checkpoint(p []byte) []byte { return append(k.sub(tagCheckpoint), p...) }
func (k Keys) Checkpoints() []byte        { return k.sub(tagCheckpoint) }

// SnapProgress is the key of an interrupted snapshot install from a peer.
func (k Keys) SnapProgress(p []byte) []byte { return append(k.sub(tagSnapshot), p...) }

// Pending is the key of a received change of an incomplete transaction;
// PendingTx the prefix of one transaction's, Pendings of them all.
func (k Keys) Pending(tx string, id crdt.ID) []byte { return append(k.PendingTx(tx), id[:]...) }
func (k Keys) PendingTx(tx string) []byte           { return tuple.AppendString(k.sub(tagPending), tx) }
func (k Keys) Pendings() []byte                     { return k.sub(tagPending) }

// Rejected is the key of a received change refused by access control;
// Rejections the prefix of them all.
func (k Keys) Rejected(id crdt.ID) []byte { return append(k.sub(tagRejected), id[:]...) }
func (k Keys) Rejections() []byte         { return k.sub(tagRejected) }

// Local is the key of a local record (node.DB.PutLocal); Locals the
// prefix of them all.
func (k Keys) Local(key string) []byte { return append(k.sub(tagLocal), key...) }
func (k Keys) Locals() []byte          { return k.sub(tagLocal) }

// BlobMeta is the key of a complete blob's metadata (d: its sha-256);
// BlobMetas the prefix of them all.
func (k Keys) BlobMeta(d [32]byte) []byte { return append(k.sub(tagBlobMeta), d[:]...) }
func (k Keys) BlobMetas() []byte          { return k.sub(tagBlobMeta) }

// BlobWant is the key of a blob wanted from peers; BlobWants the prefix of
// them all.
func (k Keys) BlobWant(d [32]byte) []byte { return append(k.sub(tagBlobWant), d[:]...) }
func (k Keys) BlobWants() []byte          { return k.sub(tagBlobWant) }

// BlobChunks is the prefix of one upload's chunks, BlobChunk chunk i,
// AllBlobChunks the prefix of every upload's.
func (k Keys) BlobChunks(u [16]byte) []byte { return append(k.sub(tagBlobChunk), u[:]...) }
func (k Keys) BlobChunk(u [16]byte, i uint64) []byte {
	return tuple.AppendUint64(k.BlobChunks(u), i)
}
func (k Keys) AllBlobChunks() []byte { return k.sub(tagBlobChunk) }
