package commit

import (
	"errors"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/acl"
	bsync "github.com/barrel-db/barrel/sync"
)

// applyRemote applies changes received from a peer, parents first,
// skipping those already held. It stops at the first change whose parents
// are missing (a *bsync.MissingError). An atomic request (one transaction)
// is checked whole before any of it is applied.
//
// Access control (docs/design.md, Access control): a change its author may
// not write, or that descends from a rejected change, is rejected: never
// applied, so never in the feed and never forwarded; recorded so that it
// is not fetched again. A rejection is not an error: the puller moves on.
// A transaction with one rejected change is rejected whole.
func (g *Group) applyRemote(r *Request) Response {
	var todo []*crdt.Change
	known := map[crdt.ID]bool{}
	var missing []crdt.ID
	var rej rejections
	az := &authorizer{g: g}
	applied := 0
	for _, c := range r.Remote {
		fi, err := g.foldOf(c.Doc)
		if err != nil {
			return Response{Err: err}
		}
		has, err := g.has(c.ID())
		if err != nil {
			return Response{Err: err}
		}
		if has || known[c.ID()] || fi.isFrontier(c.ID()) {
			continue
		}
		if gone, err := g.isRejected(&rej, c.ID()); err != nil {
			return Response{Err: err}
		} else if gone {
			continue
		}
		reason := ""
		if err := c.CheckLimits(); err != nil {
			// The writer limits bound what a peer may send (DESIGN.md
			// invariant 8): decided by the change alone, so every peer
			// refuses the same changes. Its descendants follow it out.
			reason = RejectLimit
		}
		var miss []crdt.ID
		for _, p := range c.Parents {
			if known[p] || fi.isFrontier(p) {
				continue
			}
			ok, err := g.has(p)
			if err != nil {
				return Response{Err: err}
			}
			if ok {
				continue
			}
			gone, err := g.isRejected(&rej, p)
			if err != nil {
				return Response{Err: err}
			}
			if gone {
				reason = RejectParent
			} else {
				miss = append(miss, p)
			}
		}
		if reason == "" {
			if stale, err := g.isStale(c, fi, len(miss) > 0); err != nil {
				return Response{Err: err}
			} else if stale {
				reason = RejectStale
			}
		}
		if reason == "" && len(miss) > 0 {
			missing = miss
			break
		}
		if reason == "" {
			if reason, err = az.check(c); err != nil {
				return Response{Err: err}
			}
		}
		if reason != "" {
			rej.add(c.ID(), reason)
			continue
		}
		known[c.ID()] = true
		todo = append(todo, c)
		if c.Doc == acl.DocID && !r.Atomic {
			// The changes after this one are checked against the ACL it
			// leaves: apply it first.
			if err := g.mergeRemote(todo, r.From); err != nil {
				return Response{Err: err}
			}
			applied += len(todo)
			todo = nil
		}
	}
	if len(missing) > 0 && r.Atomic {
		return Response{Err: &bsync.MissingError{IDs: missing}}
	}
	if r.Atomic && len(rej.order) > 0 {
		for _, c := range todo {
			rej.add(c.ID(), RejectTx)
		}
		if err := g.settle(&rej, r.From, r.Unpend); err != nil {
			return Response{Err: err}
		}
		return Response{}
	}
	if err := g.settle(&rej, r.From, nil); err != nil {
		return Response{Err: err}
	}
	if err := g.mergeRemote(todo, r.From); err != nil {
		return Response{Err: err}
	}
	applied += len(todo)
	g.unpend = append(g.unpend, r.Unpend...)
	resp := Response{Applied: applied}
	if len(missing) > 0 {
		resp.Err = &bsync.MissingError{IDs: missing}
	}
	return resp
}

// foldInfo is what a received change is checked against when its document
// was compacted: the frontier and the latest clock folded.
type foldInfo struct {
	frontier []crdt.ID
	clock    crdt.HLC
}

func (f *foldInfo) isFrontier(id crdt.ID) bool {
	return f != nil && slices.Contains(f.frontier, id)
}

// foldOf returns a document's fold, nil when its history is whole. Folds
// change only while the writer runs a compaction, never during a group.
func (g *Group) foldOf(doc string) (*foldInfo, error) {
	if f, ok := g.folds[doc]; ok {
		return f, nil
	}
	base, clock, err := g.env.Fold(doc)
	if err != nil {
		return nil, err
	}
	var f *foldInfo
	if base != nil {
		f = &foldInfo{frontier: base.Heads, clock: clock}
	}
	if g.folds == nil {
		g.folds = map[string]*foldInfo{}
	}
	g.folds[doc] = f
	return f, nil
}

// isStale reports whether a received change is behind the compaction
// horizon (docs/design.md, Compaction): it did not see the fold point of its
// document, so it cannot be merged exactly as it would have been before the
// fold. That is a root change of a folded document, or one whose missing
// parents are older than the fold (a change after the fold point has a
// later clock than it), or an old change of a document whose tombstone was
// purged: it must not bring the document back.
func (g *Group) isStale(c *crdt.Change, fi *foldInfo, missingParents bool) (bool, error) {
	if fi != nil {
		return len(c.Parents) == 0 || (missingParents && c.Clock.Compare(fi.clock) <= 0), nil
	}
	if !missingParents && len(c.Parents) > 0 {
		return false, nil
	}
	if c.Clock.Compare(g.env.Purged()) > 0 {
		return false, nil
	}
	ent, err := g.load(c.Doc)
	if err != nil {
		return false, err
	}
	return !ent.state.Exists(), nil
}

// mergeRemote merges and records received changes, parents first. Waves
// of distinct documents merge in parallel, as local writes do; a change's
// parents are of its own document, so a wave holds no dependency. An error
// breaks the group: earlier waves are in the batch already, and the group
// must not commit part of a request.
func (g *Group) mergeRemote(todo []*crdt.Change, from peer.ID) error {
	for len(todo) > 0 {
		seen := map[string]bool{}
		var wave []*prepared
		for _, c := range todo {
			if seen[c.Doc] {
				break
			}
			seen[c.Doc] = true
			g.observeRemoteClock(c.Clock)
			ent, err := g.load(c.Doc)
			if err != nil {
				g.broken = err
				return err
			}
			wave = append(wave, &prepared{ent: ent, change: c, from: []byte(from)})
		}
		todo = todo[len(wave):]
		ms := make([]*merged, len(wave))
		errs := make([]error, len(wave))
		Parallel(len(wave), func(i int) { ms[i], errs[i] = g.merge(wave[i]) })
		if err := errors.Join(errs...); err != nil {
			g.broken = err
			return err
		}
		for _, m := range ms {
			g.record(m)
		}
	}
	return nil
}

// observeRemoteClock moves the HLC past a received stamp, unless the stamp
// is implausibly far ahead of local time.
func (g *Group) observeRemoteClock(h crdt.HLC) {
	if h.Wall-g.env.Now().UnixNano() > int64(g.env.MaxClockDrift()) {
		return
	}
	g.env.Clock().Observe(h)
}
