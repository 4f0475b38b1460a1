package index

import (
	"bytes"
	"fmt"

	"github.com/barrel-db/barrel/datastore/tuple"
)

// Ops accepted in Cond.Op.
const (
	OpEq     = "=="
	OpNe     = "!="
	OpLt     = "<"
	OpLe     = "<="
	OpGt     = ">"
	OpGe     = ">="
	OpPrefix = "prefix"
	OpExists = "exists"
)

// Cond is one condition of a query on the values at a JSON pointer path.
//
// Values compare only within their type (null < bools < numbers < strings
// is the index order, but "< 5" never matches a string); int64 and float64
// compare numerically. A path with an array holds every element (multikey):
// a condition matches when any value at the path matches. So "!=" matches
// when some value at the path differs, and never matches a document without
// the path. "prefix" takes a string value; "exists" takes none (Value must
// be nil) and matches when the path holds at least one scalar. There is no
// "missing": the index has no entry for a document without the path.
type Cond struct {
	Path  string
	Op    string
	Value any
}

// cond is a validated Cond.
type cond struct {
	Cond
	toks []string
	enc  []byte // encoded Value; nil for exists
}

// class is the type-order class of an encoded value's tag: null, bool,
// number or string. Tags of one class share their high nibble.
func class(tag byte) byte { return tag & 0xF0 }

// Validate reports why a condition is malformed (bad pointer, unknown op,
// a value of the wrong kind), as Search would; nil if it is well formed.
func (c Cond) Validate() error {
	if _, err := compile(c); err != nil {
		return fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	return nil
}

func compile(c Cond) (cond, error) {
	if c.Path == "" {
		return cond{}, fmt.Errorf("condition on the root: path must name a field")
	}
	toks, err := ParsePointer(c.Path)
	if err != nil {
		return cond{}, err
	}
	cc := cond{Cond: c, toks: toks}
	switch c.Op {
	case OpExists:
		// A value would read as a wish ("exists false": documents without
		// the path) that the index cannot serve: it holds entries only for
		// documents that have the path. Refused rather than ignored.
		if c.Value != nil {
			return cond{}, fmt.Errorf("exists on %s takes no value (got %v): it matches documents with a scalar at the path; documents without the path cannot be queried", c.Path, c.Value)
		}
		return cc, nil
	case OpPrefix:
		if _, ok := c.Value.(string); !ok {
			return cond{}, fmt.Errorf("prefix on %s: value %v (%T) is not a string", c.Path, c.Value, c.Value)
		}
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe:
	default:
		return cond{}, fmt.Errorf("unknown op %q", c.Op)
	}
	cc.enc, err = tuple.AppendValue(nil, c.Value)
	if err != nil {
		return cond{}, fmt.Errorf("%s %s: %w", c.Path, c.Op, err)
	}
	return cc, nil
}

// valuesAt calls fn with the encoding of each scalar at toks in v, with
// the same walk as Entries (arrays fan out, nested arrays flatten), until fn
// returns true; it reports whether fn did.
func valuesAt(v any, toks []string, fn func(enc []byte) bool) bool {
	switch x := v.(type) {
	case map[string]any:
		if len(toks) == 0 {
			return false
		}
		c, ok := x[toks[0]]
		return ok && valuesAt(c, toks[1:], fn)
	case []any:
		for _, c := range x {
			if valuesAt(c, toks, fn) {
				return true
			}
		}
		return false
	default:
		if len(toks) != 0 {
			return false
		}
		enc, err := tuple.AppendValue(nil, v)
		return err == nil && fn(enc)
	}
}

// matchEnc reports whether one encoded value satisfies c.
func (c *cond) matchEnc(enc []byte) bool {
	switch c.Op {
	case OpExists:
		return true
	case OpEq:
		return bytes.Equal(enc, c.enc)
	case OpNe:
		return !bytes.Equal(enc, c.enc)
	case OpPrefix:
		// Escaping maps bytes one to one, so the encoding of s starts with
		// the unterminated encoding of p exactly when s starts with p.
		return enc[0] == tuple.TagString &&
			bytes.HasPrefix(enc, c.enc[:len(c.enc)-2]) // The encoding minus its terminator.
	}
	if class(enc[0]) != class(c.enc[0]) {
		return false
	}
	r := bytes.Compare(enc, c.enc)
	switch c.Op {
	case OpLt:
		return r < 0
	case OpLe:
		return r <= 0
	case OpGt:
		return r > 0
	default: // OpGe
		return r >= 0
	}
}

func (c *cond) match(doc map[string]any) bool {
	return valuesAt(doc, c.toks, c.matchEnc)
}

// Match reports whether doc satisfies c, with the semantics Search applies
// through the index (see Cond). An invalid condition matches nothing.
func Match(doc map[string]any, c Cond) bool {
	cc, err := compile(c)
	if err != nil {
		return false
	}
	return cc.match(doc)
}
