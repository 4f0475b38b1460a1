package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/datastore"
	"github.com/barrel-db/barrel/node/internal/acl"
	"github.com/barrel-db/barrel/node/internal/commit"
	"github.com/barrel-db/barrel/node/internal/layout"
	bsync "github.com/barrel-db/barrel/sync"
)

// ACLDocID is the reserved document that holds a database's access control
// list. It replicates like any document; only SetACL writes it locally, and
// a received change to it is applied only if its author was the owner or an
// admin in the ACL its parents describe (see docs/design.md, Access control).
const ACLDocID = acl.DocID

// AnyPeer in Readers or Writers lets every peer read or write.
const AnyPeer = acl.AnyPeer

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
// Those of the access-control policy are its own (node/internal/acl).
const (
	rejectNotWriter = acl.RejectNotWriter // the author may not write
	rejectRevoked   = acl.RejectRevoked   // the author's write access was revoked before the change
	rejectNotAdmin  = acl.RejectNotAdmin  // a change to _acl by a peer not owner or admin as of its parents
	rejectNotOwner  = acl.RejectNotOwner  // an admin's change to _acl that changes the owner
	rejectBadACL    = acl.RejectBadACL    // a change to _acl that leaves it malformed, or no valid ACL to check against
	rejectParent    = commit.RejectParent // descends from a rejected change
	rejectStale     = commit.RejectStale  // did not see history folded by compaction (compact.go)
	rejectTx        = commit.RejectTx     // in a transaction another change of which was rejected
	rejectLimit     = commit.RejectLimit  // past a writer limit (crdt.Change.CheckLimits)
	rejectSignature = "bad_signature"     // the signature does not verify (the batch is refused)
)

// publicACL returns a policy as the API shows it.
func publicACL(a *acl.Policy) ACL {
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
	out := ACL{Owner: a.Owner.String(), Admins: list(false, a.Admins),
		Readers: list(a.AnyRead, a.Readers), Writers: list(a.AnyWrite, a.Writers)}
	if len(a.Revoked) > 0 {
		out.Revoked = map[string]time.Time{}
		for p, at := range a.Revoked {
			out.Revoked[p.String()] = time.Unix(0, at).UTC()
		}
	}
	return out
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
func (d *DB) currentACL() (*acl.Policy, error) {
	st, _, err := d.readState(ACLDocID)
	if err != nil {
		return nil, fmt.Errorf("read acl: %w", err)
	}
	a, err := acl.FromState(st, d.owner())
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
	return publicACL(a), nil
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
	if !cur.Admin(n.peerID) {
		return fmt.Errorf("set acl of %s: %s is not its owner or an admin: %w", db, n.peerID, ErrNotAllowed)
	}
	next, err := parseACL(in, cur.Owner)
	if err != nil {
		return err
	}
	if next.Owner != cur.Owner && n.peerID != cur.Owner {
		return fmt.Errorf("set acl of %s: only the owner may change the owner: %w", db, ErrNotAllowed)
	}
	stamp, err := d.revocationStamp()
	if err != nil {
		return err
	}
	next.RecordRevocations(cur, stamp)
	body, err := normalizeBody(next.Body())
	if err != nil {
		return fmt.Errorf("set acl of %s: %w", db, err)
	}
	res, err := d.submit(ctx, &commit.Request{Docs: []commit.DocWrite{{ID: ACLDocID, Body: body, ACL: true}}})
	if err == nil {
		err = res[0].Error
	}
	if err != nil {
		return fmt.Errorf("set acl of %s: %w", db, err)
	}
	return nil
}

// parseACL checks an ACL given to SetACL.
func parseACL(in ACL, owner peer.ID) (*acl.Policy, error) {
	a := &acl.Policy{Owner: owner}
	if in.Owner != "" {
		p, err := peer.Decode(in.Owner)
		if err != nil {
			return nil, invalid("acl", "owner %q: %v", in.Owner, err)
		}
		a.Owner = p
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
	if a.Admins, _, err = list("admins", in.Admins, false); err != nil {
		return nil, err
	}
	if a.Readers, a.AnyRead, err = list("readers", in.Readers, true); err != nil {
		return nil, err
	}
	if a.Writers, a.AnyWrite, err = list("writers", in.Writers, true); err != nil {
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

// syncAuthorizeRead is bsync's AuthorizeRead on this database (sync_adapters.go).
func (d *DB) syncAuthorizeRead(ctx context.Context, remote peer.ID) error {
	a, err := d.currentACL()
	if err != nil {
		return err
	}
	if !a.MayRead(remote) {
		return fmt.Errorf("%s may not read %s: %w", remote, d.name, bsync.ErrForbidden)
	}
	return nil
}

// rejected reports whether this database rejected a received change.
func (d *DB) rejected(id crdt.ID) (bool, error) {
	return d.store.Has(d.keys.Rejected(id))
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
	err := d.writer.Exclusive(ctx, func() error {
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
