package commit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/barrel-db/barrel/crdt"
	"github.com/barrel-db/barrel/node/internal/acl"
)

// item is one document write of a group on its way through prepare, seal
// and apply.
type item struct {
	req, doc int
	p        *prepared
	err      error
}

// handleAll runs every request of the group and returns their responses.
//
// Writes go in waves: each write is prepared in order (it needs the state
// left by the writes before it), then the wave's changes are sealed (CBOR,
// SHA-256, ed25519: most of a write's CPU) in parallel on every core, then
// applied in order. A wave ends where a document repeats, because that
// write's parents are the id of the earlier one. An atomic request lies
// within one wave, so it can be dropped whole if any of its writes fails.
func (g *Group) handleAll(reqs []*Request) []Response {
	resps := make([]Response, len(reqs))
	for i, r := range reqs {
		resps[i].Results = make([]Result, len(r.Docs))
		for j, w := range r.Docs {
			resps[i].Results[j].ID = w.ID
		}
	}
	var wave []*item
	inWave := map[string]bool{}
	flush := func() {
		g.flush(reqs, resps, wave)
		wave = wave[:0]
		clear(inWave)
	}
	for ri, r := range reqs {
		if r.Remote != nil {
			flush()
			resps[ri] = g.applyRemote(r)
			continue
		}
		if r.Checkpoint != nil {
			g.setCheckpoint(r.Checkpoint)
			continue
		}
		var tx *crdt.Tx
		if r.Atomic {
			tx = &crdt.Tx{ID: newTxID(), Count: uint32(len(r.Docs))}
			for _, w := range r.Docs {
				if inWave[w.ID] {
					flush()
					break
				}
			}
		}
		for di, w := range r.Docs {
			if inWave[w.ID] {
				flush()
			}
			it := &item{req: ri, doc: di}
			it.p, it.err = g.prepare(w, tx)
			wave = append(wave, it)
			inWave[w.ID] = true
		}
	}
	flush()
	for ri, r := range reqs {
		if r.Then == nil || resps[ri].Err != nil {
			continue
		}
		keys := g.env.Keys()
		for k, v := range r.Then(resps[ri].Results, g.stateOf) {
			g.batch.Set(keys.Local(k), v)
			g.others++
		}
	}
	return resps
}

// stateOf is a document's state as the group leaves it, nil for one the
// group did not load.
func (g *Group) stateOf(doc string) *crdt.State {
	if ent, ok := g.docs[doc]; ok {
		return ent.state
	}
	return nil
}

// flush seals a wave's changes in parallel, drops atomic requests with a
// failed write, and applies the rest in order.
func (g *Group) flush(reqs []*Request, resps []Response, wave []*item) {
	sealAll(wave, g.env.Signer())
	for _, it := range wave {
		if it.err != nil && reqs[it.req].Atomic {
			resps[it.req].Err = ErrTxAborted
		}
	}
	// The documents of a wave are distinct, so their merges run in parallel;
	// recording (sequence numbers, batch) stays in order.
	ms := make([]*merged, len(wave))
	Parallel(len(wave), func(i int) {
		it := wave[i]
		if it.err != nil || resps[it.req].Err != nil {
			return
		}
		ms[i], it.err = g.merge(it.p)
	})
	for _, it := range wave {
		if it.err != nil && reqs[it.req].Atomic {
			resps[it.req].Err = ErrTxAborted // all or nothing, even on a storage error
		}
	}
	for i, it := range wave {
		res := &resps[it.req].Results[it.doc]
		switch {
		case it.err != nil:
			res.Error = it.err // a storage error in merge fails only this write
		case resps[it.req].Err != nil: // an atomic request with a failed write
			res.Error = ErrTxAborted
		default:
			g.record(ms[i])
			res.Rev = it.p.change.ID().String()
		}
	}
}

// sealAll validates and hashes a wave's changes on every core, then signs
// them in Merkle groups, one signature per group (crdt.SignGroup).
func sealAll(wave []*item, key crdt.Signer) {
	Parallel(len(wave), func(i int) {
		it := wave[i]
		if it.err != nil {
			return
		}
		if err := it.p.change.Seal(nil); err != nil {
			var le *crdt.LimitError
			switch {
			case errors.As(err, &le):
				err = le // ErrTooLarge, with the limit's name
			case errors.Is(err, crdt.ErrInvalidChange):
				err = Invalid("body", "%v", err)
			}
			it.err = err
		}
	})
	var ok []*crdt.Change
	var owners []*item
	for _, it := range wave {
		if it.err == nil {
			ok = append(ok, it.p.change)
			owners = append(owners, it)
		}
	}
	const group = 1 << crdt.MaxProof
	chunks := (len(ok) + group - 1) / group
	Parallel(chunks, func(i int) {
		lo, hi := i*group, min((i+1)*group, len(ok))
		if err := crdt.SignGroup(ok[lo:hi], key); err != nil {
			for _, it := range owners[lo:hi] {
				it.err = err
			}
		}
	})
}

// Parallel runs fn(0..n-1) on every core and returns when all are done.
func Parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				fn(int(i))
			}
		}()
	}
	wg.Wait()
}

// prepare builds the change for one write; flush seals and applies it.
func (g *Group) prepare(w DocWrite, tx *crdt.Tx) (*prepared, error) {
	if err := crdt.ValidateName("doc id", w.ID); err != nil {
		return nil, Invalid("doc id", "%v", err)
	}
	if w.ID == acl.DocID && !w.ACL {
		return nil, Invalid("doc id", "%s is changed with SetACL only", acl.DocID)
	}
	ent, err := g.load(w.ID)
	if err != nil {
		return nil, err
	}
	st := ent.state
	base, parents := st, st.Heads
	switch {
	case w.Detached:
		// The writer saw none of the document's changes (a CouchDB client's
		// edit whose ancestors this node never had): a root, concurrent
		// with every change held, merged by the crdt rules.
		base, parents = crdt.NewState(), nil
	case len(w.Base) > 0:
		heads := slices.Clone(w.Base)
		slices.SortFunc(heads, func(a, b crdt.ID) int { return bytes.Compare(a[:], b[:]) })
		heads = slices.Compact(heads)
		if !slices.Equal(heads, st.Heads) {
			if base, err = g.stateAt(w.ID, heads...); err != nil {
				return nil, err
			}
			parents = heads
		}
	case w.Rev != "":
		rid, err := crdt.ParseID(w.Rev)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.Rev, ErrRevMismatch)
		}
		// The current revision stands for the merged document the caller
		// read: its base is every head. An older revision is the state as of
		// that change.
		if rid != st.Last {
			if base, err = g.stateAt(w.ID, rid); err != nil {
				return nil, err
			}
			parents = []crdt.ID{rid}
		}
	}
	based := w.Rev != "" || len(w.Base) > 0 || w.Detached
	baseBody := base.Body
	if base.Deleted || !base.Exists() {
		baseBody = map[string]any{}
	}
	var ops []crdt.Op
	switch {
	case w.Delete:
		if !st.Exists() || (st.Deleted && !based) {
			return nil, fmt.Errorf("document %s: %w", w.ID, ErrNotFound)
		}
		ops = []crdt.Op{{Kind: crdt.OpDeleteDoc}}
	case w.Patch != nil:
		if !st.Exists() || (st.Deleted && !based) {
			return nil, fmt.Errorf("document %s: %w", w.ID, ErrNotFound)
		}
		if err := checkIncr(baseBody, w.Patch); err != nil {
			return nil, err
		}
		ops = patchOps(baseBody, w.Patch)
	case w.Ops != nil:
		if ops, err = w.Ops(st, baseBody); err != nil {
			return nil, err
		}
	default:
		// Reserved fields (_attachments) are written by their own methods;
		// a Put body never has them and must not delete them.
		ops = crdt.Diff(withoutReserved(baseBody), w.Body, func(p string) bool { _, ok := base.Sets[p]; return ok })
		if w.Attachments != nil {
			ops = append(ops, attachmentsDiff(baseBody, w.Attachments)...)
		}
	}
	c := &crdt.Change{
		DB:      g.env.Name(),
		Doc:     w.ID,
		Parents: slices.Clone(parents),
		Clock:   g.env.Clock().Now(g.env.Now().UnixNano()),
		Author:  []byte(g.env.Author()),
		Ops:     ops,
		Tx:      tx,
	}
	return &prepared{ent: ent, change: c, local: true}, nil
}

// checkIncr refuses an increment of a path that holds something other than
// a number in the document the caller patches (base with the patch's merge
// applied), or that leads through something other than an object: the
// increment would replace it (docs/design.md, "Counters"). A missing path
// is fine: the increment creates it. The crdt rule for an increment
// concurrent with such a value (only replication brings them together)
// keeps the value in _conflicts.
func checkIncr(base map[string]any, p *Patch) error {
	if len(p.Incr) == 0 {
		return nil
	}
	body := base
	if p.Merge != nil {
		body = mergePatched(base, p.Merge)
	}
	for _, path := range sortedKeys(p.Incr) {
		tokens, _ := crdt.ParsePointer(path) // checked by normalizePatch
		var cur any = body
		found := true
		for i, t := range tokens {
			m, ok := cur.(map[string]any)
			if !ok {
				return Invalid("path", "cannot increment %s: %s holds %s, not an object", path, crdt.FormatPointer(tokens[:i]), kindOf(cur))
			}
			if cur, found = m[t]; !found {
				break
			}
		}
		if !found {
			continue
		}
		switch cur.(type) {
		case int64, float64:
		default:
			return Invalid("path", "cannot increment %s: it holds %s, not a number", path, kindOf(cur))
		}
	}
	return nil
}

// mergePatched returns target with a JSON merge patch (RFC 7396) applied,
// copying only the objects the patch changes.
func mergePatched(target any, patch map[string]any) map[string]any {
	t, _ := target.(map[string]any)
	out := make(map[string]any, len(t)+len(patch))
	for k, v := range t {
		out[k] = v
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			out[k] = mergePatched(out[k], pv)
		default:
			out[k] = v
		}
	}
	return out
}

// kindOf names a JSON value's type for an error message.
func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return fmt.Sprintf("a string (%q)", truncate(x, 40))
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a number"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func patchOps(base map[string]any, p *Patch) []crdt.Op {
	ops := crdt.MergePatch(base, p.Merge)
	for _, path := range sortedKeys(p.Incr) {
		ops = append(ops, crdt.Op{Kind: crdt.OpIncr, Path: path, Value: p.Incr[path]})
	}
	for _, path := range sortedKeys(p.Add) {
		for _, e := range p.Add[path] {
			ops = append(ops, crdt.Op{Kind: crdt.OpAdd, Path: path, Value: e})
		}
	}
	for _, path := range sortedKeys(p.Remove) {
		for _, e := range p.Remove[path] {
			ops = append(ops, crdt.Op{Kind: crdt.OpRemove, Path: path, Value: e})
		}
	}
	return ops
}

// stateAt materializes a document as of some of its revisions (the heads
// a caller read): the replay of those revisions and their ancestors, on
// the document's folded base if it has one. A revision folded by
// compaction is gone (ErrRevMismatch).
func (g *Group) stateAt(doc string, revs ...crdt.ID) (*crdt.State, error) {
	fold, _, err := g.env.Fold(doc)
	if err != nil {
		return nil, err
	}
	if fold != nil && len(revs) == 1 && slices.Contains(fold.Heads, revs[0]) {
		return fold, nil
	}
	var all []*crdt.Change
	seen := map[crdt.ID]bool{}
	asked := map[crdt.ID]bool{}
	for _, r := range revs {
		seen[r], asked[r] = true, true
	}
	stack := slices.Clone(revs)
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if fold != nil && slices.Contains(fold.Heads, id) {
			continue
		}
		c, err := g.change(id)
		switch {
		case errors.Is(err, ErrNotFound) && fold != nil:
			return nil, fmt.Errorf("revision %s of document %s was compacted; read the document again: %w", id, doc, ErrRevMismatch)
		case errors.Is(err, ErrNotFound) || (err == nil && asked[id] && c.Doc != doc):
			return nil, fmt.Errorf("document %s has no revision %s: %w", doc, id, ErrRevMismatch)
		case err != nil:
			return nil, fmt.Errorf("load ancestor %s: %w", id, err)
		}
		all = append(all, c)
		for _, p := range c.Parents {
			if !seen[p] {
				seen[p] = true
				stack = append(stack, p)
			}
		}
	}
	return crdt.ReplayFrom(fold, all)
}

// AttachmentsField is the reserved top-level field listing a document's
// attachments by name.
const AttachmentsField = "_attachments"

// attachmentsDiff is the operations that make the base document's
// attachments exactly want (name -> normalized entry), in name order.
func attachmentsDiff(base map[string]any, want map[string]any) []crdt.Op {
	old, _ := base[AttachmentsField].(map[string]any)
	var ops []crdt.Op
	for _, name := range sortedKeys(want) {
		if o, ok := old[name]; !ok || !reflect.DeepEqual(o, want[name]) {
			ops = append(ops, crdt.Op{Kind: crdt.OpSet, Path: crdt.FormatPointer([]string{AttachmentsField, name}), Value: want[name]})
		}
	}
	for _, name := range sortedKeys(old) {
		if _, ok := want[name]; !ok {
			ops = append(ops, crdt.Op{Kind: crdt.OpDelete, Path: crdt.FormatPointer([]string{AttachmentsField, name})})
		}
	}
	return ops
}

// withoutReserved returns body without its reserved (_-prefixed) fields,
// which Put must not touch: a Put body never carries them.
func withoutReserved(body map[string]any) map[string]any {
	var out map[string]any
	for k := range body {
		if strings.HasPrefix(k, "_") {
			if out == nil {
				out = make(map[string]any, len(body))
				for k2, v := range body {
					out[k2] = v
				}
			}
			delete(out, k)
		}
	}
	if out == nil {
		return body
	}
	return out
}

func newTxID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("commit: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
