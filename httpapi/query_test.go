package httpapi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestQueryCountAndIDs: "count": true and "ids_only": true answer what the
// documents' query would, with or without the index alone (a single ==
// is; a range is not), page by page for ids; bad combinations are 400.
func TestQueryCountAndIDs(t *testing.T) {
	srv := newTestServer(t, Config{})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	for i := range 25 {
		body := fmt.Sprintf(`{"team":%q,"n":%d,"tags":["a","b","a"]}`, []string{"red", "blue"}[i%2], i)
		if st, raw, _ := do(t, srv, "PUT", fmt.Sprintf("/dbs/db/docs/d%02d", i), body, nil); st != 201 {
			t.Fatalf("put: %d %s", st, raw)
		}
	}
	do(t, srv, "DELETE", "/dbs/db/docs/d00", "", nil)
	for _, c := range []struct {
		where string
		want  int
	}{
		{`[{"path":"/team","op":"==","value":"red"}]`, 12},                                   // index only
		{`[{"path":"/tags","op":"==","value":"a"}]`, 24},                                     // index only, a repeated value
		{`[{"path":"/n","op":">=","value":10}]`, 15},                                         // reads documents
		{`[{"path":"/team","op":"==","value":"blue"},{"path":"/n","op":"<","value":10}]`, 5}, // reads documents
		{`[{"path":"/tags","op":"prefix","value":""}]`, 24},                                  // a document with two values in the range, counted once
		{`[{"path":"/team","op":"==","value":"green"}]`, 0},
	} {
		st, raw, _ := do(t, srv, "POST", "/dbs/db/query", `{"count":true,"where":`+c.where+`}`, nil)
		var cnt struct{ Count int }
		if st != 200 || json.Unmarshal(raw, &cnt) != nil || cnt.Count != c.want {
			t.Errorf("count %s: %d %s, want %d", c.where, st, raw, c.want)
		}
		var want, got []string
		for cursor := ""; ; {
			st, raw, _ := do(t, srv, "POST", "/dbs/db/query", fmt.Sprintf(`{"where":%s,"limit":4,"cursor":%q}`, c.where, cursor), nil)
			var page struct {
				Docs   []map[string]any
				Cursor string
			}
			if st != 200 || json.Unmarshal(raw, &page) != nil {
				t.Fatalf("query %s: %d %s", c.where, st, raw)
			}
			for _, d := range page.Docs {
				want = append(want, d["_id"].(string))
			}
			if cursor = page.Cursor; cursor == "" {
				break
			}
		}
		for cursor := ""; ; {
			st, raw, _ := do(t, srv, "POST", "/dbs/db/query", fmt.Sprintf(`{"ids_only":true,"where":%s,"limit":4,"cursor":%q}`, c.where, cursor), nil)
			var page struct {
				IDs    []string
				Cursor string
			}
			if st != 200 || json.Unmarshal(raw, &page) != nil || page.IDs == nil {
				t.Fatalf("ids_only %s: %d %s", c.where, st, raw)
			}
			got = append(got, page.IDs...)
			if cursor = page.Cursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) || len(got) != c.want {
			t.Errorf("ids_only %s: %v, the documents' query %v (want %d)", c.where, got, want, c.want)
		}
	}
	for _, body := range []string{
		`{"count":1,"where":[{"path":"/n","op":"exists"}]}`,
		`{"count":true,"live":true,"where":[{"path":"/n","op":"exists"}]}`,
		`{"count":true,"ids_only":true,"where":[{"path":"/n","op":"exists"}]}`,
		`{"count":true,"limit":5,"where":[{"path":"/n","op":"exists"}]}`,
		`{"ids_only":true,"where":[{"path":"n","op":"=="}]}`,
	} {
		if st, raw, _ := do(t, srv, "POST", "/dbs/db/query", body, nil); st != 400 {
			t.Errorf("%s: %d %s, want 400", body, st, raw)
		}
	}
}

// TestQueryAnswerShape: the documents of a query are written as they are
// read, and the answer is still one JSON object as before: {"docs":[...]}
// with "cursor" while pages remain, [] for none, HTML characters as they
// are, a JSON content type.
func TestQueryAnswerShape(t *testing.T) {
	srv := newTestServer(t, Config{})
	do(t, srv, "PUT", "/dbs/db", "", nil)
	for i := range 5 {
		body := fmt.Sprintf(`{"team":"red","note":"<b>&%d</b>"}`, i)
		if st, raw, _ := do(t, srv, "PUT", fmt.Sprintf("/dbs/db/docs/d%d", i), body, nil); st != 201 {
			t.Fatalf("put: %d %s", st, raw)
		}
	}
	for _, c := range []struct {
		body, want string
		docs       int
		cursor     bool
	}{
		{`{"where":[{"path":"/team","op":"==","value":"red"}],"limit":10000}`, "", 5, false},
		{`{"where":[{"path":"/team","op":"==","value":"red"}],"limit":2}`, "", 2, true},
		{`{"where":[{"path":"/team","op":"==","value":"blue"}]}`, `{"docs":[]}` + "\n", 0, false},
		{`{"where":[{"path":"/note","op":"prefix","value":"<b>"}],"limit":3}`, "", 3, true}, // reads documents
	} {
		st, raw, hdr := do(t, srv, "POST", "/dbs/db/query", c.body, nil)
		if st != 200 || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s %v", c.body, st, raw, hdr)
		}
		if c.want != "" && string(raw) != c.want {
			t.Fatalf("%s: %q, want %q", c.body, raw, c.want)
		}
		var page struct {
			Docs   []map[string]any
			Cursor *string
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&page); err != nil || dec.More() || !strings.HasSuffix(string(raw), "}\n") {
			t.Fatalf("%s: not one JSON object: %v %q", c.body, err, raw)
		}
		if len(page.Docs) != c.docs || (page.Cursor != nil) != c.cursor {
			t.Fatalf("%s: %d docs, cursor %v; want %d, %v", c.body, len(page.Docs), page.Cursor, c.docs, c.cursor)
		}
		for _, d := range page.Docs {
			if d["_id"] == nil || d["_rev"] == nil || !strings.HasPrefix(d["note"].(string), "<b>&") {
				t.Fatalf("%s: document %v", c.body, d)
			}
		}
		if c.docs > 0 && !strings.Contains(string(raw), "<b>&") {
			t.Fatalf("%s: HTML characters escaped: %s", c.body, raw)
		}
	}
}
