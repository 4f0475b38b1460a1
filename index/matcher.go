package index

import (
	"fmt"
	"slices"

	"github.com/barrel-db/barrel/datastore/tuple"
)

// Matcher is a compiled AND of conditions, for testing documents one at a
// time (a live query re-evaluating the documents a write touched) with the
// semantics Search applies through the index.
type Matcher struct {
	conds []cond
	eqKey string // LeafKeys form of the first == condition; "" without one
	eqLen int    // bytes of its path part
}

// Compile validates conds and compiles them into a Matcher. No conditions
// match every document. The error wraps ErrBadQuery.
func Compile(conds []Cond) (*Matcher, error) {
	m := &Matcher{conds: make([]cond, 0, len(conds))}
	for i, c := range conds {
		cc, err := compile(c)
		if err != nil {
			return nil, fmt.Errorf("%w: condition %d: %w", ErrBadQuery, i, err)
		}
		if cc.Op == OpEq && m.eqKey == "" {
			path := ""
			for _, t := range cc.toks {
				path = appendToken(path, t)
			}
			p := tuple.AppendString(nil, path)
			m.eqKey, m.eqLen = string(append(p, cc.enc...)), len(p)
		}
		m.conds = append(m.conds, cc)
	}
	return m, nil
}

// Match reports whether doc satisfies every condition; a nil doc (deleted
// or absent) matches nothing.
func (m *Matcher) Match(doc map[string]any) bool {
	if doc == nil {
		return false
	}
	for i := range m.conds {
		if !m.conds[i].match(doc) {
			return false
		}
	}
	return true
}

// EqKey is the first == condition as one of the strings LeafKeys returns,
// so a caller can find the matchers a document may satisfy by looking its
// leaf keys up in a map: a document matches only if LeafKeys(doc) holds
// EqKey. ok is false when the conditions have no ==.
func (m *Matcher) EqKey() (key string, ok bool) { return m.eqKey, m.eqKey != "" }

// EqPath is the path part of EqKey: matchers with the same EqPath find
// their candidates with one EqKeys walk of a document. "" without an ==.
func (m *Matcher) EqPath() string { return m.eqKey[:m.eqLen] }

// EqKeys appends to dst the LeafKeys of doc's values at m's EqPath (those
// an EqKey on that path can be): a document's candidates among matchers
// sharing the path, without walking the rest of the document.
func (m *Matcher) EqKeys(dst []string, doc map[string]any) []string {
	i := slices.IndexFunc(m.conds, func(c cond) bool { return c.Op == OpEq })
	if i < 0 {
		return dst
	}
	path := m.EqPath()
	valuesAt(doc, m.conds[i].toks, func(enc []byte) bool {
		dst = append(dst, path+string(enc))
		return false
	})
	return dst
}

// LeafKeys returns one string per indexed (path, value) pair of doc, in the
// form EqKey uses, sorted and deduplicated.
func LeafKeys(doc map[string]any) []string {
	ks := keys(nil, "", doc)
	out := make([]string, len(ks))
	for i, k := range ks {
		// keys ends each with AppendString(""): the two-byte terminator.
		out[i] = string(k[:len(k)-2])
	}
	return out
}
