package node

import (
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/barrel-db/barrel/crdt"
)

// replRecordGolden is a catalog record (dbMeta) with a replication setting
// as the store has written it since replication settings were stored: a
// data dir holding it must read back the same setting, and writing the
// same setting must give the same bytes.
const replRecordGolden = "83071b17979cfe362a000083f5626b2d8683652f74797065623d3d646e6f746583622f6e623e3d0383662f73636f7265613cf9410083652f646f6e6562213df583642f7461676670726566697862612f83642f64756566657869737473f6"

func replRecordSetting() Replication {
	return Replication{Off: true, IDPrefix: "k-", Where: []Cond{
		{Path: "/type", Op: "==", Value: "note"},
		{Path: "/n", Op: ">=", Value: int64(3)},
		{Path: "/score", Op: "<", Value: 2.5},
		{Path: "/done", Op: "!=", Value: true},
		{Path: "/tag", Op: "prefix", Value: "a/"},
		{Path: "/due", Op: "exists"},
	}}
}

func TestReplicationRecordEncoding(t *testing.T) {
	r := replRecordSetting()
	b, err := crdt.Marshal(&dbMeta{ID: 7, Created: 1700000000000000000, Repl: r.meta()})
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != replRecordGolden {
		t.Errorf("catalog record changed:\n got  %s\n want %s", got, replRecordGolden)
	}
	golden, err := hex.DecodeString(replRecordGolden)
	if err != nil {
		t.Fatal(err)
	}
	var m dbMeta
	if err := crdt.Unmarshal(golden, &m); err != nil {
		t.Fatalf("decode the stored record: %v", err)
	}
	if m.ID != 7 || m.Created != 1700000000000000000 {
		t.Errorf("decoded id %d created %d", m.ID, m.Created)
	}
	if got := m.Repl.replication(); !reflect.DeepEqual(got, r) {
		t.Errorf("stored setting reads back as\n %#v\nwant\n %#v", got, r)
	}
	if got := m.Repl.replication().filter(); !reflect.DeepEqual(got, r.filter()) {
		t.Errorf("filter of the stored setting %#v, want %#v", got, r.filter())
	}
}

// A replication setting survives a restart unchanged: what SetReplication
// stores is what Open reads back.
func TestReplicationSettingReopens(t *testing.T) {
	dir := t.TempDir()
	n := openTestNode(t, dir, nil)
	if err := n.CreateDB(t.Context(), "db"); err != nil {
		t.Fatal(err)
	}
	want := replRecordSetting()
	if err := n.SetReplication(t.Context(), "db", want); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = openTestNode(t, dir, nil)
	d, err := n.DB("db")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Replication(); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen the setting is\n %#v\nwant\n %#v", got, want)
	}
}
