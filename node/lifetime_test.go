package node

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// dbGoroutines lists the goroutines running a database's loops.
func dbGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"node.(*DB).run(", "node.(*DB).compactLoop(", "node.(*DB).reconsiderLoop(", "node.(*DB).commit("} {
			if strings.Contains(g, fn) {
				out = append(out, fn)
			}
		}
	}
	return out
}

// TestCloseWaitsForEveryLoop: a database's goroutines (writer, compaction
// ticker, ACL reconsideration) are owned by it: when Close returns, none is
// left running, even with compactions going on and an ACL change just made.
func TestCloseWaitsForEveryLoop(t *testing.T) {
	before := len(dbGoroutines()) // of databases other tests left open, if any
	n := openTestNode(t, t.TempDir(), func(c *Config) {
		c.Retention = &Retention{KeepRevisions: 1, Interval: time.Millisecond}
	})
	for i := range 3 {
		name := fmt.Sprintf("db%d", i)
		if err := n.CreateDB(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		db, err := n.DB(name)
		if err != nil {
			t.Fatal(err)
		}
		rev := ""
		for j := range 20 {
			rev = mustPut(t, db, "doc", map[string]any{"v": j}, rev)
		}
		if err := n.SetACL(t.Context(), name, ACL{Readers: []string{AnyPeer}, Writers: []string{AnyPeer}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(dbGoroutines()) <= before {
		t.Fatal("no database loop found running: the test sees nothing")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if left := dbGoroutines(); len(left) > before {
		t.Fatalf("after Close, still running: %v (%d before the test)", left, before)
	}
}
