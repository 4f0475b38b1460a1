package sync

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"pgregory.net/rapid"

	"github.com/barrel-db/barrel/crdt"
)

// swapStore lets one long-lived server serve a fresh store per property
// test run.
type swapStore struct{ p atomic.Pointer[memStore] }

func (s *swapStore) st() *memStore { return s.p.Load() }

func (s *swapStore) Feed(ctx context.Context, db string, since uint64, limit int, f *Filter) ([]Entry, uint64, error) {
	return s.st().Feed(ctx, db, since, limit, f)
}
func (s *swapStore) Has(ctx context.Context, db string, ids []crdt.ID) ([]bool, error) {
	return s.st().Has(ctx, db, ids)
}
func (s *swapStore) Changes(ctx context.Context, db string, ids []crdt.ID) ([][]byte, error) {
	return s.st().Changes(ctx, db, ids)
}
func (s *swapStore) Apply(ctx context.Context, db string, from peer.ID, cs []*crdt.Change) (int, error) {
	return s.st().Apply(ctx, db, from, cs)
}
func (s *swapStore) Checkpoint(ctx context.Context, db string, remote peer.ID) (uint64, error) {
	return s.st().Checkpoint(ctx, db, remote)
}
func (s *swapStore) SetCheckpoint(ctx context.Context, db string, remote peer.ID, seq uint64) error {
	return s.st().SetCheckpoint(ctx, db, remote, seq)
}
func (s *swapStore) AuthorizeRead(ctx context.Context, db string, remote peer.ID) error {
	return s.st().AuthorizeRead(ctx, db, remote)
}
func (s *swapStore) Databases(ctx context.Context) ([]Replicated, error) {
	return s.st().Databases(ctx)
}

// Random change DAGs written on 2–3 peers, pulled in random order with
// random batch sizes and random interruptions: once every peer has pulled
// from every other, all hold the same change set.
func TestPropertyConverge(t *testing.T) {
	const maxPeers = 3
	hosts := make([]host.Host, maxPeers)
	stores := make([]*swapStore, maxPeers)
	for i := range hosts {
		hosts[i] = newHost(t)
		stores[i] = new(swapStore)
		stores[i].p.Store(newMemStore(t))
		serve(t, hosts[i], stores[i], Config{})
	}
	for i := range hosts {
		for j := i + 1; j < len(hosts); j++ {
			connect(t, hosts[i], hosts[j])
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(2, maxPeers).Draw(rt, "peers")
		ms := make([]*memStore, n)
		for i := range ms {
			ms[i] = newMemStore(t)
			ms[i].createDB("db")
			stores[i].p.Store(ms[i])
		}
		pull := func(i, j, batch, interruptAt int) error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			calls := 0
			ms[i].onApply = func(context.Context, string, []*crdt.Change) error {
				calls++
				if calls == interruptAt {
					cancel()
					return context.Canceled
				}
				return nil
			}
			defer func() { ms[i].onApply = nil }()
			c := NewClient(hosts[i], stores[i], Config{BatchSize: batch, Logger: testLogger(t)})
			_, err := c.Pull(ctx, hosts[j].ID(), "db", nil)
			if interruptAt > 0 && errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for s := range steps {
			i := rapid.IntRange(0, n-1).Draw(rt, "peer")
			if rapid.Bool().Draw(rt, "write") {
				doc := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(rt, "doc")
				ms[i].put(rt, "db", doc, s)
				continue
			}
			j := (i + rapid.IntRange(1, n-1).Draw(rt, "from")) % n
			batch := rapid.IntRange(1, 5).Draw(rt, "batch")
			interrupt := rapid.IntRange(0, 3).Draw(rt, "interrupt")
			if err := pull(i, j, batch, interrupt); err != nil {
				rt.Fatalf("pull %d from %d: %v", i, j, err)
			}
		}
		// n rounds of everyone pulling from everyone reach every change
		// (a change travels one hop per round).
		for range n {
			for i := range n {
				for j := range n {
					if i != j {
						if err := pull(i, j, 4, 0); err != nil {
							rt.Fatalf("final pull %d from %d: %v", i, j, err)
						}
					}
				}
			}
		}
		want := ms[0].ids("db")
		for i := 1; i < n; i++ {
			if got := ms[i].ids("db"); !slices.Equal(got, want) {
				rt.Fatalf("peer %d holds %d changes, peer 0 holds %d", i, len(got), len(want))
			}
		}
	})
}
