package layout

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/barrel-db/barrel/crdt"
)

// TestKeysPinned pins the bytes of every key of format 2: a change here is
// a change of store format (raise Format and migrate), never an accident.
func TestKeysPinned(t *testing.T) {
	k := NewKeys(1)
	var id crdt.ID
	id[0] = 0xab
	var dg [32]byte
	dg[0] = 0xcd
	var u [16]byte
	u[0] = 0xef
	zeros := func(n int) string { return hex.EncodeToString(make([]byte, n)) }
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"CatalogKey", CatalogKey("db"), "006364620001"},
		{"NextDBKey", NextDBKey, hex.EncodeToString([]byte("\x00nnext_db"))},
		{"FormatKey", FormatKey, hex.EncodeToString([]byte("\x00nformat"))},
		{"Change", k.Change(id), "64000000000000000163ab" + zeros(31)},
		{"Feed", k.Feed(7), "640000000000000001660000000000000007"},
		{"Doc", k.Doc("a"), "64000000000000000173610001"},
		{"HistoryEntry", k.HistoryEntry("a", 7), "640000000000000001726100010000000000000007"},
		{"Fold", k.Fold("a"), "6400000000000000017a610001"},
		{"Index", k.Index(), "64000000000000000169"},
		{"Meta", k.Meta(MetaSeq), "6400000000000000016d736571"},
		{"Checkpoint", k.Checkpoint([]byte("p")), "6400000000000000016b70"},
		{"SnapProgress", k.SnapProgress([]byte("p")), "6400000000000000017170"},
		{"Pending", k.Pending("t", id), "64000000000000000170740001ab" + zeros(31)},
		{"Rejected", k.Rejected(id), "64000000000000000178ab" + zeros(31)},
		{"BlobMeta", k.BlobMeta(dg), "64000000000000000142cd" + zeros(31)},
		{"BlobWant", k.BlobWant(dg), "64000000000000000157cd" + zeros(31)},
		{"BlobChunk", k.BlobChunk(u, 2), "64000000000000000162ef" + zeros(15) + "0000000000000002"},
		{"Local", k.Local("c/x"), "6400000000000000016c632f78"},
		{"Group", k.Group(7), "640000000000000001670000000000000007"},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestKeysUnderTheirPrefixes: every key lies under the prefix a scan of its
// kind uses and inside the database's range, and no two kinds share one.
func TestKeysUnderTheirPrefixes(t *testing.T) {
	k := NewKeys(42)
	var id crdt.ID
	var dg [32]byte
	var u [16]byte
	cases := []struct {
		name        string
		key, prefix []byte
	}{
		{"feed", k.Feed(1), k.Feeds()},
		{"doc", k.Doc("x"), k.Docs()},
		{"history", k.HistoryEntry("x", 1), k.History("x")},
		{"histories", k.History("x"), k.Histories()},
		{"fold", k.Fold("x"), k.Folds()},
		{"checkpoint", k.Checkpoint([]byte("p")), k.Checkpoints()},
		{"pending", k.Pending("t", id), k.PendingTx("t")},
		{"pendings", k.PendingTx("t"), k.Pendings()},
		{"rejected", k.Rejected(id), k.Rejections()},
		{"blob meta", k.BlobMeta(dg), k.BlobMetas()},
		{"blob want", k.BlobWant(dg), k.BlobWants()},
		{"blob chunk", k.BlobChunk(u, 1), k.BlobChunks(u)},
		{"blob chunks", k.BlobChunks(u), k.AllBlobChunks()},
		{"local", k.Local("x"), k.Locals()},
	}
	lo, hi := k.All()
	for _, tc := range cases {
		if !bytes.HasPrefix(tc.key, tc.prefix) {
			t.Errorf("%s: key %x not under prefix %x", tc.name, tc.key, tc.prefix)
		}
		if bytes.Compare(tc.key, lo) < 0 || bytes.Compare(tc.key, hi) >= 0 {
			t.Errorf("%s: key %x outside the database's range", tc.name, tc.key)
		}
		other := NewKeys(43)
		if olo, ohi := other.All(); bytes.Compare(tc.key, olo) >= 0 && bytes.Compare(tc.key, ohi) < 0 {
			t.Errorf("%s: key %x inside another database's range", tc.name, tc.key)
		}
	}
	// A document id that is a prefix of another does not hold its history.
	if bytes.HasPrefix(k.HistoryEntry("ab", 1), k.History("a")) {
		t.Error(`history of "ab" lies under the history prefix of "a"`)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	seq, st, err := ParseDocRecord(DocRecord(9, []byte("state")))
	if err != nil || seq != 9 || string(st) != "state" {
		t.Fatalf("doc record: %d %q %v", seq, st, err)
	}
	if _, _, err := ParseDocRecord([]byte{1, 2, 3}); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("short doc record: %v, want ErrCorruptRecord", err)
	}
	if v, err := ParseUint64(Uint64(1 << 40)); err != nil || v != 1<<40 {
		t.Fatalf("uint64: %d %v", v, err)
	}
	if _, err := ParseUint64([]byte{1}); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("short uint64: %v, want ErrCorruptRecord", err)
	}
	var x crdt.ID
	x[3] = 7
	if got, n, err := ParseDigest(Digest(x, 5)); err != nil || got != x || n != 5 {
		t.Fatalf("digest: %x %d %v", got, n, err)
	}
	if _, _, err := ParseDigest(make([]byte, 39)); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("short digest: %v, want ErrCorruptRecord", err)
	}
	if f, err := ParseFormat(FormatValue(Format)); err != nil || f != Format {
		t.Fatalf("format: %d %v", f, err)
	}
}

// TestFeedEntryPinned pins the CBOR of a feed entry (an array, in field
// order), which peers' checkpoints and the changes feed read back.
func TestFeedEntryPinned(t *testing.T) {
	var rev crdt.ID
	rev[0] = 1
	b, err := crdt.Marshal(&FeedEntry{Doc: "a", Rev: rev, Deleted: true, From: []byte{9}})
	if err != nil {
		t.Fatal(err)
	}
	want := "846161" + "5820" + "01" + hex.EncodeToString(make([]byte, 31)) + "f5" + "4109"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("feed entry: %s, want %s", got, want)
	}
	var back FeedEntry
	if err := crdt.Unmarshal(b, &back); err != nil || back.Doc != "a" || back.Rev != rev || !back.Deleted || !bytes.Equal(back.From, []byte{9}) {
		t.Fatalf("feed entry back: %+v %v", back, err)
	}
}
