package couch

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRev(t *testing.T) {
	good := []struct {
		in   string
		want Rev
	}{
		{"1-967a00dff5e02add41819138abb3284d", Rev{1, "967a00dff5e02add41819138abb3284d"}}, // CouchDB, md5
		{"2-7051cbe5c8faecd085a3fa619e6e6337", Rev{2, "7051cbe5c8faecd085a3fa619e6e6337"}},
		{"1-a", Rev{1, "a"}},
		{"18446744073709551615-0", Rev{18446744073709551615, "0"}},
		{"3-" + strings.Repeat("f", MaxRevHashLen), Rev{3, strings.Repeat("f", MaxRevHashLen)}},
	}
	for _, c := range good {
		got, err := ParseRev(c.in)
		if err != nil {
			t.Errorf("ParseRev(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseRev(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.in {
			t.Errorf("ParseRev(%q).String() = %q", c.in, got.String())
		}
	}
	bad := []string{
		"", "-", "1", "1-", "-abc", "0-abc", "01-abc", "+1-abc", " 1-abc", "1 -abc",
		"1-ABC", "1-xyz", "1-abc-def", "1-abc ", "1.5-abc", "x-abc",
		"18446744073709551616-abc", // uint64 overflow
		"1-" + strings.Repeat("a", MaxRevHashLen+1),
		strings.Repeat("1", 30) + "-a",
		"1-\x00", "1-é",
	}
	for _, in := range bad {
		if r, err := ParseRev(in); err == nil {
			t.Errorf("ParseRev(%q) = %+v, want an error", in, r)
		} else if !errors.Is(err, ErrBadRev) {
			t.Errorf("ParseRev(%q): %v does not wrap ErrBadRev", in, err)
		}
	}
	// A long input is not echoed back.
	_, err := ParseRev(strings.Repeat("a", 10000))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("long input: %v", err)
	}
}

func TestRevisionsRevs(t *testing.T) {
	got, err := Revisions{Start: 3, IDs: []string{"c", "b", "a"}}.Revs()
	if err != nil {
		t.Fatal(err)
	}
	want := []Rev{{3, "c"}, {2, "b"}, {1, "a"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Revs = %v, want %v", got, want)
	}
	// A partial history (revs_limit reached) starts above its length.
	got, err = Revisions{Start: 1001, IDs: []string{"b", "a"}}.Revs()
	if err != nil || !reflect.DeepEqual(got, []Rev{{1001, "b"}, {1000, "a"}}) {
		t.Fatalf("partial: %v, %v", got, err)
	}
	max := make([]string, MaxRevisions)
	for i := range max {
		max[i] = "ab"
	}
	if _, err := (Revisions{Start: MaxRevisions, IDs: max}).Revs(); err != nil {
		t.Fatalf("MaxRevisions ids: %v", err)
	}

	bad := []Revisions{
		{Start: 1},
		{Start: 0, IDs: []string{"a"}},
		{Start: 2, IDs: []string{"c", "b", "a"}},
		{Start: 2, IDs: []string{"b", "A"}},
		{Start: 2, IDs: []string{"b", ""}},
		{Start: 2, IDs: []string{"b", "1-a"}},
		{Start: 2, IDs: []string{strings.Repeat("a", MaxRevHashLen+1)}},
		{Start: MaxRevisions + 1, IDs: append(max, "ab")},
	}
	for _, rs := range bad {
		if got, err := rs.Revs(); err == nil {
			t.Errorf("%+v.Revs() = %v, want an error", rs, got)
		} else if !errors.Is(err, ErrBadRev) {
			t.Errorf("%+v.Revs(): %v does not wrap ErrBadRev", rs, err)
		}
	}
}
