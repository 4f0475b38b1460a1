package crdt

// Diff returns the fewest operations that turn old into new, path by path:
// unchanged fields produce nothing, so two writers that change different
// fields from the same base do not touch each other's fields. isSet reports
// whether a path currently holds an observed-remove set; an array written at
// such a path becomes element adds and removes instead of a replacement.
// isSet may be nil.
func Diff(old, new map[string]any, isSet func(path string) bool) []Op {
	var ops []Op
	diffObject(&ops, nil, old, new, isSet)
	return ops
}

func diffObject(ops *[]Op, prefix []string, old, new map[string]any, isSet func(string) bool) {
	for _, k := range sortedKeys(old) {
		if _, ok := new[k]; !ok {
			*ops = append(*ops, Op{Kind: OpDelete, Path: FormatPointer(append(prefix, k))})
		}
	}
	for _, k := range sortedKeys(new) {
		path := append(prefix[:len(prefix):len(prefix)], k)
		nv := new[k]
		ov, had := old[k]
		if had && Equal(ov, nv) {
			continue
		}
		om, oIsObj := ov.(map[string]any)
		nm, nIsObj := nv.(map[string]any)
		if had && oIsObj && nIsObj && len(nm) > 0 {
			diffObject(ops, path, om, nm, isSet)
			continue
		}
		p := FormatPointer(path)
		oa, oIsArr := ov.([]any)
		na, nIsArr := nv.([]any)
		if had && oIsArr && nIsArr && isSet != nil && isSet(p) {
			diffSet(ops, p, oa, na)
			continue
		}
		*ops = append(*ops, Op{Kind: OpSet, Path: p, Value: Copy(nv)})
	}
}

func diffSet(ops *[]Op, path string, old, new []any) {
	have := make(map[string]bool, len(old))
	for _, e := range old {
		have[canonicalKey(e)] = true
	}
	want := make(map[string]any, len(new))
	for _, e := range new {
		want[canonicalKey(e)] = e
	}
	for _, k := range sortedKeys(have) {
		if _, ok := want[k]; !ok {
			v, _ := ParseJSON([]byte(k))
			*ops = append(*ops, Op{Kind: OpRemove, Path: path, Value: v})
		}
	}
	for _, k := range sortedKeys(want) {
		if !have[k] {
			*ops = append(*ops, Op{Kind: OpAdd, Path: path, Value: Copy(want[k])})
		}
	}
}

// MergePatch returns the operations that apply a JSON merge patch (RFC 7396)
// to cur: null deletes a member, an object patches an object member in place
// (member by member), any other value replaces the member.
func MergePatch(cur, patch map[string]any) []Op {
	var ops []Op
	mergePatch(&ops, nil, cur, patch)
	return ops
}

func mergePatch(ops *[]Op, prefix []string, cur, patch map[string]any) {
	for _, k := range sortedKeys(patch) {
		path := append(prefix[:len(prefix):len(prefix)], k)
		pv := patch[k]
		if pv == nil {
			if _, ok := cur[k]; ok {
				*ops = append(*ops, Op{Kind: OpDelete, Path: FormatPointer(path)})
			}
			continue
		}
		pm, isObj := pv.(map[string]any)
		if !isObj {
			if cv, ok := cur[k]; !ok || !Equal(cv, pv) {
				*ops = append(*ops, Op{Kind: OpSet, Path: FormatPointer(path), Value: Copy(pv)})
			}
			continue
		}
		if cm, ok := cur[k].(map[string]any); ok {
			mergePatch(ops, path, cm, pm)
			continue
		}
		*ops = append(*ops, Op{Kind: OpSet, Path: FormatPointer(path), Value: stripNulls(pm)})
	}
}

// stripNulls is a merge patch applied to an empty object.
func stripNulls(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			out[k] = stripNulls(x)
		default:
			out[k] = Copy(x)
		}
	}
	return out
}
