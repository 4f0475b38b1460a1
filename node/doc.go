// Package node is the barrel engine an application embeds: it opens a data
// directory (identity key and Pebble store), its databases, and serves
// documents, the changes feed and queries. Its exported API is the library's
// face; httpapi and cmd/barrel-peer are thin layers over it.
//
// # Ownership
//
// Each database has one writer goroutine (commit.Writer.Run, in
// node/internal/commit) that alone mutates it. Put, Patch, Delete and Bulk
// send a request to its bounded queue and wait; a full
// queue answers ErrOverloaded at once. The writer takes every waiting request
// (up to Config.MaxBatch), merges each write through crdt, adds the change,
// its feed entry, the document state and the index delta to one batch,
// commits it with one fsync (group commit), then answers every caller.
// Readers (Get, List, Changes, Query) read the store directly and always see
// every acknowledged write.
//
// A change received from a peer will take the same path as a local one: it
// becomes a request of the writer loop, is merged by the same rules and gets
// the next local sequence number in the feed.
//
// # Attachments
//
// PutAttachment streams content into chunked, content-addressed blobs
// (one chunk in memory) and references it from the document's
// _attachments through the writer loop; Attachment reads it back from a
// store snapshot with Seek; CompactBlobs reclaims blobs nothing references,
// never one a reader or a writer holds (blob.go states the rule). With
// networking, a received document that references a blob this node lacks
// makes it fetch the blob by digest from its peers in the background
// (blob_fetch.go), resumably and verified before it becomes visible
// (blob_replica.go); until then reading the attachment is ErrNotFound.
//
// # Use
//
//	n, err := node.Open(ctx, node.Config{DataDir: dir})
//	defer n.Close()
//	_ = n.CreateDB(ctx, "places")
//	db, _ := n.DB("places")
//	res, _ := db.Put(ctx, "p1", map[string]any{"name": "Berlin"}, "")
//	doc, _ := db.Get(ctx, "p1")
//
// # Limits
//
// A document whose changes arrive out of causal order is re-merged by
// replaying its history, which costs time linear in its number of changes;
// history compaction is what bounds it. Body maps returned by reads are the
// caller's.
package node
