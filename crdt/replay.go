package crdt

import (
	"container/heap"
	"fmt"
	"slices"
)

// bitsetLimit is the largest history replayed with an ancestor bit matrix
// (n²/8 bytes: 8 MiB at 8192 changes). Longer histories answer "did this
// change see that one?" by walking parents instead, so a document with a
// huge history, or a peer sending one, cannot make a replay's memory grow
// quadratically (DESIGN.md invariant 4). A variable so tests can force the
// walk.
var bitsetLimit = 8192

// Replay computes a document's state from all of its changes, in any order
// and with duplicates. Every parent of every change must be among them
// (ErrMissingParent otherwise). The result depends only on the set of changes.
func Replay(changes []*Change) (*State, error) { return ReplayFrom(nil, changes) }

// ReplayFrom computes a document's state from a folded base (see Fold) and
// the changes kept after it. Every parent must be among the changes or be
// one of base's heads (its frontier). base is not modified; nil means the
// empty document.
//
// A change that is not among the changes is folded into base, and every
// kept change descends from every folded one (Fold only folds up to a
// change comparable with all others), so it "saw" them all: the result is
// byte-identical to replaying the whole history.
func ReplayFrom(base *State, changes []*Change) (*State, error) {
	order, err := replayOrder(changes, base)
	if err != nil {
		return nil, err
	}
	n := len(order)
	pos := make(map[ID]int, n)
	for i, c := range order {
		pos[c.id] = i
	}
	s := NewState()
	if base != nil {
		if s, err = base.Clone(); err != nil {
			return nil, err
		}
	}
	if n > bitsetLimit {
		for i, c := range order {
			s.apply(c, walker(order, pos, i))
		}
		return s, nil
	}
	// anc[i] is the set of positions of i's ancestors. A parent always comes
	// before its child in replay order, so one pass fills it.
	words := (n + 63) / 64
	anc := make([][]uint64, n)
	for i, c := range order {
		bits := make([]uint64, words)
		for _, p := range c.Parents {
			j, ok := pos[p]
			if !ok {
				continue // folded into the base
			}
			bits[j/64] |= 1 << (j % 64)
			for w, x := range anc[j] {
				bits[w] |= x
			}
		}
		anc[i] = bits
		s.apply(c, func(id ID) bool {
			j, ok := pos[id]
			return !ok || bits[j/64]&(1<<(j%64)) != 0
		})
	}
	return s, nil
}

// walker answers whether a change is an ancestor of order[i] by walking
// parents from it, never below the target's position (an ancestor always
// comes earlier in replay order). A change not in order is folded into the
// base: an ancestor of every kept change.
func walker(order []*Change, pos map[ID]int, i int) func(ID) bool {
	return func(id ID) bool {
		target, ok := pos[id]
		if !ok {
			return true
		}
		if target >= i {
			return false
		}
		seen := map[int]bool{}
		stack := []int{i}
		for len(stack) > 0 {
			k := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, p := range order[k].Parents {
				j, ok := pos[p]
				if !ok {
					continue
				}
				if j == target {
					return true
				}
				if j > target && !seen[j] {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
		return false
	}
}

// ReplayOrder returns the changes, deduplicated, in replay order: a
// topological order of their DAG in which ties go to the least (clock,
// author, id).
func ReplayOrder(changes []*Change) ([]*Change, error) { return replayOrder(changes, nil) }

// replayOrder is ReplayOrder for changes kept after a folded base (nil:
// none): a parent among the base's heads (its frontier) counts as already
// applied.
func replayOrder(changes []*Change, base *State) ([]*Change, error) {
	var frontier []ID
	if base != nil {
		frontier = base.Heads
	}
	byID := make(map[ID]*Change, len(changes))
	for _, c := range changes {
		byID[c.id] = c
	}
	pending := make(map[ID]int, len(byID))
	children := make(map[ID][]*Change, len(byID))
	ready := &changeHeap{}
	for _, c := range byID {
		waits := 0
		for _, p := range c.Parents {
			if _, ok := byID[p]; !ok {
				if slices.Contains(frontier, p) {
					continue
				}
				return nil, fmt.Errorf("%w: change %s needs %s", ErrMissingParent, c.id, p)
			}
			children[p] = append(children[p], c)
			waits++
		}
		pending[c.id] = waits
		if waits == 0 {
			*ready = append(*ready, c)
		}
	}
	heap.Init(ready)
	order := make([]*Change, 0, len(byID))
	for ready.Len() > 0 {
		c := heap.Pop(ready).(*Change)
		order = append(order, c)
		for _, ch := range children[c.id] {
			pending[ch.id]--
			if pending[ch.id] == 0 {
				heap.Push(ready, ch)
			}
		}
	}
	if len(order) != len(byID) {
		return nil, fmt.Errorf("%w: changes form a cycle", ErrInvalidChange) // impossible with content ids
	}
	return order, nil
}

type changeHeap []*Change

func (h changeHeap) Len() int           { return len(h) }
func (h changeHeap) Less(i, j int) bool { return orderKey(h[i], h[j]) < 0 }
func (h changeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *changeHeap) Push(x any)        { *h = append(*h, x.(*Change)) }
func (h *changeHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
