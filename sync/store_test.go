package sync

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// memStore is an in-memory Store that really stores changes: a map of
// bodies and a feed. It checks signatures and parents-first order and
// reports *MissingError like node does.
type memStore struct {
	key    crypto.PrivKey
	author []byte

	mu struct {
		sync.Mutex
		dbs   map[string]*memDB
		cps   map[string]uint64 // db + "\x00" + peer
		clock int64
	}

	// Test hooks, set before use; nil means none.
	onApply      func(ctx context.Context, db string, changes []*crdt.Change) error
	onChanges    func(db string, ids []crdt.ID, bodies [][]byte) [][]byte
	onCheckpoint func()
	// onAuthorize replaces the read rule (nil: every peer may read).
	onAuthorize func(db string, remote peer.ID) error
}

type memDB struct {
	bodies map[crdt.ID][]byte
	docs   map[crdt.ID]string
	heads  map[string][]crdt.ID // doc -> heads
	feed   []Entry              // feed[i].Seq == i+1
}

func newMemStore(t testing.TB) *memStore {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	s := &memStore{key: k, author: []byte(id)}
	s.mu.dbs = map[string]*memDB{}
	s.mu.cps = map[string]uint64{}
	return s
}

// createDB makes an empty database.
func (s *memStore) createDB(db string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dbLocked(db)
}

func (s *memStore) dbLocked(db string) *memDB {
	d := s.mu.dbs[db]
	if d == nil {
		d = &memDB{bodies: map[crdt.ID][]byte{}, docs: map[crdt.ID]string{}, heads: map[string][]crdt.ID{}}
		s.mu.dbs[db] = d
	}
	return d
}

// put writes a change to doc on its current heads and returns it.
func (s *memStore) put(t fataler, db, doc string, value any) *crdt.Change {
	t.Helper()
	s.mu.Lock()
	parents := slices.Clone(s.dbLocked(db).heads[doc])
	s.mu.clock++
	wall := s.mu.clock
	s.mu.Unlock()
	c := s.seal(t, db, doc, parents, wall, value)
	s.insert(db, c)
	return c
}

// seal builds and signs a change without storing it.
func (s *memStore) seal(t fataler, db, doc string, parents []crdt.ID, wall int64, value any) *crdt.Change {
	t.Helper()
	c := &crdt.Change{
		DB: db, Doc: doc, Parents: parents,
		Clock:  crdt.HLC{Wall: wall},
		Author: s.author,
		Ops:    []crdt.Op{{Kind: crdt.OpSet, Path: "/v", Value: value}},
	}
	if err := c.Seal(s.key); err != nil {
		t.Fatal(err)
	}
	return c
}

// insert stores c at the end of the feed, whatever its parents (tests use
// it to build feeds that break causal order).
func (s *memStore) insert(db string, c *crdt.Change) {
	enc, err := c.Encode()
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.insertLocked(s.dbLocked(db), c, enc)
}

func (s *memStore) insertLocked(d *memDB, c *crdt.Change, enc []byte) {
	if _, ok := d.bodies[c.ID()]; ok {
		return
	}
	d.bodies[c.ID()] = enc
	d.docs[c.ID()] = c.Doc
	d.feed = append(d.feed, Entry{Seq: uint64(len(d.feed) + 1), ID: c.ID(), Doc: c.Doc})
	heads := slices.DeleteFunc(d.heads[c.Doc], func(h crdt.ID) bool { return slices.Contains(c.Parents, h) })
	d.heads[c.Doc] = append(heads, c.ID())
	s.mu.clock = max(s.mu.clock, c.Clock.Wall)
}

// ids returns the set of change ids of db, sorted.
func (s *memStore) ids(db string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if d := s.mu.dbs[db]; d != nil {
		for id := range d.bodies {
			out = append(out, id.String())
		}
	}
	slices.Sort(out)
	return out
}

func (s *memStore) count(db string) int { return len(s.ids(db)) }

func (s *memStore) Feed(ctx context.Context, db string, since uint64, limit int, f *Filter) ([]Entry, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.mu.dbs[db]
	if d == nil {
		return nil, 0, ErrNoDB
	}
	last := since
	scanned := 0
	var out []Entry
	for i := int(since); i < len(d.feed) && len(out) < limit && scanned < 3*limit; i++ {
		e := d.feed[i]
		last = e.Seq
		scanned++
		if f != nil && !strings.HasPrefix(e.Doc, f.IDPrefix) {
			continue
		}
		out = append(out, e)
	}
	return out, last, nil
}

func (s *memStore) Has(ctx context.Context, db string, ids []crdt.ID) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.mu.dbs[db]
	out := make([]bool, len(ids))
	for i, id := range ids {
		if d != nil {
			_, out[i] = d.bodies[id]
		}
	}
	return out, nil
}

func (s *memStore) Changes(ctx context.Context, db string, ids []crdt.ID) ([][]byte, error) {
	s.mu.Lock()
	d := s.mu.dbs[db]
	if d == nil {
		s.mu.Unlock()
		return nil, ErrNoDB
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		b, ok := d.bodies[id]
		if !ok {
			s.mu.Unlock()
			return nil, fmt.Errorf("change %s: %w", id, ErrNotFound)
		}
		out[i] = b
	}
	s.mu.Unlock()
	if s.onChanges != nil {
		out = s.onChanges(db, ids, out)
	}
	return out, nil
}

func verifyChange(author, data, sig []byte) error {
	id, err := peer.IDFromBytes(author)
	if err != nil {
		return err
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(data, sig)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("signature does not verify")
	}
	return nil
}

func (s *memStore) Apply(ctx context.Context, db string, from peer.ID, changes []*crdt.Change) (int, error) {
	if s.onApply != nil {
		if err := s.onApply(ctx, db, changes); err != nil {
			return 0, err
		}
	}
	for _, c := range changes {
		if c.DB != db {
			return 0, fmt.Errorf("change for %q applied to %q", c.DB, db)
		}
		if err := c.Verify(verifyChange); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dbLocked(db)
	n := 0
	for _, c := range changes {
		if _, ok := d.bodies[c.ID()]; ok {
			continue
		}
		var missing []crdt.ID
		for _, p := range c.Parents {
			if _, ok := d.bodies[p]; !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return n, &MissingError{IDs: missing}
		}
		enc, err := c.Encode()
		if err != nil {
			return n, err
		}
		s.insertLocked(d, c, enc)
		n++
	}
	return n, nil
}

func (s *memStore) Checkpoint(ctx context.Context, db string, remote peer.ID) (uint64, error) {
	if s.onCheckpoint != nil {
		s.onCheckpoint()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.cps[db+"\x00"+string(remote)], nil
}

func (s *memStore) SetCheckpoint(ctx context.Context, db string, remote peer.ID, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.cps[db+"\x00"+string(remote)] = seq
	return nil
}

func (s *memStore) Databases(ctx context.Context) ([]Replicated, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Replicated
	for name := range s.mu.dbs {
		out = append(out, Replicated{DB: name})
	}
	slices.SortFunc(out, func(a, b Replicated) int { return strings.Compare(a.DB, b.DB) })
	return out, nil
}

// AuthorizeRead lets every peer read every database unless a test set
// onAuthorize: the protocol's tests are not about access control.
func (s *memStore) AuthorizeRead(ctx context.Context, db string, remote peer.ID) error {
	if s.onAuthorize != nil {
		return s.onAuthorize(db, remote)
	}
	return nil
}

var _ Store = (*memStore)(nil)

// fataler is the part of testing.TB (and rapid.T) the store helpers use.
type fataler interface {
	Helper()
	Fatal(args ...any)
}
