package couch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// Bodies PouchDB 9.0.0 sent to express-pouchdb while pushing three
// documents (one with an attachment, one edited twice, one deleted) and
// pulling them back, as read from its fetch option.
const (
	pouchRevsDiff = `{"doc1":["1-0f7f43b9c5ce7cfce8ee0d0fb7ffc754"],"doc2":["2-8b746167eef8b7e181e1e60fba2926af"],"gone":["2-c621839beb121784bf79c57a3965ead2"]}`
	pouchBulkDocs = `{"docs":[{"n":1,"big":12345678901234567000,"_attachments":{"a.txt":{"data":"aGVsbG8=","digest":"md5-XUFAKrxLKna5cZ2REBfFkg==","content_type":"text/plain","revpos":1}},"_id":"doc1","_rev":"1-0f7f43b9c5ce7cfce8ee0d0fb7ffc754","_revisions":{"start":1,"ids":["0f7f43b9c5ce7cfce8ee0d0fb7ffc754"]}},` +
		`{"x":"z","_id":"doc2","_rev":"2-8b746167eef8b7e181e1e60fba2926af","_revisions":{"start":2,"ids":["8b746167eef8b7e181e1e60fba2926af","965cb94cb6a20844aee1bedaca609544"]}},` +
		`{"_id":"gone","_rev":"2-c621839beb121784bf79c57a3965ead2","_deleted":true,"_revisions":{"start":2,"ids":["c621839beb121784bf79c57a3965ead2","4dc51c47998aa6558143dec7d851ac0e"]}}],"new_edits":false}`
	pouchBulkGet  = `{"docs":[{"id":"doc2","rev":"2-8b746167eef8b7e181e1e60fba2926af"},{"id":"gone","rev":"2-c621839beb121784bf79c57a3965ead2"},{"id":"doc1","rev":"1-0f7f43b9c5ce7cfce8ee0d0fb7ffc754"}]}`
	pouchLocalDoc = `{"session_id":"61cf29c4-b698-4d5f-b3bc-5d7ba12d813f","_id":"_local/yGOoQU1s8lbX2aaa5.GJkQ==","history":[{"last_seq":5,"session_id":"61cf29c4-b698-4d5f-b3bc-5d7ba12d813f"}],"replicator":"pouchdb","version":1,"last_seq":5}`
)

const maxBody = 1 << 20

func TestDecodeRevsDiffPouchDB(t *testing.T) {
	got, err := DecodeRevsDiff(strings.NewReader(pouchRevsDiff), maxBody)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Rev{
		"doc1": {{1, "0f7f43b9c5ce7cfce8ee0d0fb7ffc754"}},
		"doc2": {{2, "8b746167eef8b7e181e1e60fba2926af"}},
		"gone": {{2, "c621839beb121784bf79c57a3965ead2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	got, err = DecodeRevsDiff(strings.NewReader(` {"a": ["1-a", "2-b"], "b": []} `), maxBody)
	if err != nil || len(got["a"]) != 2 || got["b"] == nil || len(got["b"]) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestDecodeBulkDocsPouchDB(t *testing.T) {
	got, err := DecodeBulkDocs(strings.NewReader(pouchBulkDocs), maxBody)
	if err != nil {
		t.Fatal(err)
	}
	want := BulkDocs{NewEdits: false, Docs: []BulkDoc{
		{
			ID: "doc1", Rev: "1-0f7f43b9c5ce7cfce8ee0d0fb7ffc754",
			Revisions: &Revisions{1, []string{"0f7f43b9c5ce7cfce8ee0d0fb7ffc754"}},
			Attachments: map[string]Attachment{"a.txt": {
				ContentType: "text/plain", Data: []byte("hello"), Digest: "md5-XUFAKrxLKna5cZ2REBfFkg==", Length: 5, RevPos: 1,
			}},
			Body: map[string]any{"n": json.Number("1"), "big": json.Number("12345678901234567000")},
		},
		{
			ID: "doc2", Rev: "2-8b746167eef8b7e181e1e60fba2926af",
			Revisions: &Revisions{2, []string{"8b746167eef8b7e181e1e60fba2926af", "965cb94cb6a20844aee1bedaca609544"}},
			Body:      map[string]any{"x": "z"},
		},
		{
			ID: "gone", Rev: "2-c621839beb121784bf79c57a3965ead2", Deleted: true,
			Revisions: &Revisions{2, []string{"c621839beb121784bf79c57a3965ead2", "4dc51c47998aa6558143dec7d851ac0e"}},
			Body:      map[string]any{},
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecodeBulkDocs(t *testing.T) {
	// new_edits absent is true; an id is optional then; stubs; dropped
	// read-only members; nested values keep their numbers exact.
	body := `{"docs":[{"a":{"b":[1,2.5,99999999999999999999]},"_conflicts":["1-a"],"_revs_info":[]},` +
		`{"_id":"x","_rev":"1-a","_attachments":{"s":{"stub":true,"content_type":"image/png","digest":"md5-abc","length":10,"revpos":1}}}]}`
	got, err := DecodeBulkDocs(strings.NewReader(body), maxBody)
	if err != nil {
		t.Fatal(err)
	}
	if !got.NewEdits || len(got.Docs) != 2 {
		t.Fatalf("got %+v", got)
	}
	a := got.Docs[0].Body["a"].(map[string]any)["b"].([]any)
	if a[2] != json.Number("99999999999999999999") || a[1] != json.Number("2.5") {
		t.Fatalf("numbers: %#v", a)
	}
	if len(got.Docs[0].Body) != 1 {
		t.Fatalf("body keeps only a: %v", got.Docs[0].Body)
	}
	s := got.Docs[1].Attachments["s"]
	if !s.Stub || s.Data != nil || s.Length != 10 || s.RevPos != 1 || s.ContentType != "image/png" {
		t.Fatalf("stub: %+v", s)
	}
	if got, err := DecodeBulkDocs(strings.NewReader(`{"docs":[],"new_edits":true}`), maxBody); err != nil || len(got.Docs) != 0 || !got.NewEdits {
		t.Fatalf("empty: %+v, %v", got, err)
	}
}

// badCase is a body a decoder must refuse with status, code and a reason
// containing reason.
type badCase struct {
	body   string
	status int
	code   string
	reason string
}

func checkBad(t *testing.T, name string, decode func(string) error, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		err := decode(c.body)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s(%.80q): %v, want an *Error", name, c.body, err)
			continue
		}
		if e.Status != c.status || e.Code != c.code || !strings.Contains(e.Reason, c.reason) {
			t.Errorf("%s(%.80q) = %d %s %q, want %d %s containing %q", name, c.body, e.Status, e.Code, e.Reason, c.status, c.code, c.reason)
		}
	}
}

func bad(body, reason string) badCase { return badCase{body, 400, "bad_request", reason} }

func TestDecodeBulkDocsBad(t *testing.T) {
	doc := func(s string) string { return `{"docs":[` + s + `]}` }
	ne := func(s string) string { return `{"new_edits":false,"docs":[` + s + `]}` }
	many := "[" + strings.Repeat("{},", MaxBulkDocs) + "{}]"
	cases := []badCase{
		bad(``, "invalid JSON"),
		bad(`{"docs":[`, "invalid JSON"),
		bad(`{"docs":[]} {}`, "data after"),
		bad(`[]`, "must be a JSON object"),
		bad(`"docs"`, "must be a JSON object"),
		bad(`{}`, "must include `docs`"),
		bad(`{"docs":null}`, "must include `docs`"),
		bad(`{"docs":{}}`, "must be an array"),
		bad(`{"docs":[],"new_edits":"false"}`, "`new_edits` parameter must be a boolean"),
		bad(`{"docs":[],"new_edits":null}`, "`new_edits` parameter must be a boolean"),
		bad(`{"docs":`+many+`}`, "more than 10000"),
		bad(doc(`[]`), "docs[0]: Document must be a JSON object"),
		bad(doc(`{},1`), "docs[1]: Document must be a JSON object"),
		bad(doc(`null`), "docs[0]: Document must be a JSON object"),
		bad(doc(`{"_id":1}`), "_id must be a string"),
		bad(doc(`{"_id":null}`), "_id must be a string"),
		bad(doc(`{"_rev":"1-xyz"}`), "invalid rev format"),
		bad(doc(`{"_rev":"0-a"}`), "invalid rev format"),
		bad(doc(`{"_rev":5}`), "_rev must be a string"),
		bad(doc(`{"_deleted":"true"}`), "_deleted must be a boolean"),
		bad(doc(`{"_revisions":{"start":"1","ids":["a"]}}`), "_revisions must be"),
		bad(doc(`{"_revisions":{"start":-1,"ids":["a"]}}`), "_revisions must be"),
		bad(doc(`{"_revisions":{"start":1.5,"ids":["a"]}}`), "_revisions must be"),
		bad(doc(`{"_revisions":[]}`), "_revisions must be"),
		bad(doc(`{"_revisions":{"start":1,"ids":["a","b"]}}`), "less than its 2 ids"),
		bad(doc(`{"_revisions":{"start":2,"ids":["a","B"]}}`), "not lowercase hex"),
		bad(doc(`{"_revisions":{"start":1,"ids":[]}}`), "no ids"),
		bad(doc(`{"_revisions":{"start":1001,"ids":[`+strings.Repeat(`"a",`, MaxRevisions)+`"a"]}}`), "more than 1000"),
		bad(doc(`{"_rev":"2-b","_revisions":{"start":2,"ids":["c","a"]}}`), "not the first of _revisions"),
		bad(doc(`{"_attachments":[]}`), "_attachments must be an object"),
		bad(doc(`{"_attachments":{"a":{"content_type":"text/plain","data":"!!!"}}}`), `Invalid attachment data for "a"`),
		bad(doc(`{"_attachments":{"a":{"data":"aGVsbG8"}}}`), "Invalid attachment data"),
		bad(doc(`{"_attachments":{"a":{"data":5}}}`), "must be an object with"),
		bad(doc(`{"_attachments":{"a":"x"}}`), "must be an object with"),
		bad(doc(`{"_attachments":{"a":{"content_type":"text/plain"}}}`), "neither data nor stub"),
		bad(doc(`{"_attachments":{"a":{"stub":true,"data":""}}}`), "a stub with data"),
		bad(doc(`{"_attachments":{"a":{"follows":true}}}`), "multipart"),
		bad(doc(`{"_attachments":{"a":{"data":"aGVsbG8=","length":4}}}`), "length 4"),
		bad(doc(`{"_attachments":{"a":{"stub":true,"length":-1}}}`), "negative length"),
		bad(doc(`{"_attachments":{"_a":{"stub":true}}}`), "can't start with '_'"),
		bad(doc(`{"_attachments":{"":{"stub":true}}}`), "can't be empty"),
		bad(ne(`{"_rev":"1-a"}`), "docs[0]: new_edits false needs an _id"),
		bad(ne(`{"_id":"a"}`), "docs[0]: new_edits false needs a _rev or _revisions"),
		{doc(`{"_foo":1}`), 400, "doc_validation", "docs[0]: Bad special document member: _foo"},
		{doc(`{"_":1}`), 400, "doc_validation", "Bad special document member: _"},
		{doc(`{"_\u0000x":1}`), 400, "doc_validation", `Bad special document member: "_\x00x"`},
		bad("{\"docs\":[{\"a\":\"\xff\"}]}", "not valid UTF-8"),
		{`{"docs":[{"a":"` + strings.Repeat("x", maxBody) + `"}]}`, 413, "too_large", "too large"},
	}
	checkBad(t, "DecodeBulkDocs", func(s string) error { _, err := DecodeBulkDocs(strings.NewReader(s), maxBody); return err }, cases)
}

func TestDecodeRevsDiffBad(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range MaxBulkDocs + 1 {
		fmt.Fprintf(&many, `"d%d":[],`, i)
	}
	many.WriteString(`"x":[]}`)
	cases := []badCase{
		bad(``, "invalid JSON"),
		bad(`{"a":["1-a"]`, "invalid JSON"),
		bad(`[]`, "must be a JSON object"),
		bad(`null`, "must be a JSON object"),
		bad(`{"a":"1-a"}`, `revisions of "a" must be a list of strings`),
		bad(`{"a":null}`, "must be a list of strings"),
		bad(`{"a":[1]}`, "must be a list of strings"),
		bad(`{"a":["1-a","x"]}`, `document "a": invalid rev format`),
		bad(`{"a":[null]}`, "invalid rev format"),
		bad(many.String(), "more than 10000"),
		{`{"a":["` + strings.Repeat("1", 100) + `"]}`, 413, "too_large", "more than 50 bytes"},
	}
	checkBad(t, "DecodeRevsDiff", func(s string) error {
		max := int64(maxBody)
		if strings.Contains(s, strings.Repeat("1", 100)) {
			max = 50
		}
		_, err := DecodeRevsDiff(strings.NewReader(s), max)
		return err
	}, cases)
}

func TestDecodeBulkGet(t *testing.T) {
	got, err := DecodeBulkGet(strings.NewReader(pouchBulkGet), maxBody)
	if err != nil {
		t.Fatal(err)
	}
	want := []BulkGetItem{
		{ID: "doc2", Rev: "2-8b746167eef8b7e181e1e60fba2926af"},
		{ID: "gone", Rev: "2-c621839beb121784bf79c57a3965ead2"},
		{ID: "doc1", Rev: "1-0f7f43b9c5ce7cfce8ee0d0fb7ffc754"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	got, err = DecodeBulkGet(strings.NewReader(`{"docs":[{"id":"a"},{"id":"b","rev":"3-c","atts_since":["1-a","2-b"]}]}`), maxBody)
	if err != nil || !reflect.DeepEqual(got, []BulkGetItem{{ID: "a"}, {ID: "b", Rev: "3-c", AttsSince: []string{"1-a", "2-b"}}}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	cases := []badCase{
		bad(`{`, "invalid JSON"),
		bad(`[]`, "must be a JSON object"),
		bad(`{}`, "Missing JSON list of 'docs'"),
		bad(`{"docs":{}}`, "must be an array"),
		bad(`{"docs":[1]}`, "docs[0] must be"),
		bad(`{"docs":[null]}`, "docs[0] must be"),
		bad(`{"docs":[{"rev":"1-a"}]}`, "docs[0]: document id missed"),
		bad(`{"docs":[{"id":""}]}`, "document id missed"),
		bad(`{"docs":[{"id":"a","rev":"a"}]}`, "docs[0]: invalid rev format"),
		bad(`{"docs":[{"id":"a","atts_since":["1-a","z"]}]}`, "atts_since: invalid rev format"),
		bad(`{"docs":[{"id":"a","atts_since":"1-a"}]}`, "docs[0] must be"),
		bad(`{"docs":[`+strings.Repeat(`{"id":"a"},`, MaxBulkDocs)+`{"id":"a"}]}`, "more than 10000"),
	}
	checkBad(t, "DecodeBulkGet", func(s string) error { _, err := DecodeBulkGet(strings.NewReader(s), maxBody); return err }, cases)
}

func TestDecodeLocalDoc(t *testing.T) {
	got, err := DecodeLocalDoc(strings.NewReader(pouchLocalDoc), maxBody)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "_local/yGOoQU1s8lbX2aaa5.GJkQ==" || got.Rev != "" || got.Body["last_seq"] != json.Number("5") || got.Body["replicator"] != "pouchdb" || len(got.Body) != 5 {
		t.Fatalf("got %+v", got)
	}
	// The second checkpoint carries the revision CouchDB gave: "0-1".
	got, err = DecodeLocalDoc(strings.NewReader(`{"_id":"_local/x","_rev":"0-1","last_seq":"12-g1AAAA","_revisions":{"start":1,"ids":["a"]}}`), maxBody)
	if err != nil || got.Rev != "0-1" || got.Body["last_seq"] != "12-g1AAAA" {
		t.Fatalf("got %+v, %v", got, err)
	}
	cases := []badCase{
		bad(`[]`, "Document must be a JSON object"),
		bad(`{"_rev":1}`, "_rev must be a string"),
		bad(`{"_rev":"`+strings.Repeat("0", MaxRevLen+1)+`"}`, "_rev longer than"),
		bad(`{"_attachments":{}}`, "no attachments"),
		bad(`{"_deleted":1}`, "_deleted must be a boolean"),
		{`{"_bar":1}`, 400, "doc_validation", "Bad special document member: _bar"},
	}
	checkBad(t, "DecodeLocalDoc", func(s string) error { _, err := DecodeLocalDoc(strings.NewReader(s), maxBody); return err }, cases)
}

func TestDecodeMaxBytesReader(t *testing.T) {
	// A handler's http.MaxBytesReader smaller than max is a 413 too.
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, nopCloser{strings.NewReader(pouchRevsDiff)}, 10)
	_, err := DecodeRevsDiff(r, maxBody)
	var e *Error
	if !errors.As(err, &e) || e.Status != 413 {
		t.Fatalf("got %v", err)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// TestResponseJSON pins the JSON of the response shapes: CouchDB's names,
// and what is left out when empty.
func TestResponseJSON(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{Welcome{CouchDB: "Welcome", Version: "3.3.3", UUID: "85fb71bf700c17267fef77535820e371", Vendor: Vendor{Name: "barrel"}},
			`{"couchdb":"Welcome","version":"3.3.3","uuid":"85fb71bf700c17267fef77535820e371","vendor":{"name":"barrel"}}`},
		{DBInfo{DBName: "t1", DocCount: 2, UpdateSeq: "7", InstanceStartTime: "0"},
			`{"db_name":"t1","doc_count":2,"doc_del_count":0,"update_seq":"7","instance_start_time":"0"}`},
		{ChangesResult{Results: []ChangesRow{{Seq: "1", ID: "a", Changes: []ChangeRev{{"1-a"}}}}, LastSeq: "1"},
			`{"results":[{"seq":"1","id":"a","changes":[{"rev":"1-a"}]}],"last_seq":"1","pending":0}`},
		{ChangesRow{Seq: "2", ID: "b", Changes: []ChangeRev{{"2-b"}}, Deleted: true, Doc: map[string]any{"_id": "b", "_rev": "2-b", "_deleted": true}},
			`{"seq":"2","id":"b","changes":[{"rev":"2-b"}],"deleted":true,"doc":{"_deleted":true,"_id":"b","_rev":"2-b"}}`},
		{map[string]RevsDiffResult{"a": {Missing: []string{"2-b"}}},
			`{"a":{"missing":["2-b"]}}`},
		{RevsDiffResult{Missing: []string{"3-c"}, PossibleAncestors: []string{"2-b"}},
			`{"missing":["3-c"],"possible_ancestors":["2-b"]}`},
		{[]BulkDocsResult{{ID: "a", Rev: "1-a", OK: true}, {ID: "b", Error: "conflict", Reason: "Document update conflict."}},
			`[{"id":"a","rev":"1-a","ok":true},{"id":"b","error":"conflict","reason":"Document update conflict."}]`},
		{BulkGetResult{Results: []BulkGetResultItem{{ID: "a", Docs: []BulkGetDoc{
			{OK: map[string]any{"_id": "a", "_rev": "1-a"}},
			{Error: &BulkGetError{ID: "a", Rev: "9-z", Error: "not_found", Reason: "missing"}},
		}}}},
			`{"results":[{"id":"a","docs":[{"ok":{"_id":"a","_rev":"1-a"}},{"error":{"id":"a","rev":"9-z","error":"not_found","reason":"missing"}}]}]}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%T:\n got %s\nwant %s", c.v, b, c.want)
		}
	}
}

func FuzzDecodeBulkDocs(f *testing.F) {
	for _, s := range []string{
		pouchBulkDocs,
		`{"docs":[{"a":1,"_conflicts":[]},{"_id":"x","_rev":"1-a","_attachments":{"s":{"stub":true,"revpos":1}}}]}`,
		`{"docs":[{"_revisions":{"start":3,"ids":["c","b","a"]},"_rev":"3-c","_id":"d"}],"new_edits":false}`,
		`{"docs":[{"_foo":1}]}`, `{"docs":[{"_attachments":{"a":{"data":"!"}}}]}`, `{"docs":{}}`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeBulkDocs(strings.NewReader(string(b)), 1<<16)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != 400 && e.Status != 413) {
				t.Fatalf("error %v is not a 400 or 413 *Error", err)
			}
			return
		}
		for _, d := range got.Docs {
			if d.Body == nil {
				t.Fatal("nil Body")
			}
			for k := range d.Body {
				if strings.HasPrefix(k, "_") {
					t.Fatalf("Body has %q", k)
				}
			}
			if d.Rev != "" {
				if _, err := ParseRev(d.Rev); err != nil {
					t.Fatalf("Rev %q: %v", d.Rev, err)
				}
			}
			if d.Revisions != nil {
				if _, err := d.Revisions.Revs(); err != nil {
					t.Fatalf("Revisions: %v", err)
				}
			}
			if !got.NewEdits && (d.ID == "" || (d.Rev == "" && d.Revisions == nil)) {
				t.Fatalf("new_edits false doc without id or rev: %+v", d)
			}
		}
	})
}

func FuzzDecodeRevsDiff(f *testing.F) {
	for _, s := range []string{pouchRevsDiff, `{"a":[]}`, `{"a":["1-a","x"]}`, `{"a":"1-a"}`, `[]`, `{}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeRevsDiff(strings.NewReader(string(b)), 1<<16)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != 400 && e.Status != 413) {
				t.Fatalf("error %v is not a 400 or 413 *Error", err)
			}
			return
		}
		for id, revs := range got {
			for _, r := range revs {
				if r2, err := ParseRev(r.String()); err != nil || r2 != r {
					t.Fatalf("%q: rev %v does not round-trip: %v", id, r, err)
				}
			}
		}
	})
}
