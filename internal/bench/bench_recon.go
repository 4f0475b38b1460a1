package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/barrel-db/barrel/node"
)

// Reconciliation workloads (issue 15): sync protocol version 2.

// benchW5Checks is how many anti-entropy in-sync checks W5 averages.
const benchW5Checks = 5

// W5: A and B hold the same nRepl documents and no checkpoint of each
// other (B's data dir is a copy of A's under a new identity). first_ms is
// from B's dial until both peers found the sets equal (dial, identify and
// the reconciliation set built on open included); check_ms and
// check_bytes are the mean client session time and wire bytes (both ways)
// of the next benchW5Checks anti-entropy checks, which find them equal in
// one round trip each.
func (b *bench) inSyncCheck(ctx context.Context) (line string, err error) {
	dirA, dirB, err := b.twins(ctx)
	if err != nil {
		return "", err
	}
	tick := func(c *node.P2PConfig) { c.AntiEntropy = 200 * time.Millisecond }
	na, _, err := b.openPeerWith(ctx, dirA, tick)
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	nb, _, err := b.openPeerWith(ctx, dirB, tick)
	if err != nil {
		return "", err
	}
	defer closePeer(nb, &err)
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	start := time.Now()
	if err := connect(ctx, nb, na); err != nil {
		return "", err
	}
	if err := waitMetric(ctx, func() bool { return inSyncChecks(na) >= 1 && inSyncChecks(nb) >= 1 }); err != nil {
		return "", fmt.Errorf("first in-sync check: %w", err)
	}
	first := time.Since(start)
	checks0, sec0, bytes0 := inSyncChecks(nb), clientSeconds(nb), metric(nb, "barrel_sync_recon_bytes_total")
	if err := waitMetric(ctx, func() bool { return inSyncChecks(nb) >= checks0+benchW5Checks }); err != nil {
		return "", fmt.Errorf("in-sync checks: %w", err)
	}
	checks := inSyncChecks(nb) - checks0
	sec := clientSeconds(nb) - sec0
	bytes := metric(nb, "barrel_sync_recon_bytes_total") - bytes0
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nRepl),
		"first_ms=" + ms(first),
		"check_ms=" + strconv.FormatFloat(sec/checks*1000, 'f', 2, 64),
		"check_bytes=" + strconv.FormatFloat(bytes/checks, 'f', 0, 64),
		"checks=" + strconv.FormatFloat(checks, 'f', 0, 64),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// twins makes two data dirs holding the same nRepl documents and no
// checkpoint of each other: A's, loaded, and a copy of it under a new
// identity for B.
func (b *bench) twins(ctx context.Context) (dirA, dirB string, err error) {
	dirA, dirB = b.dir+"/a", b.dir+"/b"
	na, da, err := b.openPeer(ctx, dirA, false)
	if err != nil {
		return "", "", err
	}
	if err := b.load(ctx, da, 0, b.c.nRepl); err != nil {
		closePeer(na, &err)
		return "", "", err
	}
	if err := na.Close(); err != nil {
		return "", "", fmt.Errorf("close node: %w", err)
	}
	if err := copyDataDir(dirA, dirB); err != nil {
		return "", "", err
	}
	return dirA, dirB, nil
}

// W4R: W4 without checkpoints. A holds nRepl documents; B's data dir is
// a copy of A's under a new identity, so neither has pulled from the
// other; each writes benchW4Writes documents of its own, and B dials A.
// Timed from the dial until both hold nRepl+200.
func (b *bench) reconnectFresh(ctx context.Context) (line string, err error) {
	dirA, dirB, err := b.twins(ctx)
	if err != nil {
		return "", err
	}
	const lo = 1 << 30 // ids far from the first nRepl, as in W4
	for i, dir := range []string{dirA, dirB} {
		n, d, err := b.openPeer(ctx, dir, false)
		if err != nil {
			return "", err
		}
		from := lo + i*benchW4Writes
		if err := b.load(ctx, d, from, from+benchW4Writes); err != nil {
			closePeer(n, &err)
			return "", err
		}
		if err := n.Close(); err != nil {
			return "", fmt.Errorf("close node: %w", err)
		}
	}
	na, da, err := b.openPeerWith(ctx, dirA, func(*node.P2PConfig) {})
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	nb, db, err := b.openPeerWith(ctx, dirB, func(*node.P2PConfig) {})
	if err != nil {
		return "", err
	}
	defer closePeer(nb, &err)
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	defer stop(&err)
	want := b.c.nRepl + 2*benchW4Writes
	start := time.Now()
	if err := connect(ctx, nb, na); err != nil {
		return "", err
	}
	if err := waitCount(ctx, db, want); err != nil {
		return "", fmt.Errorf("catch up B: %w", err)
	}
	if err := waitCount(ctx, da, want); err != nil {
		return "", fmt.Errorf("catch up A: %w", err)
	}
	elapsed := time.Since(start)
	both := func(name string) float64 { return metric(na, name) + metric(nb, name) }
	// A reconciliation counts its bytes when its session ends, which can be
	// just after the documents became readable.
	if err := waitMetric(ctx, func() bool {
		return metricLabel(na, "barrel_sync_reconciliations_total", "result", "reconciled") >= 1 &&
			metricLabel(nb, "barrel_sync_reconciliations_total", "result", "reconciled") >= 1
	}); err != nil {
		return "", err
	}
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nRepl),
		"writes=" + strconv.Itoa(2*benchW4Writes),
		"seconds=" + strconv.FormatFloat(elapsed.Seconds(), 'f', 2, 64),
		"bytes=" + strconv.FormatFloat(both("barrel_sync_bytes_received_total"), 'f', 0, 64),
		"body_bytes=" + strconv.FormatFloat(both("barrel_sync_body_bytes_received_total"), 'f', 0, 64),
		"recon_bytes=" + strconv.FormatFloat(both("barrel_sync_recon_bytes_total"), 'f', 0, 64),
		"all_ids_bytes=" + strconv.Itoa(b.c.nRepl*benchIDBytes),
		"rss_mb=" + strconv.Itoa(b.rss()),
		"durability=" + b.c.durability,
	}, " "), nil
}

// openPeerWith is openPeer with networking, its P2P config changed by mod.
func (b *bench) openPeerWith(ctx context.Context, dir string, mod func(*node.P2PConfig)) (*node.Node, *node.DB, error) {
	cfg := node.Config{DataDir: dir, Durability: b.c.durability, Logger: b.log,
		P2P: &node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true}}
	mod(cfg.P2P)
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	d, err := n.DB(benchDB)
	if err != nil {
		_ = n.Close()
		return nil, nil, err
	}
	return n, d, nil
}

// copyDataDir copies a closed node's data dir, except its identity: the
// copy opens as another peer holding the same databases.
func copyDataDir(from, to string) error {
	return filepath.WalkDir(from, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case e.IsDir():
			return os.MkdirAll(dst, 0o700)
		case rel == "identity.key":
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// waitMetric polls cond (over a node's metrics) until it holds.
func waitMetric(ctx context.Context, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, benchReplTimeout)
	defer cancel()
	for !cond() {
		if err := wait(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// inSyncChecks is the node's count of reconciliations that found the sets
// equal.
func inSyncChecks(n *node.Node) float64 {
	return metricLabel(n, "barrel_sync_reconciliations_total", "result", "in_sync")
}

// clientSeconds is the sum of the node's client sync session durations.
func clientSeconds(n *node.Node) float64 {
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "barrel_sync_session_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" && l.GetValue() == "client" {
					return m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return 0
}

// metric reads an unlabelled counter (0 when missing).
func metric(n *node.Node, name string) float64 { return metricLabel(n, name, "", "") }

// metricLabel reads a counter, the series whose label key has value (any
// series when key is "").
func metricLabel(n *node.Node, name, key, value string) float64 {
	mfs, err := n.Gatherer().Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := key == ""
			for _, l := range m.GetLabel() {
				ok = ok || (l.GetName() == key && l.GetValue() == value)
			}
			if ok {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// benchW7Scale is how many times --n-repl documents W7's database holds.
const benchW7Scale = 10

// W7: A and B hold the same 10 × nRepl documents (B's data dir a copy of
// A's under a new identity) and have met once, so each holds a checkpoint
// of the other; B stops, A writes nRepl new documents, B comes back.
// Timed from B's dial until B holds them all; w2_seconds is W2's catch-up
// of nRepl documents by a fresh peer in the same run, ratio the quotient.
func (b *bench) returningPeer(ctx context.Context) (line string, err error) {
	dirA, dirB := b.dir+"/a", b.dir+"/b"
	base := benchW7Scale * b.c.nRepl
	na, da, err := b.openPeer(ctx, dirA, false)
	if err != nil {
		return "", err
	}
	if err := b.load(ctx, da, 0, base); err != nil {
		closePeer(na, &err)
		return "", err
	}
	if err := na.Close(); err != nil {
		return "", fmt.Errorf("close node: %w", err)
	}
	if err := copyDataDir(dirA, dirB); err != nil {
		return "", err
	}
	na, da, err = b.openPeerWith(ctx, dirA, func(*node.P2PConfig) {})
	if err != nil {
		return "", err
	}
	defer closePeer(na, &err)
	nb, _, err := b.openPeerWith(ctx, dirB, func(*node.P2PConfig) {})
	if err != nil {
		return "", err
	}
	// They meet: both find the sets equal and store checkpoints.
	if err := connect(ctx, nb, na); err != nil {
		closePeer(nb, &err)
		return "", err
	}
	if err := waitMetric(ctx, func() bool { return inSyncChecks(nb) >= 1 }); err != nil {
		closePeer(nb, &err)
		return "", fmt.Errorf("first meeting: %w", err)
	}
	if err := nb.Close(); err != nil {
		return "", fmt.Errorf("close node: %w", err)
	}
	const lo = 1 << 30
	if err := b.load(ctx, da, lo, lo+b.c.nRepl); err != nil {
		return "", err
	}
	stop, err := b.profile()
	if err != nil {
		return "", err
	}
	nb, db, err := b.openPeerWith(ctx, dirB, func(*node.P2PConfig) {})
	if err != nil {
		stop(&err)
		return "", err
	}
	start := time.Now()
	if err := connect(ctx, nb, na); err != nil {
		closePeer(nb, &err)
		stop(&err)
		return "", err
	}
	if err := waitCount(ctx, db, base+b.c.nRepl); err != nil {
		closePeer(nb, &err)
		stop(&err)
		return "", fmt.Errorf("catch up B: %w", err)
	}
	elapsed := time.Since(start)
	stop(&err)
	// A pull counts its bytes when its session ends, which can be just
	// after the documents became readable: wait for the count to settle.
	bytes := settle(func() float64 { return metric(nb, "barrel_sync_bytes_received_total") })
	recon := metric(nb, "barrel_sync_recon_bytes_total")
	fallbacks := metricLabel(nb, "barrel_sync_reconciliations_total", "result", "fallback")
	rss := b.rss()
	closePeer(nb, &err)
	if err != nil {
		return "", err
	}
	// W2 in the same run: a fresh peer pulls nRepl documents.
	w2 := &bench{c: b.c, gen: b.gen, dir: b.dir + "/w2", log: b.log, name: "W2"}
	w2Line, err := w2.replicate(ctx)
	if err != nil {
		return "", fmt.Errorf("W2 of the same run: %w", err)
	}
	w2Secs, err := lineValue(w2Line, "seconds")
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		"workload=" + b.name,
		"n=" + strconv.Itoa(b.c.nRepl),
		"base=" + strconv.Itoa(base),
		"seconds=" + strconv.FormatFloat(elapsed.Seconds(), 'f', 2, 64),
		"w2_seconds=" + strconv.FormatFloat(w2Secs, 'f', 2, 64),
		"ratio=" + strconv.FormatFloat(elapsed.Seconds()/w2Secs, 'f', 2, 64),
		"bytes=" + strconv.FormatFloat(bytes, 'f', 0, 64),
		"recon_bytes=" + strconv.FormatFloat(recon, 'f', 0, 64),
		"fallbacks=" + strconv.FormatFloat(fallbacks, 'f', 0, 64),
		"rss_mb=" + strconv.Itoa(rss),
		"durability=" + b.c.durability,
	}, " "), nil
}

// lineValue reads key's number from a workload's line.
func lineValue(line, key string) (float64, error) {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %q", key, line)
}

// settle polls f until two reads 50 ms apart agree on a positive value,
// for at most 5 s, and returns the last read.
func settle(f func() float64) float64 {
	v := f()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		now := f()
		if now == v && v > 0 {
			break
		}
		v = now
	}
	return v
}
