package changes

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
)

func openStore(t *testing.T) *datastore.Store {
	t.Helper()
	s, err := datastore.Open(t.TempDir(), datastore.Config{ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// signed returns n changes of one author signed as one group (n > 1: a
// Merkle tree of depth ceil(log2 n)).
func signed(t *testing.T, n int, prefix string) []*crdt.Change {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := peer.IDFromPrivateKey(key)
	cs := make([]*crdt.Change, n)
	for i := range cs {
		cs[i] = &crdt.Change{DB: "db", Doc: fmt.Sprintf("%s%d", prefix, i), Author: []byte(pid),
			Clock: crdt.HLC{Wall: int64(i + 1)}, Ops: []crdt.Op{{Kind: crdt.OpSet, Path: "/v", Value: int64(i)}}}
	}
	if err := crdt.SealGroup(cs, key); err != nil {
		t.Fatal(err)
	}
	return cs
}

func stored(t *testing.T, cs []*crdt.Change, seq0 uint64) []Stored {
	t.Helper()
	out := make([]Stored, len(cs))
	for i, c := range cs {
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = Stored{Change: c, Enc: enc, Seq: seq0 + uint64(i)}
	}
	return out
}

func write(t *testing.T, s *datastore.Store, keys layout.Keys, st []Stored) {
	t.Helper()
	b := s.NewWriteBatch()
	defer b.Close()
	Write(b, keys, st)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// kinds counts the change records of each kind and the group records.
func kinds(t *testing.T, s *datastore.Store, keys layout.Keys) (whole, member, groups int) {
	t.Helper()
	lo, hi := keys.All()
	err := s.Range(lo, hi, false, func(k, v []byte) (bool, error) {
		switch k[len(lo)] {
		case 'g':
			groups++
		case 'c':
			cr, err := layout.ParseChangeRecord(v)
			if err != nil {
				return false, err
			}
			if cr.Whole != nil {
				whole++
			} else {
				member++
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return whole, member, groups
}

// TestReadBackSigned: whatever kind of record a change is stored as, a
// reader gets its signed encoding back byte for byte, and the change
// verifies with its author's key.
func TestReadBackSigned(t *testing.T) {
	s, keys := openStore(t), layout.NewKeys(1)
	full := signed(t, 37, "a")    // a group of 37 (depth 6, padded), all stored: members
	partial := signed(t, 20, "b") // a group of which only 12 are stored: whole
	single := signed(t, 1, "c")   // signed alone, no proof: whole
	st := append(stored(t, full, 1), stored(t, partial[:12], 100)...)
	st = append(st, stored(t, single, 200)...)
	write(t, s, keys, st)

	whole, member, groups := kinds(t, s, keys)
	if whole != 13 || member != 37 || groups != 1 {
		t.Fatalf("records: %d whole, %d members, %d groups; want 13, 37, 1", whole, member, groups)
	}
	r := NewReader(keys, s.Get)
	for _, x := range st {
		got, err := r.Encoded(x.Change.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, x.Enc) {
			t.Fatalf("change %s: read back %x, stored %x", x.Change.Doc, got, x.Enc)
		}
		c, err := r.Change(x.Change.ID())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(verify); err != nil {
			t.Fatalf("change %s read back does not verify: %v", c.Doc, err)
		}
	}
	if _, err := r.Encoded(crdt.ID{1}); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("absent change: %v, want ErrNotFound", err)
	}
}

func verify(author, data, sig []byte) error {
	id, err := peer.IDFromBytes(author)
	if err != nil {
		return err
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(data, sig)
	if err == nil && !ok {
		err = errors.New("bad signature")
	}
	return err
}

// TestGroupGoesWithItsLastMember: dropping members keeps their group's
// record while any member is held, and drops it with the last one, also
// when the members go in different batches.
func TestGroupGoesWithItsLastMember(t *testing.T) {
	s, keys := openStore(t), layout.NewKeys(1)
	cs := signed(t, 8, "a")
	write(t, s, keys, stored(t, cs, 1))
	drop := func(ids ...*crdt.Change) {
		t.Helper()
		b := s.NewWriteBatch()
		defer b.Close()
		d := NewDropper(s, keys)
		for _, c := range ids {
			if err := d.Drop(b, c.ID()); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Finish(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	drop(cs[:5]...)
	if _, member, groups := kinds(t, s, keys); member != 3 || groups != 1 {
		t.Fatalf("after dropping 5 of 8: %d members, %d groups; want 3, 1", member, groups)
	}
	r := NewReader(keys, s.Get)
	if _, err := r.Encoded(cs[6].ID()); err != nil {
		t.Fatalf("a member left: %v", err)
	}
	drop(cs[5:]...)
	if whole, member, groups := kinds(t, s, keys); whole+member+groups != 0 {
		t.Fatalf("after dropping all: %d whole, %d members, %d groups; want none", whole, member, groups)
	}
}

// TestCorruptMemberRecord: a member whose group record is missing, or
// whose leaf names another change, is reported corrupt, not absent.
func TestCorruptMemberRecord(t *testing.T) {
	s, keys := openStore(t), layout.NewKeys(1)
	cs := signed(t, 4, "a")
	write(t, s, keys, stored(t, cs, 1))
	v, err := s.Get(keys.Change(cs[0].ID()))
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewWriteBatch()
	b.Set(keys.Change(cs[1].ID()), v) // leaf 0's record under leaf 1's id
	b.Delete(keys.Group(1))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := NewReader(keys, s.Get).Encoded(cs[2].ID()); !errors.Is(err, layout.ErrCorruptRecord) {
		t.Fatalf("member without its group: %v, want ErrCorruptRecord", err)
	}
	for _, bad := range [][]byte{{0x00}, {0x00, 0x01}, {0x00, 0x01, 0xff, 0xff, 0xff}, {}} {
		if _, err := layout.ParseChangeRecord(bad); !errors.Is(err, layout.ErrCorruptRecord) {
			t.Fatalf("record %x: %v, want ErrCorruptRecord", bad, err)
		}
	}
}

// FuzzParseRecords: the record decoders never panic on arbitrary bytes.
func FuzzParseRecords(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x00, 0x8a})
	f.Add([]byte{0x83, 0x40, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		if cr, err := layout.ParseChangeRecord(v); err == nil && cr.Whole == nil {
			_, _ = cr.Signed([]byte{1}, []crdt.ID{{}})
		}
		if g, err := layout.ParseGroupRecord(v); err == nil {
			crdt.NewTree(g.Leaves, int(g.Depth)).Proof(0)
		}
	})
}
