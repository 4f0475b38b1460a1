package node

import (
	"errors"

	"github.com/barrel-db/barrel/crdt"
	bsync "github.com/barrel-db/barrel/sync"
)

// applyRemote applies changes received from a peer, parents first,
// skipping those already held. It stops at the first change whose parents
// are missing (a *bsync.MissingError). An atomic request (one transaction)
// is checked whole before any of it is applied.
func (g *group) applyRemote(r *request) response {
	var todo []*crdt.Change
	known := map[crdt.ID]bool{}
	var missing []crdt.ID
	for _, c := range r.remote {
		has, err := g.has(c.ID())
		if err != nil {
			return response{err: err}
		}
		if has || known[c.ID()] {
			continue
		}
		for _, p := range c.Parents {
			if known[p] {
				continue
			}
			ok, err := g.has(p)
			if err != nil {
				return response{err: err}
			}
			if !ok {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			break
		}
		known[c.ID()] = true
		todo = append(todo, c)
	}
	if len(missing) > 0 && r.atomic {
		return response{err: &bsync.MissingError{IDs: missing}}
	}
	applied := len(todo)
	// Waves of distinct documents merge in parallel, as local writes do;
	// a change's parents are of its own document, so a wave holds no
	// dependency.
	for len(todo) > 0 {
		seen := map[string]bool{}
		var wave []*prepared
		for _, c := range todo {
			if seen[c.Doc] {
				break
			}
			seen[c.Doc] = true
			g.d.observeRemoteClock(c.Clock)
			ent, err := g.load(c.Doc)
			if err != nil {
				return response{err: err}
			}
			wave = append(wave, &prepared{ent: ent, change: c, from: r.from})
		}
		todo = todo[len(wave):]
		ms := make([]*merged, len(wave))
		errs := make([]error, len(wave))
		parallel(len(wave), func(i int) { ms[i], errs[i] = g.merge(wave[i]) })
		if err := errors.Join(errs...); err != nil {
			// Earlier waves are in the batch already: fail the whole group
			// rather than commit part of a request.
			g.broken = err
			return response{err: err}
		}
		for _, m := range ms {
			g.record(m)
		}
	}
	g.unpend = append(g.unpend, r.unpend...)
	resp := response{applied: applied}
	if len(missing) > 0 {
		resp.err = &bsync.MissingError{IDs: missing}
	}
	return resp
}
