package crdt

// History compaction (docs/design.md, Compaction). A document's oldest
// changes can be folded into a base state when one change X of its history
// is comparable with every other change: everything before X is an
// ancestor of X, everything after descends from X. Replay order then
// applies all of X's ancestors and X first, and every later change saw all
// of them, so replaying the kept changes on the base gives the same bytes as
// replaying the whole history (ReplayFrom). X becomes the base's only head:
// the frontier a later change names as its parent.
//
// A change that did not see X (made by a peer that missed X for longer
// than the horizon) cannot be merged exactly any more; the node detects it
// by its clock (not after Fold.Clock) and treats it as stale.

// Fold is the outcome of folding a document's history.
type Fold struct {
	Base   *State    // the state after the folded changes; Base.Heads is the frontier
	Folded []*Change // the changes folded into Base, in replay order
	Kept   []*Change // the changes still kept after Base, in replay order
	Clock  HLC       // the latest clock among the folded changes
}

// FoldHistory folds the longest prefix of a document's history that may be
// folded. base is the document's current base (nil if none), changes its
// kept changes. canFold is asked about each candidate cut change, newest
// first, with the number of changes that would stay after it; the first it
// accepts is the fold point. It returns nil when nothing can be folded.
func FoldHistory(base *State, changes []*Change, canFold func(c *Change, newer int) bool) (*Fold, error) {
	order, err := replayOrder(changes, base)
	if err != nil {
		return nil, err
	}
	cuts := cutPoints(order)
	for i := len(order) - 1; i >= 0; i-- {
		if !cuts[i] || !canFold(order[i], len(order)-1-i) {
			continue
		}
		folded := order[:i+1]
		st, err := ReplayFrom(base, folded)
		if err != nil {
			return nil, err
		}
		f := &Fold{Base: st, Folded: folded, Kept: order[i+1:]}
		for _, c := range folded {
			if c.Clock.Compare(f.Clock) > 0 {
				f.Clock = c.Clock
			}
		}
		return f, nil
	}
	return nil, nil
}

// cutPoints reports, for each position of a replay order, whether that
// change is comparable with every other: the only maximal change of the
// prefix ending at it and the only minimal change of the suffix starting at
// it. Parents outside order (the base's frontier) count as outside both.
func cutPoints(order []*Change) []bool {
	n := len(order)
	pos := make(map[ID]int, n)
	for i, c := range order {
		pos[c.id] = i
	}
	children := make([][]int, n)
	for i, c := range order {
		for _, p := range c.Parents {
			if j, ok := pos[p]; ok {
				children[j] = append(children[j], i)
			}
		}
	}
	// maximal[i]: how many changes of order[:i+1] have no child in it.
	maximal := make([]int, n)
	hasChild := make([]bool, n)
	open := 0
	for i, c := range order {
		open++
		for _, p := range c.Parents {
			if j, ok := pos[p]; ok && !hasChild[j] {
				hasChild[j] = true
				open--
			}
		}
		maximal[i] = open
	}
	// minimal[i]: how many changes of order[i:] have no parent in it. A
	// change's parents all come before it, so order[i] is always one.
	cuts := make([]bool, n)
	hasParent := make([]bool, n)
	roots := 0
	for i := n - 1; i >= 0; i-- {
		roots++
		for _, k := range children[i] {
			if !hasParent[k] {
				hasParent[k] = true
				roots--
			}
		}
		cuts[i] = maximal[i] == 1 && roots == 1
	}
	return cuts
}

// Clone returns a deep copy of the state.
func (s *State) Clone() (*State, error) {
	data, err := s.Encode()
	if err != nil {
		return nil, err
	}
	return DecodeState(data)
}
