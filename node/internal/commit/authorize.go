package commit

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/acl"
)

// rejections collects the changes one remote request rejected.
type rejections struct {
	ids    map[crdt.ID]string // change -> reason
	order  []crdt.ID
	counts map[string]int
}

func (r *rejections) add(id crdt.ID, reason string) {
	if r.ids == nil {
		r.ids, r.counts = map[crdt.ID]string{}, map[string]int{}
	}
	if _, ok := r.ids[id]; ok {
		return
	}
	r.ids[id] = reason
	r.order = append(r.order, id)
	r.counts[reason]++
}

// settle records a request's rejections durably (so a descendant is
// rejected too and a puller's Has skips them), counts and logs them once.
// unpend are pending-transaction keys the rejection settles.
//
// They are committed in a batch of their own, not the group's: a group
// that applies nothing commits nothing, and a rejection is a fact about a
// change that holds whatever happens to the group.
func (g *Group) settle(r *rejections, from peer.ID, unpend [][]byte) error {
	if len(r.order) == 0 {
		return nil
	}
	keys := g.env.Keys()
	b := g.env.Store().NewBatch()
	defer b.Close()
	for _, id := range r.order {
		b.Set(keys.Rejected(id), []byte(r.ids[id]))
	}
	for _, k := range unpend {
		b.Delete(k)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("record rejected changes: %w", err)
	}
	g.env.Refused(from, r.counts)
	return nil
}

// Reject records, from an exclusive job, that received changes of from
// were rejected, each for its reason, as a remote request records the
// changes it rejects (settle).
func (w *Writer) Reject(from peer.ID, reasons map[crdt.ID]string) error {
	var r rejections
	for _, id := range slices.SortedFunc(maps.Keys(reasons), func(a, b crdt.ID) int { return bytes.Compare(a[:], b[:]) }) {
		r.add(id, reasons[id])
	}
	return (&Group{env: w.env}).settle(&r, from, nil)
}

// authorizer decides, inside the writer, whether received changes may be
// applied. It caches the decoded ACL per state of the _acl document.
type authorizer struct {
	g     *Group
	state *crdt.State
	cur   *acl.Policy
	err   error
}

// current is the ACL at this point of the group.
func (az *authorizer) current() (*acl.Policy, error) {
	ent, err := az.g.load(acl.DocID)
	if err != nil {
		return nil, err
	}
	if ent.state != az.state || (az.cur == nil && az.err == nil) {
		az.state = ent.state
		az.cur, az.err = acl.FromState(ent.state, az.g.env.Owner())
	}
	return az.cur, nil
}

// check returns why c may not be applied ("" if it may). err is a storage
// error: the group fails.
func (az *authorizer) check(c *crdt.Change) (string, error) {
	if c.Doc == acl.DocID {
		return az.checkACLChange(c)
	}
	a, err := az.current()
	if err != nil {
		return "", err
	}
	if az.err != nil {
		// Fail closed: without a valid ACL nobody's changes are checked in.
		return acl.RejectBadACL, nil
	}
	if a.AnyWrite && len(a.Revoked) == 0 {
		return "", nil
	}
	return a.MayWrite(peer.ID(c.Author), c.Clock), nil
}

// checkACLChange applies the _acl rule (acl.CheckChange) to c, loading
// what it is decided on: c's ancestors, or for a first change whether the
// database holds an ACL yet.
func (az *authorizer) checkACLChange(c *crdt.Change) (string, error) {
	var anc []*crdt.Change
	held := false
	if len(c.Parents) == 0 {
		ent, err := az.g.load(acl.DocID)
		if err != nil {
			return "", err
		}
		held = ent.state.Exists()
	} else {
		var err error
		if anc, err = az.g.ancestors(c.Parents); err != nil {
			return "", err
		}
	}
	return acl.CheckChange(c, anc, held), nil
}

// ancestors loads the given changes and all their ancestors.
func (g *Group) ancestors(ids []crdt.ID) ([]*crdt.Change, error) {
	var all []*crdt.Change
	seen := map[crdt.ID]bool{}
	stack := slices.Clone(ids)
	for _, id := range ids {
		seen[id] = true
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		c, err := g.change(id)
		if err != nil {
			return nil, fmt.Errorf("load ancestor %s: %w", id, err)
		}
		all = append(all, c)
		for _, p := range c.Parents {
			if !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return all, nil
}

// isRejected reports whether a change was rejected by this request or
// before.
func (g *Group) isRejected(r *rejections, id crdt.ID) (bool, error) {
	if _, ok := r.ids[id]; ok {
		return true, nil
	}
	ok, err := g.env.Rejected(id)
	if errors.Is(err, datastore.ErrNotFound) {
		return false, nil
	}
	return ok, err
}
