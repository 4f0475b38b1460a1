package acl

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/barrel-db/barrel/crdt"
)

// AnyPeer in an _acl document's readers or writers lets every peer read
// or write.
const AnyPeer = "*"

// DocID is the document that holds a database's access control list.
const DocID = "_acl"

// Rejection reasons: why a change is refused under a Policy. They are
// labels of node's barrel_node_rejected_changes_total and are stored with
// a rejected change, so their values do not change.
const (
	RejectNotWriter = "not_writer" // the author may not write
	RejectRevoked   = "revoked"    // the author's write access was revoked before the change
	RejectNotAdmin  = "not_admin"  // a change to _acl by a peer not owner or admin as of its parents
	RejectNotOwner  = "not_owner"  // an admin's change to _acl that changes the owner
	RejectBadACL    = "bad_acl"    // a change to _acl that leaves it malformed, or no valid ACL to check against
)

// Policy is a database's access control list decoded for checks. The
// owner and the admins may always read and write and may change the ACL;
// only the owner may hand ownership on. A nil map is an empty set.
type Policy struct {
	Owner            peer.ID
	Admins           map[peer.ID]bool
	Readers, Writers map[peer.ID]bool
	AnyRead          bool // readers AnyPeer: every peer may read
	AnyWrite         bool // writers AnyPeer: every peer may write
	// Revoked maps a writer taken off Writers to the time of the
	// revocation (unix nanoseconds, compared with a change's HLC wall
	// time): its changes stamped before it stay acceptable.
	Revoked map[peer.ID]int64
}

// Open is the policy of a database without an _acl document: every peer
// may read and write, owner administers it.
func Open(owner peer.ID) *Policy {
	return &Policy{Owner: owner, AnyRead: true, AnyWrite: true}
}

// Admin says whether p is the owner or an admin.
func (a *Policy) Admin(p peer.ID) bool { return p == a.Owner || a.Admins[p] }

// MayRead says whether p may read the database.
func (a *Policy) MayRead(p peer.ID) bool { return a.AnyRead || a.Readers[p] || a.Admin(p) }

// MayWrite says whether a change by author stamped clock may be applied:
// "" if it may, else the rejection reason (RejectRevoked, RejectNotWriter).
// A revoked writer's changes stamped before the revocation stay
// acceptable.
func (a *Policy) MayWrite(author peer.ID, clock crdt.HLC) string {
	if a.Admin(author) {
		return ""
	}
	at, revoked := a.Revoked[author]
	switch {
	case revoked && clock.Wall >= at:
		return RejectRevoked
	case a.AnyWrite || a.Writers[author] || revoked:
		return ""
	}
	return RejectNotWriter
}

// RecordRevocations sets a.Revoked for a as the successor of prev, the
// policy it replaces: prev's revocations carry over, a writer on prev's
// explicit Writers list that a does not let write is revoked at at (unix
// nanoseconds), and a peer a lets write is revoked no more. The caller
// picks at after every change it holds, so the revoked writer's changes
// it already has stay valid everywhere.
func (a *Policy) RecordRevocations(prev *Policy, at int64) {
	a.Revoked = maps.Clone(prev.Revoked)
	if a.Revoked == nil {
		a.Revoked = map[peer.ID]int64{}
	}
	if !prev.AnyWrite {
		for p := range prev.Writers {
			if !a.AnyWrite && !a.Writers[p] {
				a.Revoked[p] = at
			}
		}
	}
	for p := range a.Revoked {
		if a.AnyWrite || a.Writers[p] {
			delete(a.Revoked, p)
		}
	}
}

// Decode reads an _acl document body. It never panics on any body: a
// peer may send one.
func Decode(body map[string]any) (*Policy, error) {
	if body == nil {
		return nil, errors.New("acl: no body")
	}
	a := &Policy{}
	o, ok := body["owner"].(string)
	if !ok {
		return nil, errors.New("acl: owner: want a peer id")
	}
	var err error
	if a.Owner, err = peer.Decode(o); err != nil {
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
	if a.Admins, _, err = peers("admins", false); err != nil {
		return nil, err
	}
	if a.Readers, a.AnyRead, err = peers("readers", true); err != nil {
		return nil, err
	}
	if a.Writers, a.AnyWrite, err = peers("writers", true); err != nil {
		return nil, err
	}
	if v, present := body["revoked"]; present && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("acl: revoked: want an object")
		}
		a.Revoked = make(map[peer.ID]int64, len(m))
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
			a.Revoked[p] = at.UnixNano()
		}
	}
	return a, nil
}

// Body encodes a as its _acl document body: lists sorted, AnyPeer as the
// string "*", revocation times as RFC 3339 UTC with nanoseconds. The
// caller owns the result.
func (a *Policy) Body() map[string]any {
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
		"owner":   a.Owner.String(),
		"admins":  list(false, a.Admins),
		"readers": list(a.AnyRead, a.Readers),
		"writers": list(a.AnyWrite, a.Writers),
	}
	if len(a.Revoked) > 0 {
		r := map[string]any{}
		for p, at := range a.Revoked {
			r[p.String()] = time.Unix(0, at).UTC().Format(time.RFC3339Nano)
		}
		b["revoked"] = r
	}
	return b
}

// FromState decodes the policy a state of the _acl document holds; a
// database without an _acl document (st nil or not existing) is Open,
// owned by owner.
func FromState(st *crdt.State, owner peer.ID) (*Policy, error) {
	if st == nil || !st.Exists() {
		return Open(owner), nil
	}
	if st.Deleted {
		return nil, errors.New("acl: document deleted")
	}
	return Decode(st.Body)
}

// CheckChange applies the _acl rule to c, a change of the _acl document,
// and returns "" if it may be applied, else the rejection reason. anc are
// all the changes c descends from (the caller loads them; none for a
// first change); held says whether the database already holds an _acl
// document.
//
// The author must be the owner or an admin in the ACL as of c's parents
// (the ACL the author saw), so every peer takes the same decision
// whatever order changes arrive in. A first change (no parents) is
// accepted only if the database holds no ACL yet and its author names
// itself owner (trust on first use). The ACL c leaves must decode, and
// only the owner may change the owner.
func CheckChange(c *crdt.Change, anc []*crdt.Change, held bool) string {
	if c.Doc != DocID {
		return RejectBadACL // only the _acl document's changes make an ACL
	}
	author := peer.ID(c.Author)
	var before *Policy
	if len(c.Parents) == 0 {
		if held {
			return RejectNotAdmin // a second first ACL: the database has an owner
		}
	} else {
		for _, x := range anc {
			if x.Doc != DocID {
				return RejectBadACL
			}
		}
		st, err := crdt.Replay(anc)
		if err != nil {
			return RejectBadACL
		}
		if before, err = FromState(st, ""); err != nil {
			return RejectBadACL
		}
		if !before.Admin(author) {
			return RejectNotAdmin
		}
	}
	st, err := crdt.Replay(append(slices.Clip(anc), c))
	if err != nil {
		return RejectBadACL
	}
	after, err := FromState(st, "")
	if err != nil || !st.Exists() {
		return RejectBadACL
	}
	switch {
	case before == nil && after.Owner != author:
		return RejectNotOwner
	case before != nil && after.Owner != before.Owner && author != before.Owner:
		return RejectNotOwner
	}
	return ""
}
