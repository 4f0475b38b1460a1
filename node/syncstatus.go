package node

import (
	"context"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	bsync "github.com/barrel-db/barrel/sync"
)

// Sync status: what replication with each peer is doing, per database, for
// GET /dbs/{db}/replication, GET /peers, status, /metrics and the live
// subscription (WatchReplication). It is read from the replicator's status
// table, the announced sequences and the blob fetcher when asked; nothing
// here is stored.

// PeerInfo is a connected peer and the state of replication with it.
type PeerInfo struct {
	ID    string
	Addrs []string
	DBs   []PeerReplStatus
}

// PeerReplStatus is the replication of one database with one peer.
type PeerReplStatus struct {
	Peer       string
	DB         string
	Running    bool
	LastSync   time.Time // end of the last pull, whatever its result (zero: none since start)
	LastError  string
	Checkpoint uint64
	Lag        uint64 // feed entries the peer announced beyond the checkpoint
	Pulled     int
	Bytes      int64
	Connected  bool      // the peer is connected now
	SyncedOnce bool      // a pull from the peer succeeded since the node started
	LastSynced time.Time // end of the last pull that succeeded (zero: none since start)
	// Progress is the running pull's progress, nil when none runs.
	Progress *PullProgress
}

// PullProgress is how far a running pull got. Entries are the peer's feed
// entries (one per change; a document written N times is N entries), the
// unit of the checkpoint and the lag.
type PullProgress struct {
	Started time.Time
	Done    uint64 // feed entries pulled and applied so far
	// Expected is the feed entries the pull has to get through in all:
	// from its starting checkpoint to the sequence the peer last
	// announced (never less than Done). 0 while the peer has announced
	// nothing beyond the checkpoint: the sync protocol itself tells the
	// end only with its last batch.
	Expected uint64
	Applied  int     // changes that were new here so far
	Rate     float64 // feed entries per second over the last 10 s
	// Remaining estimates the time left from Expected, Done and Rate; 0
	// when unknown.
	Remaining time.Duration
}

// BlobStatus is the attachments of a database in flight: blobs that
// replicated documents reference and this node still lacks.
type BlobStatus struct {
	Wanted      int   // blobs wanted (held in memory: at most 100,000)
	Fetching    int   // of those, being transferred now
	WantedBytes int64 // their total length
}

// ReplicationState is a database's replication setting and its state with
// every peer it has synced with.
type ReplicationState struct {
	DB      string
	Setting Replication
	Seq     uint64
	Peers   []PeerReplStatus
	Blobs   BlobStatus
}

func (np *netParts) replStatus(s bsync.PeerDBStatus) PeerReplStatus {
	out := PeerReplStatus{Peer: s.Peer.String(), DB: s.DB, Running: s.Running, LastSync: s.LastSync,
		LastError: s.LastError, Checkpoint: s.Checkpoint, Lag: np.lag(s.Peer, s.DB, s.Checkpoint),
		Pulled: s.Last.Applied, Bytes: s.Last.Bytes,
		Connected:  np.host.Network().Connectedness(s.Peer) == network.Connected,
		SyncedOnce: !s.LastOK.IsZero(), LastSynced: s.LastOK}
	if p := s.Progress; p != nil {
		out.Progress = newPullProgress(*p, out.Checkpoint+out.Lag)
	}
	return out
}

// newPullProgress estimates what is left of a pull whose peer announced
// its feed up to announced (0: unknown).
func newPullProgress(p bsync.Progress, announced uint64) *PullProgress {
	out := &PullProgress{Started: p.Started, Done: p.Done(), Applied: p.Applied, Rate: p.Rate}
	if announced > p.From {
		out.Expected = max(announced-p.From, out.Done)
	}
	if out.Expected > out.Done && p.Rate > 0 {
		out.Remaining = time.Duration(float64(out.Expected-out.Done) / p.Rate * float64(time.Second))
	}
	return out
}

// Peers lists the connected peers, sorted by id, with replication state.
func (n *Node) Peers() ([]PeerInfo, error) {
	np := n.net.Load()
	if np == nil {
		return nil, ErrNoNetwork
	}
	byPeer := map[peer.ID][]PeerReplStatus{}
	for _, s := range np.repl.Status() {
		byPeer[s.Peer] = append(byPeer[s.Peer], np.replStatus(s))
	}
	var out []PeerInfo
	for _, p := range np.host.Network().Peers() {
		pi := PeerInfo{ID: p.String(), DBs: byPeer[p]}
		for _, c := range np.host.Network().ConnsToPeer(p) {
			pi.Addrs = append(pi.Addrs, c.RemoteMultiaddr().String())
		}
		for i := range pi.DBs {
			pi.DBs[i].Peer = ""
		}
		sort.Slice(pi.DBs, func(i, j int) bool { return pi.DBs[i].DB < pi.DBs[j].DB })
		if pi.DBs == nil {
			pi.DBs = []PeerReplStatus{}
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ReplicationState reports a database's replication: its setting, and its
// state with every peer pulled from since the node started (connected or
// not), sorted by peer.
func (n *Node) ReplicationState(name string) (ReplicationState, error) {
	d, err := n.DB(name)
	if err != nil {
		return ReplicationState{}, err
	}
	st := ReplicationState{DB: name, Setting: d.Replication(), Seq: d.seq.Load(), Peers: []PeerReplStatus{}}
	if np := n.net.Load(); np != nil {
		for _, s := range np.repl.Status() {
			if s.DB == name {
				st.Peers = append(st.Peers, np.replStatus(s))
			}
		}
		if np.blobs != nil {
			st.Blobs = np.blobs.status(name)
		}
	}
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].Peer < st.Peers[j].Peer })
	return st, nil
}

// status counts db's wanted blobs.
func (f *blobFetcher) status(db string) BlobStatus { return f.statusByDB(db)[db] }

// statusByDB counts the wanted blobs of db ("": of every database) by
// database.
func (f *blobFetcher) statusByDB(db string) map[string]BlobStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]BlobStatus{}
	for k, w := range f.mu.wants {
		if db != "" && k.db != db {
			continue
		}
		st := out[k.db]
		st.Wanted++
		st.WantedBytes += w.length
		if w.running {
			st.Fetching++
		}
		out[k.db] = st
	}
	return out
}

// Watching replication state. A watcher recomputes the state when woken
// (a pull moved, a peer came or went, an announcement, a blob want) and at
// least every watchRefresh (rates and estimates move by themselves), at
// most once per watchMinInterval, and hands it over only when it differs
// from the last one handed over.
const (
	watchMinInterval = 250 * time.Millisecond
	watchRefresh     = time.Second
)

// WatchReplication returns a channel of db's replication state: the
// current state at once, then each new state as it changes, at most four
// per second. The channel holds one state: when the receiver is slow, a
// newer state replaces the one it has not taken (latest wins), so a
// watcher never holds more than one. It is closed when ctx ends or the
// database can no longer be read (dropped, or the node closed). Errors:
// ErrNotFound (and the other errors of ReplicationState) for db.
func (n *Node) WatchReplication(ctx context.Context, db string) (<-chan ReplicationState, error) {
	st, err := n.ReplicationState(db)
	if err != nil {
		return nil, err
	}
	ch := make(chan ReplicationState, 1)
	ch <- st
	go n.watchReplication(ctx, db, st, ch)
	return ch, nil
}

// watchReplication feeds ch until ctx ends or db cannot be read; last is
// the state already handed over. It owns ch (the only sender) and closes it.
func (n *Node) watchReplication(ctx context.Context, db string, last ReplicationState, ch chan ReplicationState) {
	defer close(ch)
	refresh := time.NewTicker(watchRefresh)
	defer refresh.Stop()
	pause := time.NewTimer(watchMinInterval)
	defer pause.Stop()
	for {
		var woken <-chan struct{}
		if np := n.net.Load(); np != nil {
			woken = np.changed.wait()
		}
		select {
		case <-ctx.Done():
			return
		case <-woken:
		case <-refresh.C:
		}
		select { // coalesce what happens meanwhile
		case <-ctx.Done():
			return
		case <-pause.C:
		}
		pause.Reset(watchMinInterval)
		st, err := n.ReplicationState(db)
		if err != nil {
			return
		}
		if reflect.DeepEqual(st, last) {
			continue
		}
		last = st
		select {
		case ch <- st:
		default:
			select { // replace the state the receiver has not taken
			case <-ch:
			default:
			}
			ch <- st // ch is empty and this is its only sender
		}
	}
}

// replicationChanged wakes the replication watchers.
func (n *Node) replicationChanged() {
	if np := n.net.Load(); np != nil {
		np.changed.notify()
	}
}

// notifier wakes every waiter at each notify. The zero value is ready.
type notifier struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

// wait returns a channel closed at the next notify.
func (nt *notifier) wait() <-chan struct{} {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.ch == nil {
		nt.ch = make(chan struct{})
	}
	return nt.ch
}

// notify wakes the waiters; it never blocks and costs nothing without any.
func (nt *notifier) notify() {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.ch != nil {
		close(nt.ch)
		nt.ch = nil
	}
}
