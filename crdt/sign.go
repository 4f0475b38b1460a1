package crdt

import (
	"crypto/sha256"
	"fmt"
)

// Group signatures. Signing every change costs an ed25519 signature (~25
// µs) and receiving one a verification (~60 µs), which bounded bulk writes
// and initial sync. So a writer signs a group of up to 2^MaxProof changes
// once: the changes' ids are the leaves of a Merkle tree, the author signs
// its root, and each change carries the signature, its leaf position and
// the path to the root. A change stays verifiable on its own (a peer can
// receive any subset of a group), at the cost of MaxProof*32 bytes at most.
// A group of one is signed directly over its id (no proof).
//
// Domain separation: leaves are content ids (SHA-256 of a change's
// encoding); inner nodes are SHA-256(0x01 || left || right); the signed
// message of a tree is SHA-256(0x02 || root), so it can be neither an id
// nor an inner node. Missing leaves of the last level are zero ids, which
// no content hashes to.

// SignedMessage returns the bytes the change's signature covers: its id,
// or the domain-separated root its proof leads to.
func (c *Change) SignedMessage() []byte {
	if len(c.Proof) == 0 {
		return c.id[:]
	}
	node := c.id
	for level, sib := range c.Proof {
		if c.Leaf>>level&1 == 0 {
			node = inner(node, sib)
		} else {
			node = inner(sib, node)
		}
	}
	return rootMessage(node)
}

func inner(l, r ID) ID {
	var b [65]byte
	b[0] = 0x01
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

func rootMessage(root ID) []byte {
	var b [33]byte
	b[0] = 0x02
	copy(b[1:], root[:])
	m := sha256.Sum256(b[:])
	return m[:]
}

// SealGroup seals every change (Seal without signing), then signs them in
// groups of at most 2^MaxProof changes with one signature per group. The
// changes must all have the same author. On error nothing is signed.
func SealGroup(cs []*Change, s Signer) error {
	for _, c := range cs {
		if err := c.Seal(nil); err != nil {
			return err
		}
	}
	return SignGroup(cs, s)
}

// SignGroup signs changes that are already sealed (their ids computed), in
// groups of at most 2^MaxProof.
func SignGroup(cs []*Change, s Signer) error {
	const size = 1 << MaxProof
	for start := 0; start < len(cs); start += size {
		if err := signTree(cs[start:min(start+size, len(cs))], s); err != nil {
			return err
		}
	}
	return nil
}

func signTree(cs []*Change, s Signer) error {
	if len(cs) == 1 {
		c := cs[0]
		c.Proof, c.Leaf = nil, 0
		sig, err := s.Sign(c.id[:])
		if err != nil {
			return fmt.Errorf("sign change: %w", err)
		}
		c.Sig = sig
		return nil
	}
	depth := 0
	for 1<<depth < len(cs) {
		depth++
	}
	leaves := make([]ID, len(cs))
	for i, c := range cs {
		leaves[i] = c.id
	}
	t := NewTree(leaves, depth)
	for i, c := range cs {
		c.Proof, c.Leaf = t.Proof(uint32(i)), uint32(i)
	}
	sig, err := s.Sign(t.Message())
	if err != nil {
		return fmt.Errorf("sign change group: %w", err)
	}
	for _, c := range cs {
		c.Sig = sig
	}
	return nil
}

// Tree is the Merkle tree of a signing group, built from its leaves: what
// SignGroup signs, and what a store that keeps a group's leaves once (not
// every change's proof) rebuilds the proofs from.
type Tree struct {
	levels [][]ID // levels[0]: the leaves, padded with zero ids to 2^depth
}

// NewTree builds the tree of depth depth over leaves (at most 2^depth; the
// positions after them are zero ids).
func NewTree(leaves []ID, depth int) *Tree {
	level := make([]ID, 1<<depth)
	copy(level, leaves)
	t := &Tree{levels: [][]ID{level}}
	for range depth {
		next := make([]ID, len(level)/2)
		for i := range next {
			next[i] = inner(level[2*i], level[2*i+1])
		}
		t.levels = append(t.levels, next)
		level = next
	}
	return t
}

// Depth is the length of every proof of the tree.
func (t *Tree) Depth() int { return len(t.levels) - 1 }

// Proof is the path from leaf to the root (Change.Proof).
func (t *Tree) Proof(leaf uint32) []ID {
	p := make([]ID, t.Depth())
	for d := range p {
		p[d] = t.levels[d][int(leaf>>d)^1]
	}
	return p
}

// Message is what the group's signature covers (Change.SignedMessage of
// every leaf).
func (t *Tree) Message() []byte { return rootMessage(t.levels[len(t.levels)-1][0]) }
