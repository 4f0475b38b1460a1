package crdt

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/fxamacker/cbor/v2"
)

// Writer records the change that last wrote (or deleted) a path. Writers are
// how a later write learns whether it displaces a value it never saw.
type Writer struct {
	_       struct{} `cbor:",toarray"`
	Rev     ID
	Deleted bool // the write deleted the path
}

// Conflict is a write that lost to a concurrent one: the losing value (or
// deletion) and the change that made it.
type Conflict struct {
	_       struct{} `cbor:",toarray"`
	Path    string   // JSON pointer; "" is the whole document
	Value   any      // the losing value; nil when Deleted
	Deleted bool     // the losing write was a delete
	Rev     ID
}

// State is the materialized state of one document: its body, the heads of its
// change DAG, and the bookkeeping the merge rules need. Encode gives the same
// bytes on every replica that applied the same set of changes. DecodeView's
// reader (viewdec.go) reads these fields by position: change both together.
type State struct {
	_         struct{} `cbor:",toarray"`
	Heads     []ID     // sorted
	Last      ID       // last change in replay order: the document's revision
	Count     uint64
	Deleted   bool
	DeletedBy ID
	Body      map[string]any
	Writers   map[string]Writer
	Sets      map[string]map[string][]ID // path -> element (canonical JSON) -> add tags, sorted
	Conflicts []Conflict                 // sorted by path, then rev
}

// NewState returns the state of a document that has no changes.
func NewState() *State {
	return &State{Body: map[string]any{}, Writers: map[string]Writer{}, Sets: map[string]map[string][]ID{}}
}

// Exists reports whether the document has any change.
func (s *State) Exists() bool { return s.Count > 0 }

// Encode returns the state's canonical encoding.
func (s *State) Encode() ([]byte, error) { return encMode.Marshal(s) }

// View returns what a reader sees of s (what DecodeView of its encoding
// returns: heads, revision, count, deletion, body and conflicts, without
// the merge bookkeeping) as a copy that shares nothing the merge rules
// change in place, so it can be read while the document is merged further.
func (s *State) View() *State {
	v := &State{Heads: slices.Clone(s.Heads), Last: s.Last, Count: s.Count, Deleted: s.Deleted,
		DeletedBy: s.DeletedBy, Body: Copy(s.Body).(map[string]any)}
	if len(s.Conflicts) > 0 {
		v.Conflicts = make([]Conflict, len(s.Conflicts))
		for i, c := range s.Conflicts {
			c.Value = Copy(c.Value)
			v.Conflicts[i] = c
		}
	}
	return v
}

// DecodeState parses a state produced by Encode.
func DecodeState(data []byte) (*State, error) {
	s := new(State)
	if err := stDec.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if err := s.normalizeValues(); err != nil {
		return nil, err
	}
	if s.Writers == nil {
		s.Writers = map[string]Writer{}
	}
	if s.Sets == nil {
		s.Sets = map[string]map[string][]ID{}
	}
	return s, nil
}

// IsNext reports whether c saw every change of the document (its parents are
// exactly the heads), so that ApplyNext can apply it incrementally.
func (s *State) IsNext(c *Change) bool { return slices.Equal(c.Parents, s.Heads) }

// ApplyNext applies a change whose parents are exactly the document's heads.
// It reports false, changing nothing, for any other change: the caller must
// then Replay the document's changes.
func (s *State) ApplyNext(c *Change) bool {
	if !s.IsNext(c) {
		return false
	}
	s.apply(c, func(ID) bool { return true })
	return true
}

// apply runs one change. seen reports whether a change is an ancestor of c.
func (s *State) apply(c *Change, seen func(ID) bool) {
	a := applier{s: s, id: c.id, seen: func(id ID) bool { return id == c.id || seen(id) }}
	ops := c.Ops
	if unseen := c.Unseen(); len(unseen) > 0 {
		// Invariant (DESIGN.md 7): what the change's author never saw is
		// not displaced silently, even under parents that cover it.
		ops = ops[1:]
		saw := a.seen
		a.seen = func(id ID) bool { return saw(id) && !slices.Contains(unseen, id) }
	}
	// Invariant (DESIGN.md 1): a change resolves every conflict it saw.
	s.Conflicts = slices.DeleteFunc(s.Conflicts, func(cf Conflict) bool { return a.seen(cf.Rev) })
	if s.Deleted && len(ops) > 0 && ops[0].Kind != OpDeleteDoc {
		if a.seen(s.DeletedBy) {
			s.Body, s.Writers, s.Sets = map[string]any{}, map[string]Writer{}, map[string]map[string][]ID{}
		} else {
			a.conflict(Conflict{Deleted: true, Rev: s.DeletedBy})
		}
		s.Deleted, s.DeletedBy = false, ID{}
	}
	for _, op := range ops {
		tokens, _ := ParsePointer(op.Path) // validated by Seal/Decode
		switch op.Kind {
		case OpSet:
			a.set(op.Path, tokens, Copy(op.Value))
		case OpDelete:
			a.remove(op.Path, tokens)
		case OpIncr:
			a.incr(op.Path, tokens, op.Value)
		case OpAdd, OpRemove:
			a.setOp(op.Kind, op.Path, tokens, op.Value)
		case OpDeleteDoc:
			a.deleteDoc()
		}
	}
	s.Heads = slices.DeleteFunc(s.Heads, func(h ID) bool { return slices.Contains(c.Parents, h) })
	s.Heads = append(s.Heads, c.id)
	slices.SortFunc(s.Heads, func(x, y ID) int { return bytes.Compare(x[:], y[:]) })
	s.Last = c.id
	s.Count++
}

type applier struct {
	s    *State
	id   ID
	seen func(ID) bool
}

func (a *applier) conflict(cf Conflict) {
	s := a.s
	i := sort.Search(len(s.Conflicts), func(i int) bool {
		x := s.Conflicts[i]
		return x.Path > cf.Path || (x.Path == cf.Path && bytes.Compare(x.Rev[:], cf.Rev[:]) >= 0)
	})
	if i < len(s.Conflicts) && s.Conflicts[i].Path == cf.Path && s.Conflicts[i].Rev == cf.Rev {
		return
	}
	if cf.Deleted {
		cf.Value = nil
	}
	s.Conflicts = slices.Insert(s.Conflicts, i, cf)
}

// displace is called before the content at path is overwritten or removed. Every
// write of that content that the current change did not see becomes a conflict.
func (a *applier) displace(path string, tokens []string) {
	s := a.s
	old, exists := Lookup(s.Body, tokens)
	valueAt := func(p string) any {
		if p == path {
			return Copy(old)
		}
		t, _ := ParsePointer(p)
		v, _ := Lookup(s.Body, t)
		return Copy(v)
	}
	self, hasSelf := s.Writers[path]
	if !hasSelf {
		self, hasSelf = a.nearestAncestorWriter(path)
	}
	if hasSelf && !a.seen(self.Rev) && (exists || self.Deleted) {
		a.conflict(Conflict{Path: path, Value: valueAt(path), Deleted: self.Deleted && !exists, Rev: self.Rev})
	}
	for p, w := range s.Writers {
		if p != path && isUnder(p, path) {
			if !a.seen(w.Rev) {
				a.conflict(Conflict{Path: p, Value: valueAt(p), Deleted: w.Deleted, Rev: w.Rev})
			}
			delete(s.Writers, p)
		}
	}
	delete(s.Writers, path)
	for p, elems := range s.Sets {
		if !isUnder(p, path) {
			continue
		}
		for _, tags := range elems {
			for _, t := range tags {
				if !a.seen(t) {
					a.conflict(Conflict{Path: p, Value: valueAt(p), Rev: t})
				}
			}
		}
		delete(s.Sets, p)
	}
}

// forget drops the bookkeeping of path and everything under it.
func (a *applier) forget(path string) {
	for p := range a.s.Writers {
		if isUnder(p, path) {
			delete(a.s.Writers, p)
		}
	}
	for p := range a.s.Sets {
		if isUnder(p, path) {
			delete(a.s.Sets, p)
		}
	}
}

func (a *applier) nearestAncestorWriter(path string) (Writer, bool) {
	for p := path; p != ""; {
		i := lastSlash(p)
		p = p[:i]
		if w, ok := a.s.Writers[p]; ok {
			return w, true
		}
	}
	return Writer{}, false
}

func lastSlash(p string) int {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return i
		}
	}
	return 0
}

// container returns the object that holds the last token, creating objects on
// the way and displacing non-object values that stand in it.
func (a *applier) container(tokens []string) map[string]any {
	cur := a.s.Body
	for i, t := range tokens[:len(tokens)-1] {
		next, ok := cur[t].(map[string]any)
		if !ok {
			if _, exists := cur[t]; exists {
				a.displace(FormatPointer(tokens[:i+1]), tokens[:i+1])
			}
			next = map[string]any{}
			cur[t] = next
		}
		cur = next
	}
	return cur
}

func (a *applier) set(path string, tokens []string, v any) {
	parent := a.container(tokens)
	if old, ok := Lookup(a.s.Body, tokens); ok && Equal(old, v) {
		// Same value: nothing is lost, so nothing conflicts. The write
		// still takes the path over.
		a.forget(path)
	} else {
		a.displace(path, tokens)
	}
	parent[tokens[len(tokens)-1]] = v
	a.s.Writers[path] = Writer{Rev: a.id}
}

func (a *applier) remove(path string, tokens []string) {
	a.displace(path, tokens)
	if parent, ok := Lookup(a.s.Body, tokens[:len(tokens)-1]); ok {
		if m, ok := parent.(map[string]any); ok {
			delete(m, tokens[len(tokens)-1])
		}
	}
	a.s.Writers[path] = Writer{Rev: a.id, Deleted: true}
}

// incr adds delta to the number at path. What stands in its way (a
// non-number at path, a non-object at one of its ancestors) is replaced: by
// delta at path, by objects on the way. Invariant (DESIGN.md 7): the
// replaced value is never lost silently. It becomes a conflict whether or
// not the increment saw the write that made it (displace alone would keep
// only writes the change did not see), and stays in _conflicts until a
// later change resolves it. A node refuses such an increment from its own
// API (it is a client error); this rule is for an increment concurrent with
// the write of a non-number, which only replication brings together, and
// for a peer that sends one anyway.
func (a *applier) incr(path string, tokens []string, delta any) {
	a.keepInTheWay(tokens)
	parent := a.container(tokens)
	last := tokens[len(tokens)-1]
	if _, isSet := a.s.Sets[path]; !isSet {
		if sum, ok := addNumbers(parent[last], delta); ok {
			parent[last] = sum
			if _, ok := a.s.Writers[path]; !ok {
				a.s.Writers[path] = Writer{Rev: a.id}
			}
			return
		}
	}
	a.displace(path, tokens)
	parent[last] = delta
	a.s.Writers[path] = Writer{Rev: a.id}
}

// keepInTheWay records as a conflict the value an increment at tokens is
// about to replace: a non-number at the path itself, or the first
// non-object on the way to it. The conflict names the write that made the
// value (the path's writer, or its nearest ancestor's).
func (a *applier) keepInTheWay(tokens []string) {
	var cur any = a.s.Body
	for i, t := range tokens {
		m, ok := cur.(map[string]any)
		if !ok {
			a.keepValue(FormatPointer(tokens[:i]), cur)
			return
		}
		if cur, ok = m[t]; !ok {
			return
		}
	}
	switch cur.(type) {
	case int64, float64:
		return
	}
	a.keepValue(FormatPointer(tokens), cur)
}

func (a *applier) keepValue(path string, v any) {
	w, ok := a.s.Writers[path]
	if !ok {
		w, ok = a.nearestAncestorWriter(path)
	}
	rev := a.id
	if ok {
		rev = w.Rev
	}
	a.conflict(Conflict{Path: path, Value: Copy(v), Rev: rev})
}

func addNumbers(cur, delta any) (any, bool) {
	switch x := cur.(type) {
	case int64:
		if d, ok := delta.(int64); ok {
			if (d > 0 && x > math.MaxInt64-d) || (d < 0 && x < math.MinInt64-d) {
				v, _ := normFloat(float64(x) + float64(d))
				return v, true
			}
			return x + d, true
		}
		v, _ := normFloat(float64(x) + delta.(float64))
		return v, true
	case float64:
		var d float64
		switch y := delta.(type) {
		case int64:
			d = float64(y)
		case float64:
			d = y
		}
		v, err := normFloat(x + d)
		if err != nil { // overflow to ±Inf: saturate rather than store a non-JSON number
			return cur, true
		}
		return v, true
	}
	return nil, false
}

func (a *applier) setOp(kind OpKind, path string, tokens []string, elem any) {
	s := a.s
	set, ok := s.Sets[path]
	if !ok {
		if kind == OpRemove {
			return
		}
		a.container(tokens)
		a.displace(path, tokens)
		set = map[string][]ID{}
		s.Sets[path] = set
		s.Writers[path] = Writer{Rev: a.id}
	}
	key := canonicalKey(elem)
	if kind == OpAdd {
		tags := set[key]
		i, found := slices.BinarySearchFunc(tags, a.id, func(x, y ID) int { return bytes.Compare(x[:], y[:]) })
		if !found {
			set[key] = slices.Insert(tags, i, a.id)
		}
	} else {
		tags := slices.DeleteFunc(set[key], a.seen)
		if len(tags) == 0 {
			delete(set, key)
		} else {
			set[key] = tags
		}
	}
	parent := a.container(tokens)
	parent[tokens[len(tokens)-1]] = setValue(set)
}

// setValue renders an observed-remove set as an array sorted by canonical JSON.
func setValue(set map[string][]ID) []any {
	keys := sortedKeys(set)
	out := make([]any, 0, len(keys))
	for _, k := range keys {
		v, err := ParseJSON([]byte(k))
		if err != nil {
			panic(fmt.Sprintf("crdt: set element %q: %v", k, err)) // keys come from canonicalKey
		}
		out = append(out, v)
	}
	return out
}

func (a *applier) deleteDoc() {
	s := a.s
	for _, w := range s.Writers {
		if !a.seen(w.Rev) {
			a.conflict(Conflict{Deleted: true, Rev: a.id})
			return
		}
	}
	for _, elems := range s.Sets {
		for _, tags := range elems {
			for _, t := range tags {
				if !a.seen(t) {
					a.conflict(Conflict{Deleted: true, Rev: a.id})
					return
				}
			}
		}
	}
	s.Deleted, s.DeletedBy = true, a.id
}

// DecodeView parses what a reader needs of an encoded state: heads,
// revision, count, deletion, body and conflicts. The merge bookkeeping
// (Writers, Sets) is skipped, not built, which makes reads several times
// cheaper. The result must not be given to ApplyNext or apply changes. It
// never panics on arbitrary input, and its memory is proportional to the
// input's size. It reads with a decoder of its own (viewdec.go), which
// refuses a few shapes crdt never writes that decodeViewReflect accepted
// (errViewShape).
func DecodeView(data []byte) (*State, error) { return decodeView(data) }

// decodeViewReflect is DecodeView through the CBOR library: the reference
// the hand-written reader is tested and fuzzed against.
func decodeViewReflect(data []byte) (*State, error) {
	var raw []cbor.RawMessage
	if err := stDec.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	if len(raw) != 9 {
		return nil, fmt.Errorf("decode state: %d fields, want 9", len(raw))
	}
	s := &State{}
	for _, f := range []struct {
		i int
		v any
	}{{0, &s.Heads}, {1, &s.Last}, {2, &s.Count}, {3, &s.Deleted}, {4, &s.DeletedBy}, {5, &s.Body}, {8, &s.Conflicts}} {
		if err := stDec.Unmarshal(raw[f.i], f.v); err != nil {
			return nil, fmt.Errorf("decode state field %d: %w", f.i, err)
		}
	}
	if err := s.normalizeValues(); err != nil {
		return nil, err
	}
	return s, nil
}

// normalizeValues turns decoded CBOR values (uint64, map[any]any...) of the
// body and the conflicts into normalized JSON values.
func (s *State) normalizeValues() error {
	body, err := normalizeStored(s.Body)
	if err != nil {
		return fmt.Errorf("decode state body: %w", err)
	}
	s.Body, _ = body.(map[string]any)
	if s.Body == nil {
		s.Body = map[string]any{}
	}
	for i := range s.Conflicts {
		if s.Conflicts[i].Value, err = normalizeStored(s.Conflicts[i].Value); err != nil {
			return fmt.Errorf("decode state conflict: %w", err)
		}
	}
	return nil
}
