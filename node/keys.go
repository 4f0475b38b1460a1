package node

import (
	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/datastore/tuple"
)

// Key layout. Node-wide keys start with 0x00; a database's keys start with
// 'd' and its 8-byte id, so dropping a database is one range delete and a
// database recreated under the same name starts empty.
//
//	0x00 'c' name            -> catalog entry (dbMeta, CBOR)
//	0x00 'n' "next_db"       -> next database id
//	0x00 'n' "format"        -> store format (format.go)
//	'd' dbid 'c' changeID    -> encoded change (signed, canonical CBOR)
//	'd' dbid 'f' seq         -> feed entry: the change stored at local seq
//	'd' dbid 's' docID       -> document record (seq + crdt.State)
//	'd' dbid 'r' docID seq   -> change id: the document's history in local order
//	'd' dbid 'i' path value docID -> nil: the automatic index
//	'd' dbid 'm' name        -> database metadata (seq, doc count, hlc, digest)
//	'd' dbid 'k' peerID      -> sync checkpoint: the peer's feed seq pulled up to
//	'd' dbid 'p' txID changeID -> a received change whose transaction is incomplete
//	'd' dbid 'x' changeID    -> reason: a received change rejected by access control
//	'd' dbid 'B' digest      -> blob metadata (length, chunks, upload id): the blob is complete
//	'd' dbid 'b' uploadID chunk -> one chunk (ChunkBytes) of a blob's content
//	'd' dbid 'z' docID       -> fold record: the base state history was folded into
//	'd' dbid 'q' peerID      -> progress of an interrupted snapshot install from that peer
//	'd' dbid 'W' digest      -> a blob wanted from peers: length, transfer progress (upload id, chunks, hash state)
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
)

func catalogKey(name string) []byte { return tuple.AppendString([]byte{0, 'c'}, name) }

var (
	catalogPrefix = []byte{0, 'c'}
	nextDBKey     = []byte("\x00nnext_db")
)

type keys struct{ prefix []byte } // 'd' + dbid

func newKeys(dbID uint64) keys { return keys{prefix: tuple.AppendUint64([]byte{'d'}, dbID)} }

func (k keys) sub(tag byte) []byte {
	b := make([]byte, 0, len(k.prefix)+48)
	return append(append(b, k.prefix...), tag)
}

func (k keys) change(id crdt.ID) []byte   { return append(k.sub(tagChange), id[:]...) }
func (k keys) feed(seq uint64) []byte     { return tuple.AppendUint64(k.sub(tagFeed), seq) }
func (k keys) doc(id string) []byte       { return tuple.AppendString(k.sub(tagDoc), id) }
func (k keys) history(id string) []byte   { return tuple.AppendString(k.sub(tagHistory), id) }
func (k keys) fold(id string) []byte      { return tuple.AppendString(k.sub(tagFold), id) }
func (k keys) index() []byte              { return k.sub(tagIndex) }
func (k keys) meta(name string) []byte    { return append(k.sub(tagMeta), name...) }
func (k keys) checkpoint(p []byte) []byte { return append(k.sub(tagCheckpoint), p...) }
func (k keys) snapProgress(p []byte) []byte {
	return append(k.sub(tagSnapshot), p...)
}
func (k keys) pending(tx string, id crdt.ID) []byte {
	return append(tuple.AppendString(k.sub(tagPending), tx), id[:]...)
}
func (k keys) rejected(id crdt.ID) []byte { return append(k.sub(tagRejected), id[:]...) }
func (k keys) blobMeta(d digest) []byte   { return append(k.sub(tagBlobMeta), d[:]...) }
func (k keys) blobWant(d digest) []byte   { return append(k.sub(tagBlobWant), d[:]...) }
func (k keys) blobChunks(u uploadID) []byte {
	return append(k.sub(tagBlobChunk), u[:]...)
}
func (k keys) blobChunk(u uploadID, i uint64) []byte { return tuple.AppendUint64(k.blobChunks(u), i) }
func (k keys) all() (lo, hi []byte)                  { return k.prefix, datastore.PrefixEnd(k.prefix) }
