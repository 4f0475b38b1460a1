package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/barrel-db/barrel/node"
)

// A single embedded node: open, write, read by path, query.
func Example() {
	dir, _ := os.MkdirTemp("", "barrel-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	n, err := node.Open(ctx, node.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close()
	n.CreateDB(ctx, "places")
	db, _ := n.DB("places")
	db.Put(ctx, "p1", map[string]any{"name": "Berlin", "locations": map[string]any{"country": "Germany"}}, "")
	db.Put(ctx, "p2", map[string]any{"name": "Lyon", "locations": map[string]any{"country": "France"}}, "")

	country, _ := db.GetPath(ctx, "p1", "/locations/country")
	fmt.Println(country)

	res, _ := db.Query(ctx, node.Query{Where: []node.Cond{{Path: "/locations/country", Op: "==", Value: "France"}}})
	for _, d := range res.Docs {
		fmt.Println(d.ID, d.Body["name"])
	}
	// Output:
	// Germany
	// p2 Lyon
}

// Two clients edit different fields from the same revision: both edits are
// kept. The same field: one value wins everywhere, the other is a conflict.
func ExampleDB_Put_concurrentEdits() {
	dir, _ := os.MkdirTemp("", "barrel-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	n, _ := node.Open(ctx, node.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	defer n.Close()
	n.CreateDB(ctx, "db")
	db, _ := n.DB("db")
	base, _ := db.Put(ctx, "d", map[string]any{"a": 1, "b": 1}, "")
	db.Put(ctx, "d", map[string]any{"a": 2, "b": 1}, base.Rev) // client 1 changes a
	db.Put(ctx, "d", map[string]any{"a": 1, "b": 2}, base.Rev) // client 2 changes b
	doc, _ := db.Get(ctx, "d")
	fmt.Println(doc.Body["a"], doc.Body["b"], len(doc.Conflicts))
	// Output: 2 2 0
}

// Patch applies a JSON merge patch plus counter increments and set
// additions.
func ExampleDB_Patch() {
	dir, _ := os.MkdirTemp("", "barrel-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	n, _ := node.Open(ctx, node.Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	defer n.Close()
	n.CreateDB(ctx, "db")
	db, _ := n.DB("db")
	db.Put(ctx, "page", map[string]any{"title": "Home", "views": 1}, "")
	db.Patch(ctx, "page", node.Patch{
		Merge: map[string]any{"title": "Start"},
		Incr:  map[string]any{"/views": 2},
		Add:   map[string][]any{"/tags": {"new"}},
	})
	doc, _ := db.Get(ctx, "page")
	fmt.Println(doc.Body["title"], doc.Body["views"], doc.Body["tags"])
	// Output: Start 3 [new]
}
