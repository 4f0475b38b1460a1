package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// ACLDocID is the reserved document that holds a database's access control
// list. It replicates like any document; only SetACL writes it locally, and
// a received change to it is applied only if its author was the owner or an
// admin in the ACL its parents describe (see docs/design.md, Access control).
const ACLDocID = "_acl"

// AnyPeer in Readers or Writers lets every peer read or write.
const AnyPeer = "*"

// metaOwner is the database metadata key of the peer that created it.
const metaOwner = "owner"

// ACL is a database's access control list. Peer ids are in their text form
// (12D3Koo…). The owner and the admins may always read and write and may
// change the ACL; only the owner may hand ownership on.
type ACL struct {
	Owner   string
	Admins  []string
	Readers []string // [AnyPeer]: every peer (open mode)
	Writers []string // [AnyPeer]: every peer (open mode)
	// Revoked maps a writer taken off Writers to the time of the
	// revocation: its changes stamped (HLC wall time) before it are still
	// accepted, later ones are rejected. SetACL maintains it; a value given
	// to SetACL is ignored.
	Revoked map[string]time.Time
}

// Rejection reasons: the reason label of barrel_node_rejected_changes_total.
const (
	rejectNotWriter = "not_writer"      // the author may not write
	rejectRevoked   = "revoked"         // the author's write access was revoked before the change
	rejectNotAdmin  = "not_admin"       // a change to _acl by a peer not owner or admin as of its parents
	rejectNotOwner  = "not_owner"       // an admin's change to _acl that changes the owner
	rejectBadACL    = "bad_acl"         // a change to _acl that leaves it malformed, or no valid ACL to check against
	rejectParent    = "rejected_parent" // descends from a rejected change
	rejectStale     = "stale"           // did not see history folded by compaction (compact.go)
	rejectTx        = "rejected_tx"     // in a transaction another change of which was rejected
	rejectSignature = "bad_signature"   // the signature does not verify (the batch is refused)
)

// acl is an ACL decoded for checks.
type acl struct {
	owner            peer.ID
	admins           map[peer.ID]bool
	readers, writers map[peer.ID]bool
	anyRead          bool
	anyWrite         bool
	revoked          map[peer.ID]int64 // unix nanoseconds
}

// openACL is the ACL of a database without an _acl document.
func openACL(owner peer.ID) *acl {
	return &acl{owner: owner, anyRead: true, anyWrite: true}
}

func (a *acl) admin(p peer.ID) bool { return p == a.owner || a.admins[p] }

func (a *acl) mayRead(p peer.ID) bool { return a.anyRead || a.readers[p] || a.admin(p) }

// mayWrite says whether a change by author stamped clock may be applied,
// and if not, why. A revoked writer's changes stamped before the
// revocation stay acceptable.
func (a *acl) mayWrite(author peer.ID, clock crdt.HLC) string {
	if a.admin(author) {
		return ""
	}
	at, revoked := a.revoked[author]
	switch {
	case revoked && clock.Wall >= at:
		return rejectRevoked
	case a.anyWrite || a.writers[author] || revoked:
		return ""
	}
	return rejectNotWriter
}

// public returns the ACL as the API shows it.
func (a *acl) public() ACL {
	list := func(all bool, m map[peer.ID]bool) []string {
		if all {
			return []string{AnyPeer}
		}
		out := []string{}
		for p := range m {
			out = append(out, p.String())
		}
		slices.Sort(out)
		return out
	}
	out := ACL{Owner: a.owner.String(), Admins: list(false, a.admins),
		Readers: list(a.anyRead, a.readers), Writers: list(a.anyWrite, a.writers)}
	if len(a.revoked) > 0 {
		out.Revoked = map[string]time.Time{}
		for p, at := range a.revoked {
			out.Revoked[p.String()] = time.Unix(0, at).UTC()
		}
	}
	return out
}

// decodeACL reads an _acl document body. It never panics on any body: a
// peer may send one.
func decodeACL(body map[string]any) (*acl, error) {
	if body == nil {
		return nil, errors.New("acl: no body")
	}
	a := &acl{}
	o, ok := body["owner"].(string)
	if !ok {
		return nil, errors.New("acl: owner: want a peer id")
	}
	var err error
	if a.owner, err = peer.Decode(o); err != nil {
		return nil, fmt.Errorf("acl: owner: %v", err)
	}
	peers := func(field string, allowAny bool) (map[peer.ID]bool, bool, error) {
		v, present := body[field]
		if !present || v == nil {
			return map[peer.ID]bool{}, false, nil
		}
		if s, ok := v.(string); ok && s == AnyPeer && allowAny {
			return nil, true, nil
		}
		arr, ok := v.([]any)
		if !ok {
			return nil, false, fmt.Errorf("acl: %s: want a list of peer ids or %q", field, AnyPeer)
		}
		m := make(map[peer.ID]bool, len(arr))
		for _, e := range arr {
			s, ok := e.(string)
			if !ok {
				return nil, false, fmt.Errorf("acl: %s: want peer ids", field)
			}
			if s == AnyPeer && allowAny {
				return nil, true, nil
			}
			p, err := peer.Decode(s)
			if err != nil {
				return nil, false, fmt.Errorf("acl: %s: %v", field, err)
			}
			m[p] = true
		}
		return m, false, nil
	}
	if a.admins, _, err = peers("admins", false); err != nil {
		return nil, err
	}
	if a.readers, a.anyRead, err = peers("readers", true); err != nil {
		return nil, err
	}
	if a.writers, a.anyWrite, err = peers("writers", true); err != nil {
		return nil, err
	}
	if v, present := body["revoked"]; present && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("acl: revoked: want an object")
		}
		a.revoked = make(map[peer.ID]int64, len(m))
		for k, v := range m {
			p, err := peer.Decode(k)
			if err != nil {
				return nil, fmt.Errorf("acl: revoked: %v", err)
			}
			s, _ := v.(string)
			at, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("acl: revoked %s: want an RFC 3339 time", k)
			}
			a.revoked[p] = at.UnixNano()
		}
	}
	return a, nil
}

// body encodes an ACL as its _acl document body: lists sorted, AnyPeer as
// the string "*", revocation times as RFC 3339 UTC with nanoseconds.
func (a *acl) body() map[string]any {
	list := func(all bool, m map[peer.ID]bool) any {
		if all {
			return AnyPeer
		}
		out := make([]string, 0, len(m))
		for p := range m {
			out = append(out, p.String())
		}
		slices.Sort(out)
		l := make([]any, len(out))
		for i, s := range out {
			l[i] = s
		}
		return l
	}
	b := map[string]any{
		"owner":   a.owner.String(),
		"admins":  list(false, a.admins),
		"readers": list(a.anyRead, a.readers),
		"writers": list(a.anyWrite, a.writers),
	}
	if len(a.revoked) > 0 {
		r := map[string]any{}
		for p, at := range a.revoked {
			r[p.String()] = time.Unix(0, at).UTC().Format(time.RFC3339Nano)
		}
		b["revoked"] = r
	}
	return b
}

// aclOf decodes the ACL a document state holds; a database without an _acl
// document is open, owned by owner.
func aclOf(st *crdt.State, owner peer.ID) (*acl, error) {
	if st == nil || !st.Exists() {
		return openACL(owner), nil
	}
	if st.Deleted {
		return nil, errors.New("acl: document deleted")
	}
	return decodeACL(st.Body)
}

// owner is the peer that created the database (this node for a database
// created before owners were recorded).
func (d *DB) owner() peer.ID {
	v, err := d.store.Get(d.keys.Meta(metaOwner))
	if err != nil || len(v) == 0 {
		return d.node.peerID
	}
	return peer.ID(v)
}

// currentACL reads the committed ACL.
func (d *DB) currentACL() (*acl, error) {
	st, _, err := d.readState(ACLDocID)
	if err != nil {
		return nil, fmt.Errorf("read acl: %w", err)
	}
	a, err := aclOf(st, d.owner())
	if err != nil {
		return nil, fmt.Errorf("read acl of %s: %w", d.name, err)
	}
	return a, nil
}

// ACL returns a database's access control list: its _acl document, or open
// mode owned by the creating node when it has none. ErrDBNotFound.
func (n *Node) ACL(db string) (ACL, error) {
	d, err := n.DB(db)
	if err != nil {
		return ACL{}, err
	}
	a, err := d.currentACL()
	if err != nil {
		return ACL{}, err
	}
	return a.public(), nil
}

// SetACL replaces a database's access control list: Owner ("" keeps it),
// Admins, Readers and Writers. Only the owner or an admin may change it,
// and only the owner may change the owner: otherwise ErrNotAllowed. A
// writer taken off an explicit Writers list is recorded in Revoked with
// the time of the revocation; one put back is removed from it. Errors:
// ErrInvalid (a bad peer id), ErrNotAllowed, ErrDBNotFound, the write's.
func (n *Node) SetACL(ctx context.Context, db string, in ACL) error {
	d, err := n.DB(db)
	if err != nil {
		return err
	}
	cur, err := d.currentACL()
	if err != nil {
		return err
	}
	if !cur.admin(n.peerID) {
		return fmt.Errorf("set acl of %s: %s is not its owner or an admin: %w", db, n.peerID, ErrNotAllowed)
	}
	next, err := parseACL(in, cur.owner)
	if err != nil {
		return err
	}
	if next.owner != cur.owner && n.peerID != cur.owner {
		return fmt.Errorf("set acl of %s: only the owner may change the owner: %w", db, ErrNotAllowed)
	}
	stamp, err := d.revocationStamp()
	if err != nil {
		return err
	}
	next.revoked = maps.Clone(cur.revoked)
	if next.revoked == nil {
		next.revoked = map[peer.ID]int64{}
	}
	if !cur.anyWrite {
		for p := range cur.writers {
			if !next.anyWrite && !next.writers[p] {
				next.revoked[p] = stamp
			}
		}
	}
	for p := range next.revoked {
		if next.anyWrite || next.writers[p] {
			delete(next.revoked, p)
		}
	}
	body, err := normalizeBody(next.body())
	if err != nil {
		return fmt.Errorf("set acl of %s: %w", db, err)
	}
	res, err := d.submit(ctx, &request{docs: []docWrite{{id: ACLDocID, body: body, acl: true}}})
	if err == nil {
		err = res[0].Error
	}
	if err != nil {
		return fmt.Errorf("set acl of %s: %w", db, err)
	}
	return nil
}

// parseACL checks an ACL given to SetACL.
func parseACL(in ACL, owner peer.ID) (*acl, error) {
	a := &acl{owner: owner}
	if in.Owner != "" {
		p, err := peer.Decode(in.Owner)
		if err != nil {
			return nil, invalid("acl", "owner %q: %v", in.Owner, err)
		}
		a.owner = p
	}
	list := func(field string, ids []string, allowAny bool) (map[peer.ID]bool, bool, error) {
		m := map[peer.ID]bool{}
		for _, s := range ids {
			s = strings.TrimSpace(s)
			if s == AnyPeer && allowAny {
				return nil, true, nil
			}
			p, err := peer.Decode(s)
			if err != nil {
				return nil, false, invalid("acl", "%s: %q: %v", field, s, err)
			}
			m[p] = true
		}
		return m, false, nil
	}
	var err error
	if a.admins, _, err = list("admins", in.Admins, false); err != nil {
		return nil, err
	}
	if a.readers, a.anyRead, err = list("readers", in.Readers, true); err != nil {
		return nil, err
	}
	if a.writers, a.anyWrite, err = list("writers", in.Writers, true); err != nil {
		return nil, err
	}
	return a, nil
}

// revocationStamp is the time recorded for a revocation made now: after
// every change this node holds (its committed HLC), so the revoked
// writer's changes it already has stay valid everywhere.
func (d *DB) revocationStamp() (int64, error) {
	now := d.node.cfg.Now().UnixNano()
	v, err := d.readMeta(layout.MetaClock)
	if err != nil || v == nil {
		return now, err
	}
	var h crdt.HLC
	if err := crdt.Unmarshal(v, &h); err != nil {
		return 0, fmt.Errorf("read clock of %s: %w", d.name, err)
	}
	return max(now, h.Wall+1), nil
}

// AuthorizeRead implements bsync.Store (and, through blobStore,
// bsync.BlobStore): a peer that may not read
// the database is refused before it learns anything, even ids.
func (s syncStore) AuthorizeRead(ctx context.Context, db string, remote peer.ID) error {
	d, err := s.db(db)
	if err != nil {
		return err
	}
	a, err := d.currentACL()
	if err != nil {
		return err
	}
	if !a.mayRead(remote) {
		return fmt.Errorf("%s may not read %s: %w", remote, db, bsync.ErrForbidden)
	}
	return nil
}

// rejected reports whether this database rejected a received change.
func (d *DB) rejected(id crdt.ID) (bool, error) {
	return d.store.Has(d.keys.Rejected(id))
}

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
func (g *group) settle(r *rejections, from []byte, unpend [][]byte) error {
	if len(r.order) == 0 {
		return nil
	}
	d := g.d
	b := d.store.NewBatch()
	defer b.Close()
	for _, id := range r.order {
		b.Set(d.keys.Rejected(id), []byte(r.ids[id]))
	}
	for _, k := range unpend {
		b.Delete(k)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("record rejected changes: %w", err)
	}
	attrs := []any{"peer", peer.ID(from).String(), "changes", len(r.order)}
	for _, reason := range slices.Sorted(maps.Keys(r.counts)) {
		d.node.metrics.rejected.WithLabelValues(d.name, reason).Add(float64(r.counts[reason]))
		attrs = append(attrs, reason, r.counts[reason])
	}
	d.log.Warn("rejected received changes", attrs...)
	return nil
}

// authorizer decides, inside the writer, whether received changes may be
// applied. It caches the decoded ACL per state of the _acl document.
type authorizer struct {
	g     *group
	state *crdt.State
	cur   *acl
	err   error
}

// current is the ACL at this point of the group.
func (az *authorizer) current() (*acl, error) {
	ent, err := az.g.load(ACLDocID)
	if err != nil {
		return nil, err
	}
	if ent.state != az.state || (az.cur == nil && az.err == nil) {
		az.state = ent.state
		az.cur, az.err = aclOf(ent.state, az.g.d.owner())
	}
	return az.cur, nil
}

// check returns why c may not be applied ("" if it may). err is a storage
// error: the group fails.
func (az *authorizer) check(c *crdt.Change) (string, error) {
	if c.Doc == ACLDocID {
		return az.checkACLChange(c)
	}
	a, err := az.current()
	if err != nil {
		return "", err
	}
	if az.err != nil {
		// Fail closed: without a valid ACL nobody's changes are checked in.
		return rejectBadACL, nil
	}
	if a.anyWrite && len(a.revoked) == 0 {
		return "", nil
	}
	return a.mayWrite(peer.ID(c.Author), c.Clock), nil
}

// checkACLChange applies the _acl rule: the author must be the owner or an
// admin in the ACL as of the change's parents (the ACL the author saw), so
// every peer takes the same decision whatever order changes arrive in. The
// first change of the document (no parents) is accepted only if this
// database holds no ACL yet and its author names itself owner (trust on
// first use). The ACL the change leaves must decode, and only the owner
// may change the owner.
func (az *authorizer) checkACLChange(c *crdt.Change) (string, error) {
	author := peer.ID(c.Author)
	var anc []*crdt.Change
	var before *acl
	if len(c.Parents) == 0 {
		ent, err := az.g.load(ACLDocID)
		if err != nil {
			return "", err
		}
		if ent.state.Exists() {
			return rejectNotAdmin, nil // a second first ACL: the database has an owner
		}
	} else {
		var err error
		if anc, err = az.g.ancestors(c.Parents); err != nil {
			return "", err
		}
		for _, x := range anc {
			if x.Doc != ACLDocID {
				return rejectBadACL, nil
			}
		}
		st, err := crdt.Replay(anc)
		if err != nil {
			return rejectBadACL, nil
		}
		if before, err = aclOf(st, ""); err != nil {
			return rejectBadACL, nil
		}
		if !before.admin(author) {
			return rejectNotAdmin, nil
		}
	}
	st, err := crdt.Replay(append(anc, c))
	if err != nil {
		return rejectBadACL, nil
	}
	after, err := aclOf(st, "")
	if err != nil || !st.Exists() {
		return rejectBadACL, nil
	}
	switch {
	case before == nil && after.owner != author:
		return rejectNotOwner, nil
	case before != nil && after.owner != before.owner && author != before.owner:
		return rejectNotOwner, nil
	}
	return "", nil
}

// ancestors loads the given changes and all their ancestors.
func (g *group) ancestors(ids []crdt.ID) ([]*crdt.Change, error) {
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
func (g *group) isRejected(r *rejections, id crdt.ID) (bool, error) {
	if _, ok := r.ids[id]; ok {
		return true, nil
	}
	ok, err := g.d.rejected(id)
	if errors.Is(err, datastore.ErrNotFound) {
		return false, nil
	}
	return ok, err
}

// reconsidered are the rejection reasons that depend on the ACL as this
// node knew it when the change arrived, not on the change and its
// ancestors alone: a grant (or a lifted revocation) that arrives later can
// make the change acceptable.
var reconsidered = map[string]bool{rejectNotWriter: true, rejectRevoked: true, rejectParent: true, rejectTx: true}

// reconsider runs after the _acl document changed: it forgets the
// rejections the new ACL may overturn and pulls again from every peer from
// the start (checkpoints reset), so those changes are fetched and checked
// anew. A change still not allowed is rejected again; one now allowed is
// applied, so peers that saw the grant first and peers that saw the
// change first converge. Grants are rare, and a re-pull lists ids only:
// the bodies fetched are those of the forgotten changes.
func (d *DB) reconsider(ctx context.Context) {
	forgot := 0
	err := d.exclusive(ctx, func() error {
		x := d.keys.Rejections()
		b := d.store.NewWriteBatch()
		defer b.Close()
		err := d.store.Range(x, datastore.PrefixEnd(x), false, func(k, v []byte) (bool, error) {
			if reconsidered[string(v)] {
				b.Delete(slices.Clone(k))
				forgot++
			}
			return true, nil
		})
		if err != nil || forgot == 0 {
			return err
		}
		cp := d.keys.Checkpoints()
		b.DeleteRange(cp, datastore.PrefixEnd(cp))
		if err := b.Commit(); err != nil {
			return err
		}
		// A pull that started before must not restore its checkpoint.
		// Checkpoints are written by the writer too (setCheckpoint), so
		// none lands between the commit and this.
		d.checkpoints.Lock()
		d.checkpoints.epoch++
		d.checkpoints.Unlock()
		return nil
	})
	if err != nil {
		if !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
			d.log.Warn("reconsider rejected changes", "err", err)
		}
		return
	}
	if forgot > 0 {
		d.log.Info("acl changed: rejected changes reconsidered", "changes", forgot)
		d.node.resync(d.name)
	}
}

// reconsiderLoop runs reconsider each time the writer committed a change
// of the _acl document (signalled on d.acl, coalesced), until ctx (the
// database's) ends.
func (d *DB) reconsiderLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.acl:
			d.reconsider(ctx)
		}
	}
}
