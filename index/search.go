package index

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"github.com/barrel-db/barrel/datastore/tuple"
)

// Limits of Query.Limit.
const (
	DefaultLimit = 100   // DefaultLimit is used when Query.Limit is 0.
	MaxLimit     = 10000 // MaxLimit is the largest Query.Limit accepted.
)

// Reader is the ordered store Search scans. *datastore.Store satisfies it.
// Range calls fn for each key in [lo, hi) in key order (descending when
// reverse; nil hi is unbounded) until fn returns false or an error; k and v
// are valid only during the call.
type Reader interface {
	Range(lo, hi []byte, reverse bool, fn func(k, v []byte) (bool, error)) error
}

// Query is a conjunction of conditions, optionally ordered by one path.
type Query struct {
	// Where holds conditions that must all hold (AND).
	Where []Cond
	// OrderBy is a JSON pointer; "" means index order of the driving
	// condition. Documents without a scalar at OrderBy are not returned.
	OrderBy string
	// Desc reverses the order.
	Desc bool
	// Limit is the page size: 0 means DefaultLimit; at most MaxLimit.
	Limit int
	// Cursor continues a previous page: pass the cursor Search returned.
	Cursor string
}

// Loader returns the current body of a live document; ok is false when it is
// missing or deleted.
type Loader func(docID string) (doc map[string]any, ok bool, err error)

// plan is a validated query and the index range that drives it.
type plan struct {
	conds   []cond
	toks    []string // driving path
	pp      []byte   // prefix + encoded driving path
	drive   *cond    // nil: scan all of pp (OrderBy, or exists)
	lo, hi  []byte
	reverse bool
	limit   int
}

// Search returns the ids of the documents matching q, at most one page, and
// a cursor for the next page ("" when the scan is exhausted; a non-empty
// cursor may lead to an empty page). Index keys live under prefix, written
// with Key.
//
// Plan: with OrderBy, Search scans OrderBy's path in value order (reversed by
// Desc); otherwise it scans the range of one driving condition, preferring
// == and prefix, then <, <=, >, >=, then exists and != (whose range is the
// whole path). Each candidate is loaded with load and checked against every
// condition with Match. A document whose path holds several values
// (multikey) has several index entries; it is returned only at its first
// entry in scan order, which makes pages disjoint without remembering past
// pages. Without OrderBy, results are in driving-index order (value, then
// document id).
//
// The index scan reads a consistent view, but load reads the current body:
// a document changed during the scan is judged by its current body, and may
// be missed or, if moved ahead of the scan, returned at its new position.
//
// Memory is bounded by the page: at most limit ids plus the set of those
// ids. An invalid query returns an error wrapping ErrBadQuery before any scan.
//
// load may be nil when IndexOnly(q): the ids then come from the index
// alone, as of one consistent view.
func Search(r Reader, prefix []byte, q Query, load Loader) (ids []string, cursor string, err error) {
	p, err := newPlan(prefix, q)
	if err != nil {
		return nil, "", err
	}
	if load == nil && !IndexOnly(q) {
		return nil, "", fmt.Errorf("search: %w: no loader for a query the index alone cannot answer", ErrBadQuery)
	}
	seen := make(map[string]struct{}, min(p.limit, 1024))
	var last []byte
	err = r.Range(p.lo, p.hi, p.reverse, func(k, _ []byte) (bool, error) {
		ev, id, err := p.parse(k)
		if err != nil {
			return false, err
		}
		if p.drive != nil && !p.drive.matchEnc(ev) {
			return true, nil // Cannot happen for a correct range; cheap to check.
		}
		if _, dup := seen[id]; dup {
			return true, nil
		}
		if load != nil { // Else the range is the answer (IndexOnly).
			doc, ok, err := load(id)
			if err != nil {
				return false, fmt.Errorf("load %s: %w", id, err)
			}
			if !ok || !p.first(doc, ev) || !p.matches(doc) {
				return true, nil
			}
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
		if len(ids) == p.limit {
			last = bytes.Clone(k)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	if last != nil {
		cursor = base64.RawURLEncoding.EncodeToString(last)
	}
	return ids, cursor, nil
}

// IndexOnly reports whether the index alone answers q: a single ==
// condition and no OrderBy. Every key of that condition's range is then
// one matching document (a document holds a value at a path once, however
// many times its arrays repeat it), and the writer keeps the index in the
// same batch as the documents, so no key outlives its document.
func IndexOnly(q Query) bool {
	return len(q.Where) == 1 && q.Where[0].Op == OpEq && q.OrderBy == ""
}

// Count returns how many documents match q's conditions (its Limit,
// Cursor and order do not matter). From the index alone when IndexOnly
// (load may then be nil), else a page of Search at a time, loading each
// candidate: memory is bounded by a page either way.
func Count(r Reader, prefix []byte, q Query, load Loader) (int, error) {
	q.Limit, q.Cursor, q.Desc = MaxLimit, "", false
	if IndexOnly(q) {
		p, err := newPlan(prefix, q)
		if err != nil {
			return 0, err
		}
		n := 0
		err = r.Range(p.lo, p.hi, false, func([]byte, []byte) (bool, error) {
			n++
			return true, nil
		})
		if err != nil {
			return 0, fmt.Errorf("count: %w", err)
		}
		return n, nil
	}
	if load == nil {
		return 0, fmt.Errorf("count: %w: no loader for a query the index alone cannot answer", ErrBadQuery)
	}
	n := 0
	for {
		ids, cursor, err := Search(r, prefix, q, load)
		if err != nil {
			return 0, err
		}
		n += len(ids)
		if cursor == "" {
			return n, nil
		}
		q.Cursor = cursor
	}
}

func badQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, args...))
}

func newPlan(prefix []byte, q Query) (*plan, error) {
	p := &plan{limit: q.Limit, reverse: q.Desc}
	switch {
	case q.Limit == 0:
		p.limit = DefaultLimit
	case q.Limit < 0 || q.Limit > MaxLimit:
		return nil, badQuery("limit %d not in [0, %d]", q.Limit, MaxLimit)
	}
	if len(q.Where) == 0 && q.OrderBy == "" {
		return nil, badQuery("no conditions and no order_by")
	}
	p.conds = make([]cond, len(q.Where))
	for i, c := range q.Where {
		cc, err := compile(c)
		if err != nil {
			return nil, fmt.Errorf("%w: condition %d: %w", ErrBadQuery, i, err)
		}
		p.conds[i] = cc
	}

	var drivePath string
	if q.OrderBy != "" {
		toks, err := ParsePointer(q.OrderBy)
		if err != nil {
			return nil, fmt.Errorf("%w: order_by: %w", ErrBadQuery, err)
		}
		drivePath, p.toks = q.OrderBy, toks
	} else {
		best := -1
		for i := range p.conds {
			if best < 0 || rank(p.conds[i].Op) < rank(p.conds[best].Op) {
				best = i
			}
		}
		p.drive = &p.conds[best]
		drivePath, p.toks = p.drive.Path, p.drive.toks
	}
	p.pp = tuple.AppendString(bytes.Clone(prefix), drivePath)
	p.lo, p.hi = p.driveRange()

	if q.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil {
			return nil, badQuery("cursor: %v", err)
		}
		if bytes.Compare(c, p.lo) < 0 || (p.hi != nil && bytes.Compare(c, p.hi) >= 0) {
			return nil, badQuery("cursor is not from this query")
		}
		if p.reverse {
			p.hi = c
		} else {
			p.lo = append(c, 0) // The smallest key after c.
		}
	}
	return p, nil
}

// rank orders ops by how narrow their index range usually is.
func rank(op string) int {
	switch op {
	case OpEq, OpPrefix:
		return 0
	case OpLt, OpLe, OpGt, OpGe:
		return 1
	default: // OpExists, OpNe: the whole path.
		return 2
	}
}

// driveRange returns the index range [lo, hi) of the driving condition, or
// of the whole path when there is none.
func (p *plan) driveRange() (lo, hi []byte) {
	pp := p.pp
	with := func(b ...byte) []byte { return append(bytes.Clone(pp), b...) }
	c := p.drive
	if c == nil || c.Op == OpExists || c.Op == OpNe {
		return pp, tuple.PrefixEnd(pp)
	}
	classLo := class(c.enc[0])
	classHi := classLo + 0x10
	v := with(c.enc...)
	switch c.Op {
	case OpEq:
		return v, tuple.PrefixEnd(v)
	case OpPrefix:
		lo = with(c.enc[:len(c.enc)-2]...) // Unterminated: every extension.
		return lo, tuple.PrefixEnd(lo)
	case OpLt:
		return with(classLo), v
	case OpLe:
		return with(classLo), tuple.PrefixEnd(v)
	case OpGt:
		return tuple.PrefixEnd(v), with(classHi)
	default: // OpGe
		return v, with(classHi)
	}
}

// parse splits an index key of the driving path into its encoded value
// and document id.
func (p *plan) parse(k []byte) (ev []byte, id string, err error) {
	if !bytes.HasPrefix(k, p.pp) {
		return nil, "", fmt.Errorf("key %x outside its path: %w", k, ErrCorruptIndex)
	}
	rest := k[len(p.pp):]
	_, after, err := tuple.ReadValue(rest)
	if err != nil {
		return nil, "", fmt.Errorf("key %x: %w: %w", k, ErrCorruptIndex, err)
	}
	id, tail, err := tuple.ReadString(after)
	if err != nil || len(tail) != 0 {
		return nil, "", fmt.Errorf("key %x: bad document id: %w", k, ErrCorruptIndex)
	}
	return rest[:len(rest)-len(after)], id, nil
}

// first reports whether ev is the document's first value in scan order
// among its values in the driving range: a multikey document is considered
// only there, so it is returned once across all pages.
func (p *plan) first(doc map[string]any, ev []byte) bool {
	var best []byte
	valuesAt(doc, p.toks, func(enc []byte) bool {
		if p.drive != nil && !p.drive.matchEnc(enc) {
			return false
		}
		c := bytes.Compare(enc, best)
		if best == nil || (!p.reverse && c < 0) || (p.reverse && c > 0) {
			best = enc
		}
		return false
	})
	return bytes.Equal(best, ev)
}

func (p *plan) matches(doc map[string]any) bool {
	for i := range p.conds {
		if !p.conds[i].match(doc) {
			return false
		}
	}
	return true
}
