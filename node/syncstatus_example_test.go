package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/barrel-db/barrel/node"
)

// A badge that says "synced" or how many documents are left: watch a
// database's replication state and summarize each state as it arrives.
// (This node has no network, so the first state is the only one.)
func ExampleNode_WatchReplication() {
	dir, _ := os.MkdirTemp("", "barrel-example")
	defer os.RemoveAll(dir)
	n, _ := node.Open(context.Background(), node.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	defer n.Close()
	n.CreateDB(context.Background(), "notes")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	states, err := n.WatchReplication(ctx, "notes")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(badge(<-states))
	// Output:
	// synced
}

// badge summarizes a replication state for a person.
func badge(st node.ReplicationState) string {
	left := uint64(0)
	for _, p := range st.Peers {
		if pr := p.Progress; pr != nil && pr.Expected > pr.Done {
			left += pr.Expected - pr.Done
		} else if p.Connected {
			left += p.Lag
		}
	}
	if left == 0 {
		return "synced"
	}
	return fmt.Sprintf("%d documents to go", left)
}
