package couch

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// selector is a parsed Mango selector (filter=_selector): the subset
// replication filters use. A field is a dotted path; its condition is a
// value (equality) or an object of operators: $eq $ne $gt $gte $lt $lte
// $exists $in $nin. $and, $or and $nor combine selectors. Anything else
// is refused when the request is parsed, never ignored.
type selector func(doc map[string]any) bool

// Bounds of a selector: its nesting and its number of conditions.
const (
	maxSelectorDepth = 16
	maxSelectorConds = 256
)

func parseSelector(raw json.RawMessage) (selector, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, BadRequest("selector must be a JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, BadRequest("selector must be a JSON object")
	}
	n := 0
	return compileAll(m, 0, &n)
}

func compileAll(m map[string]any, depth int, n *int) (selector, error) {
	if depth > maxSelectorDepth {
		return nil, BadRequest(fmt.Sprintf("selector nests deeper than %d", maxSelectorDepth))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var all []selector
	for _, k := range keys {
		if *n++; *n > maxSelectorConds {
			return nil, BadRequest(fmt.Sprintf("selector has more than %d conditions", maxSelectorConds))
		}
		v := m[k]
		switch k {
		case "$and", "$or", "$nor":
			list, ok := v.([]any)
			if !ok {
				return nil, BadRequest(k + " takes a list of selectors")
			}
			var subs []selector
			for _, x := range list {
				sm, ok := x.(map[string]any)
				if !ok {
					return nil, BadRequest(k + " takes a list of selectors")
				}
				s, err := compileAll(sm, depth+1, n)
				if err != nil {
					return nil, err
				}
				subs = append(subs, s)
			}
			all = append(all, combine(k, subs))
		default:
			if strings.HasPrefix(k, "$") {
				return nil, BadRequest(fmt.Sprintf("selector operator %s is not supported", quoteShort(k)))
			}
			c, err := compileField(strings.Split(k, "."), v)
			if err != nil {
				return nil, err
			}
			all = append(all, c)
		}
	}
	return combine("$and", all), nil
}

func combine(op string, subs []selector) selector {
	return func(doc map[string]any) bool {
		switch op {
		case "$or":
			for _, s := range subs {
				if s(doc) {
					return true
				}
			}
			return false
		case "$nor":
			for _, s := range subs {
				if s(doc) {
					return false
				}
			}
			return true
		default:
			for _, s := range subs {
				if !s(doc) {
					return false
				}
			}
			return true
		}
	}
}

func compileField(path []string, cond any) (selector, error) {
	ops, isOps := cond.(map[string]any)
	if isOps {
		for k := range ops {
			if !strings.HasPrefix(k, "$") {
				isOps = false // an object value: equality
			}
		}
	}
	if !isOps || len(ops) == 0 {
		want := normalizeJSON(cond)
		return func(doc map[string]any) bool {
			v, ok := lookup(doc, path)
			return ok && reflect.DeepEqual(v, want)
		}, nil
	}
	var tests []func(v any, ok bool) bool
	for op, arg := range ops {
		a := normalizeJSON(arg)
		switch op {
		case "$eq":
			tests = append(tests, func(v any, ok bool) bool { return ok && reflect.DeepEqual(v, a) })
		case "$ne":
			tests = append(tests, func(v any, ok bool) bool { return !ok || !reflect.DeepEqual(v, a) })
		case "$gt", "$gte", "$lt", "$lte":
			op := op
			tests = append(tests, func(v any, ok bool) bool {
				c, comparable := compare(v, a)
				if !ok || !comparable {
					return false
				}
				switch op {
				case "$gt":
					return c > 0
				case "$gte":
					return c >= 0
				case "$lt":
					return c < 0
				default:
					return c <= 0
				}
			})
		case "$exists":
			want, isBool := a.(bool)
			if !isBool {
				return nil, BadRequest("$exists takes true or false")
			}
			tests = append(tests, func(_ any, ok bool) bool { return ok == want })
		case "$in", "$nin":
			list, isList := a.([]any)
			if !isList {
				return nil, BadRequest(op + " takes a list")
			}
			in := op == "$in"
			tests = append(tests, func(v any, ok bool) bool {
				for _, x := range list {
					if ok && reflect.DeepEqual(v, x) {
						return in
					}
				}
				return !in
			})
		default:
			return nil, BadRequest(fmt.Sprintf("selector operator %s is not supported", quoteShort(op)))
		}
	}
	return func(doc map[string]any) bool {
		v, ok := lookup(doc, path)
		for _, t := range tests {
			if !t(v, ok) {
				return false
			}
		}
		return true
	}, nil
}

func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return normalizeJSON(cur), true
}

// normalizeJSON makes numbers float64, as a document read back from JSON
// has them, so that 1 (int64 in barrel) equals 1 (json.Number).
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeJSON(e)
		}
		return out
	}
	return v
}

// compare orders two numbers or two strings.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	}
	return 0, false
}
