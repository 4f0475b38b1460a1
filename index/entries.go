package index

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/barrel-db/barrel/datastore/tuple"
)

// Entry is one indexed (path, value) pair of a document: Path is a JSON
// pointer, Value a scalar (nil, bool, int64, float64 or string).
type Entry struct {
	Path  string
	Value any
}

// Entries returns every scalar leaf of doc as (path, value) entries:
// objects are recursed ("/a/b"); the elements of an array are indexed under
// the array's own path (scalars as values, objects recursed with the array's
// path as prefix, so {"items":[{"name":"x"}]} gives ("/items/name", "x"),
// nested arrays flattened); empty objects and arrays give nothing. Values
// AppendValue cannot encode (NaN, unknown types) are skipped.
//
// The result is sorted in index-key order (path, then value) and
// deduplicated by encoding, so 1 and 1.0 at one path are one entry (the first
// met). Reserved fields ("_id" and others) are indexed like any other field;
// callers that do not want them must remove them first.
func Entries(doc map[string]any) []Entry {
	type enc struct {
		key []byte
		e   Entry
	}
	var all []enc
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(x)) {
				walk(appendToken(path, k), x[k])
			}
		case []any:
			for _, c := range x {
				walk(path, c)
			}
		default:
			k, err := tuple.AppendValue(tuple.AppendString(nil, path), v)
			if err != nil {
				return // Not an indexable scalar.
			}
			all = append(all, enc{key: k, e: Entry{Path: path, Value: v}})
		}
	}
	walk("", doc)
	slices.SortStableFunc(all, func(a, b enc) int { return bytes.Compare(a.key, b.key) })
	// Keys are walked sorted, so "the first met" is deterministic.
	all = slices.CompactFunc(all, func(a, b enc) bool { return bytes.Equal(a.key, b.key) })
	if len(all) == 0 {
		return nil
	}
	out := make([]Entry, len(all))
	for i, a := range all {
		out[i] = a.e
	}
	return out
}

// Key returns the index key of one entry:
// prefix + AppendString(path) + AppendValue(value) + AppendString(docID).
// The result is a new slice; prefix is not modified. A value that is not a
// scalar returns an error wrapping tuple.ErrBadValue.
func Key(prefix []byte, path string, value any, docID string) ([]byte, error) {
	k := make([]byte, len(prefix), len(prefix)+len(path)+len(docID)+16)
	copy(k, prefix)
	k = tuple.AppendString(k, path)
	k, err := tuple.AppendValue(k, value)
	if err != nil {
		return nil, fmt.Errorf("index key of %s: %w", path, err)
	}
	return tuple.AppendString(k, docID), nil
}

// keys returns the sorted, deduplicated index keys of doc (nil doc: none):
// those of its Entries, with the same rules, built in one walk into one
// buffer. The path is kept encoded as it is walked, so no leaf encodes it
// again. Prefix and docID are the same in every key, so the keys sort as
// their (path, value) pairs do.
func keys(prefix []byte, docID string, doc map[string]any) [][]byte {
	if doc == nil {
		return nil
	}
	var buf []byte
	var ends []int              // end of each key in buf
	path := make([]byte, 0, 64) // tuple.AppendStringPrefix of the JSON pointer
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			n := len(path)
			for _, k := range slices.Sorted(maps.Keys(x)) {
				path = appendEncodedToken(append(path[:n], '/'), k)
				walk(x[k])
			}
			path = path[:n]
		case []any:
			for _, c := range x {
				walk(c)
			}
		default:
			start := len(buf)
			buf = append(append(append(buf, prefix...), path...), 0x00, 0x01)
			var err error
			if buf, err = tuple.AppendValue(buf, v); err != nil {
				buf = buf[:start] // Not an indexable scalar.
				return
			}
			buf = tuple.AppendString(buf, docID)
			ends = append(ends, len(buf))
		}
	}
	walk(doc)
	out := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		out[i] = buf[start:end:end]
		start = end
	}
	slices.SortFunc(out, bytes.Compare)
	return slices.CompactFunc(out, bytes.Equal)
}

// appendEncodedToken appends a member name as a JSON pointer token ("~" as
// "~0", "/" as "~1") in tuple string encoding (0x00 as 0x00 0xFF).
func appendEncodedToken(b []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; c {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		case 0x00:
			b = append(b, 0x00, 0xFF)
		default:
			b = append(b, c)
		}
	}
	return b
}

// Diff returns the index keys to delete and to add when document docID
// changes from old to new. A nil old means the document is new; a nil new
// means it was deleted. Keys present in both are in neither list. Both lists
// are sorted; the caller writes them into the batch that writes the
// document, so the index never disagrees with the stored body. Values that
// cannot be indexed are skipped, as by Entries.
func Diff(prefix []byte, docID string, old, new map[string]any) (del, put [][]byte) {
	ok, nk := keys(prefix, docID, old), keys(prefix, docID, new)
	i, j := 0, 0
	for i < len(ok) || j < len(nk) {
		switch {
		case j == len(nk):
			del = append(del, ok[i])
			i++
		case i == len(ok):
			put = append(put, nk[j])
			j++
		default:
			switch c := bytes.Compare(ok[i], nk[j]); {
			case c == 0:
				i++
				j++
			case c < 0:
				del = append(del, ok[i])
				i++
			default:
				put = append(put, nk[j])
				j++
			}
		}
	}
	return del, put
}
