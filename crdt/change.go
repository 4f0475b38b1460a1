package crdt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"slices"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// ID is a change's content id: SHA-256 of its canonical encoding without the
// signature.
type ID [32]byte

// String returns the id in lower-case hex, the form used as a revision.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero id.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses a hex revision string.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 64 {
		return id, fmt.Errorf("revision %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("revision %q: %w", s, err)
	}
	return id, nil
}

// OpKind names an operation.
type OpKind uint8

// Operation kinds. Values are part of the encoding: never renumber.
const (
	OpSet       OpKind = 1 // set Path to Value
	OpDelete    OpKind = 2 // delete Path
	OpIncr      OpKind = 3 // add Value (a number) to the number at Path
	OpAdd       OpKind = 4 // add element Value to the set at Path
	OpRemove    OpKind = 5 // remove element Value from the set at Path
	OpDeleteDoc OpKind = 6 // delete the document (Path empty)
	// OpUnseen names changes the change did not see although its parents
	// descend from them (Value: their ids, 64 hex digits each, sorted; Path
	// empty; the first op, never the only one). A value one of them wrote
	// that the change overwrites stays in the document's conflicts, as if
	// the two writes were concurrent. A returning peer re-issues its own
	// offline edits on top of a snapshot with it, so that they displace
	// nothing silently that their author never saw (docs/design.md,
	// Compaction; DESIGN.md invariant 7).
	OpUnseen OpKind = 7
)

// MaxUnseen bounds the ids of one OpUnseen.
const MaxUnseen = 1024

func (k OpKind) String() string {
	switch k {
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpIncr:
		return "incr"
	case OpAdd:
		return "add"
	case OpRemove:
		return "remove"
	case OpDeleteDoc:
		return "delete_doc"
	case OpUnseen:
		return "unseen"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one operation of a change on a path inside the document.
type Op struct {
	_     struct{} `cbor:",toarray"`
	Kind  OpKind
	Path  string // JSON pointer; "" only for OpDeleteDoc
	Value any    // normalized JSON value; nil for deletes
}

// Tx tags a change as part of a multi-document transaction of Count changes:
// a receiver applies the group all or nothing.
type Tx struct {
	_     struct{} `cbor:",toarray"`
	ID    string
	Count uint32
}

// Change is one immutable write to one document.
type Change struct {
	_       struct{} `cbor:",toarray"`
	DB      string
	Doc     string
	Parents []ID // sorted, unique
	Clock   HLC
	Author  []byte // the author's libp2p peer id (bytes)
	Ops     []Op
	Tx      *Tx
	Sig     []byte // author's signature over SignedMessage
	Proof   []ID   // Merkle path from ID to the signed root of its group (empty: Sig signs ID)
	Leaf    uint32 // ID's position among the group's leaves

	id       ID     // cached content id; set by Seal and Decode
	unsigned []byte // cached encoding without Sig, Proof, Leaf; set by Seal
}

// ID returns the change's content id. It is valid after Seal or Decode.
func (c *Change) ID() ID { return c.id }

// Signer signs data with a node's private key (libp2p's crypto.PrivKey
// satisfies it).
type Signer interface {
	Sign(data []byte) ([]byte, error)
}

// Verifier checks sig over data for the given author id. It returns an
// error when the signature does not verify.
type Verifier func(author, data, sig []byte) error

var (
	encMode cbor.EncMode
	decMode cbor.DecMode // changes (from a peer or the store): the reader limits of limits.go
	stDec   cbor.DecMode // states, which only this node writes: bounded by their bytes
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	opts := cbor.DecOptions{
		MaxNestedLevels:  changeNesting,
		MaxArrayElements: changeArray,
		MaxMapPairs:      changeMapPairs,
		DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		UTF8:             cbor.UTF8RejectInvalid,
	}
	if decMode, err = opts.DecMode(); err != nil {
		panic(err)
	}
	opts.MaxNestedLevels, opts.MaxArrayElements, opts.MaxMapPairs = stateNesting, math.MaxInt32, math.MaxInt32
	if stDec, err = opts.DecMode(); err != nil {
		panic(err)
	}
}

// Marshal encodes v in deterministic CBOR (the canonical form of every
// persisted crdt type).
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes deterministic CBOR produced by Marshal into v. Values
// typed any come back as CBOR decodes them; pass them through Normalize.
// It is for what this node stored: like DecodeState it is bounded by the
// bytes given, not by element counts (the reader limits of limits.go).
func Unmarshal(data []byte, v any) error { return stDec.Unmarshal(data, v) }

// unsignedBytes is the encoding the content id and the signature cover.
func (c *Change) unsignedBytes() ([]byte, error) {
	u := *c
	u.Sig, u.Proof, u.Leaf, u.unsigned = nil, nil, 0, nil
	return encMode.Marshal(&u)
}

// unsignedTail is how an unsigned encoding ends: Sig and Proof null, Leaf 0.
var unsignedTail = []byte{0xf6, 0xf6, 0x00}

// Seal validates the change, normalizes its parents, computes its id and
// signs it. The change must not be modified afterwards. A change past a
// writer limit (CheckLimits) is a *LimitError matching ErrLimit; any other
// invalid change matches ErrInvalidChange.
func (c *Change) Seal(s Signer) error {
	slices.SortFunc(c.Parents, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	c.Parents = slices.Compact(c.Parents)
	if err := c.validate(); err != nil {
		return err
	}
	ub, err := c.unsignedBytes()
	if err != nil {
		return fmt.Errorf("encode change: %w", err)
	}
	c.unsigned = ub
	if err := c.CheckLimits(); err != nil {
		c.unsigned = nil
		return err
	}
	c.id = sha256.Sum256(ub)
	if s != nil {
		sig, err := s.Sign(c.id[:])
		if err != nil {
			return fmt.Errorf("sign change: %w", err)
		}
		c.Sig = sig
	}
	return nil
}

// Encode returns the change's canonical encoding including its signature.
func (c *Change) Encode() ([]byte, error) { return encMode.Marshal(c) }

// EncodeSealed returns the same bytes as Encode, faster: it reuses the
// unsigned encoding Seal made for the id (signing changes only its last
// three fields). Only for a change sealed by this process and not modified
// since (the writer's path); it falls back to Encode otherwise.
func (c *Change) EncodeSealed() ([]byte, error) {
	if !bytes.HasSuffix(c.unsigned, unsignedTail) {
		return c.Encode()
	}
	out := slices.Clip(c.unsigned[:len(c.unsigned)-len(unsignedTail)])
	for _, v := range []any{c.Sig, c.Proof, c.Leaf} {
		b, err := encMode.Marshal(v)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// Decode parses and validates an encoded change and computes its id. It never
// panics on arbitrary input; a too large input is refused before decoding.
// It accepts a margin past the writer limits (limits.go): a receiver calls
// CheckLimits to refuse such a change by id.
func Decode(data []byte) (*Change, error) {
	if len(data) > MaxChangeBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidChange, len(data), MaxChangeBytes)
	}
	c := new(Change)
	if err := decMode.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidChange, err)
	}
	for i := range c.Ops {
		v, err := Normalize(c.Ops[i].Value)
		if err != nil {
			return nil, fmt.Errorf("%w: op %d: %v", ErrInvalidChange, i, err)
		}
		c.Ops[i].Value = v
	}
	if !slices.IsSortedFunc(c.Parents, func(a, b ID) int { return bytes.Compare(a[:], b[:]) }) ||
		len(slices.Compact(slices.Clone(c.Parents))) != len(c.Parents) {
		return nil, fmt.Errorf("%w: parents not sorted and unique", ErrInvalidChange)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	ub, err := c.unsignedBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidChange, err)
	}
	c.id = sha256.Sum256(ub)
	return c, nil
}

// Verify checks the change's signature with v.
func (c *Change) Verify(v Verifier) error {
	if len(c.Sig) == 0 {
		return fmt.Errorf("%w: change %s is unsigned", ErrBadSignature, c.id)
	}
	if err := v(c.Author, c.SignedMessage(), c.Sig); err != nil {
		return fmt.Errorf("%w: change %s: %v", ErrBadSignature, c.id, err)
	}
	return nil
}

func (c *Change) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidChange, fmt.Sprintf(format, args...))
	}
	if err := ValidateName("database", c.DB); err != nil {
		return bad("%v", err)
	}
	if err := ValidateName("document id", c.Doc); err != nil {
		return bad("%v", err)
	}
	if len(c.Proof) > MaxProof || c.Leaf>>len(c.Proof) != 0 {
		return bad("malformed signature proof")
	}
	if len(c.Parents) > MaxParents {
		return bad("%d parents exceed %d", len(c.Parents), MaxParents)
	}
	if c.Tx != nil && (c.Tx.ID == "" || len(c.Tx.ID) > MaxIDBytes || c.Tx.Count == 0) {
		return bad("malformed transaction tag")
	}
	for i, op := range c.Ops {
		if len(op.Path) > changePathBytes { // CheckLimits holds a writer to MaxPathBytes
			return bad("op %d: path longer than %d bytes", i, changePathBytes)
		}
		if _, err := ParsePointer(op.Path); err != nil {
			return bad("op %d: %v", i, err)
		}
		if !utf8.ValidString(op.Path) {
			return bad("op %d: path is not UTF-8", i)
		}
		switch op.Kind {
		case OpSet, OpAdd, OpRemove:
			if op.Path == "" {
				return bad("op %d: %s needs a path", i, op.Kind)
			}
		case OpDelete:
			if op.Path == "" || op.Value != nil {
				return bad("op %d: delete needs a path and no value", i)
			}
		case OpIncr:
			if op.Path == "" {
				return bad("op %d: incr needs a path", i)
			}
			switch op.Value.(type) {
			case int64, float64:
			default:
				return bad("op %d: incr by a %T", i, op.Value)
			}
		case OpDeleteDoc:
			if op.Path != "" || op.Value != nil || len(c.Ops) != 1+unseenOps(c.Ops) {
				return bad("op %d: delete_doc takes no path or value and is the only op", i)
			}
		case OpUnseen:
			if err := validateUnseen(i, op, len(c.Ops)); err != nil {
				return bad("%v", err)
			}
		default:
			return bad("op %d: unknown kind %d", i, op.Kind)
		}
	}
	return nil
}

// unseenOps is 1 when ops start with an OpUnseen, else 0.
func unseenOps(ops []Op) int {
	if len(ops) > 0 && ops[0].Kind == OpUnseen {
		return 1
	}
	return 0
}

func validateUnseen(i int, op Op, ops int) error {
	if i != 0 || ops < 2 || op.Path != "" {
		return fmt.Errorf("op %d: unseen is the first op of several and has no path", i)
	}
	ids, ok := op.Value.([]any)
	if !ok || len(ids) == 0 || len(ids) > MaxUnseen {
		return fmt.Errorf("op %d: unseen takes 1 to %d ids", i, MaxUnseen)
	}
	prev := ""
	for _, v := range ids {
		s, ok := v.(string)
		if !ok || s <= prev {
			return fmt.Errorf("op %d: unseen ids must be sorted, unique strings", i)
		}
		if _, err := ParseID(s); err != nil {
			return fmt.Errorf("op %d: %v", i, err)
		}
		prev = s
	}
	return nil
}

// Unseen returns the ids an OpUnseen of the change names (nil: none).
func (c *Change) Unseen() []ID {
	if unseenOps(c.Ops) == 0 {
		return nil
	}
	vals, _ := c.Ops[0].Value.([]any) // validated by Seal/Decode
	out := make([]ID, 0, len(vals))
	for _, v := range vals {
		s, _ := v.(string)
		if id, err := ParseID(s); err == nil {
			out = append(out, id)
		}
	}
	return out
}

// UnseenOp returns the OpUnseen naming ids (sorted and made unique here),
// or false when ids is empty.
func UnseenOp(ids []ID) (Op, bool) {
	strs := make([]string, 0, len(ids))
	for _, id := range ids {
		strs = append(strs, id.String())
	}
	slices.Sort(strs)
	strs = slices.Compact(strs)
	if len(strs) == 0 {
		return Op{}, false
	}
	if len(strs) > MaxUnseen {
		strs = strs[:MaxUnseen]
	}
	vals := make([]any, len(strs))
	for i, s := range strs {
		vals[i] = s
	}
	return Op{Kind: OpUnseen, Value: vals}, true
}

// ValidateName checks a database name or document id: non-empty UTF-8, at
// most MaxIDBytes, no control characters.
func ValidateName(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if len(s) > MaxIDBytes {
		return fmt.Errorf("%s longer than %d bytes", what, MaxIDBytes)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not UTF-8", what)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains a control character", what)
		}
	}
	return nil
}

// orderKey compares two changes in replay tie-break order: clock, author, id.
func orderKey(a, b *Change) int {
	if c := a.Clock.Compare(b.Clock); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Author, b.Author); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}
