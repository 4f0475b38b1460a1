package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/barrel-db/barrel/datastore"
)

// metrics are the node's collectors, registered on the node's registry.
type metrics struct {
	writes    *prometheus.CounterVec // by db, result
	overloads *prometheus.CounterVec // by db
	rejected  *prometheus.CounterVec // by db, reason
	commit    prometheus.Histogram
	groupSize prometheus.Histogram

	compactions *prometheus.CounterVec // by db
	folded      *prometheus.CounterVec // by db
	tombstones  *prometheus.CounterVec // by db
	reclaimed   *prometheus.CounterVec // by db
}

func newMetrics(reg prometheus.Registerer, store *datastore.Store) (*metrics, error) {
	m := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_node_writes_total",
			Help: "Document writes handled by the writer loops, by database and result.",
		}, []string{"db", "result"}),
		overloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_node_overload_total",
			Help: "Write requests refused at once because the database's write queue was full.",
		}, []string{"db"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_node_rejected_changes_total",
			Help: "Received changes refused by access control or signature checks, by database and reason.",
		}, []string{"db", "reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "barrel_node_commit_seconds",
			Help:    "Time to write and sync one group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "barrel_node_group_changes",
			Help:    "Changes written by one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_compactions_total",
			Help: "History compactions run, by database.",
		}, []string{"db"}),
		folded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_compaction_folded_revisions_total",
			Help: "Revisions folded into base states by compaction, by database.",
		}, []string{"db"}),
		tombstones: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_compaction_tombstones_purged_total",
			Help: "Tombstones of deleted documents removed by compaction, by database.",
		}, []string{"db"}),
		reclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "barrel_compaction_reclaimed_bytes_total",
			Help: "Estimated bytes on disk returned by compaction, by database.",
		}, []string{"db"}),
	}
	// The store's troubles are read from it when scraped.
	corruption := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "barrel_store_corruption_total",
		Help: "Damaged blocks or files the store reported since the node opened (each read of a damaged block counts). Recovery: re-sync the database from a peer.",
	}, func() float64 { return float64(store.Health().Corruptions) })
	noSpace := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "barrel_store_no_space",
		Help: "1 when the last write was refused because the disk is full (or under the store's free-space reserve), else 0.",
	}, func() float64 {
		if store.Health().NoSpace {
			return 1
		}
		return 0
	})
	for _, c := range []prometheus.Collector{m.writes, m.overloads, m.rejected, m.commit, m.groupSize,
		m.compactions, m.folded, m.tombstones, m.reclaimed, corruption, noSpace} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// lagCollector reports, per database, the largest replication lag over the
// peers it syncs with: feed entries announced beyond our checkpoint. It is
// computed when scraped, from the replicator's status.
type lagCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func newLagCollector(n *Node) *lagCollector {
	return &lagCollector{n: n, desc: prometheus.NewDesc("barrel_sync_lag_changes",
		"Largest number of feed entries a peer announced beyond this node's checkpoint of it, per database.",
		[]string{"db"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	np := c.n.net.Load()
	if np == nil {
		return
	}
	worst := map[string]uint64{}
	for _, s := range np.repl.Status() {
		if l := np.lag(s.Peer, s.DB, s.Checkpoint); l >= worst[s.DB] {
			worst[s.DB] = l
		}
	}
	for db, l := range worst {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(l), db)
	}
}

// syncCollector reports replication per database and connected peer, and
// the attachments in flight per database, computed when scraped from the
// same status as ReplicationState. Peer ids are labels here, against the
// rule that labels are never peer ids, because the point is to tell peers
// apart; the cardinality stays bounded: only connected peers have series
// (a peer that disconnects drops out at the next scrape), at most
// maxPeerSeries (database, peer) pairs, and the libp2p connection manager
// bounds the connected peers.
type syncCollector struct {
	n                                          *Node
	lag, pulling, synced, lastSynced           *prometheus.Desc
	done, expected, rate, remaining            *prometheus.Desc
	blobsWanted, blobsFetching, blobsWantedLen *prometheus.Desc
}

// maxPeerSeries bounds the (database, peer) pairs syncCollector reports.
const maxPeerSeries = 4096

func newSyncCollector(n *Node) *syncCollector {
	dp := []string{"db", "peer"}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &syncCollector{n: n,
		lag:        d("barrel_sync_lag_entries", "Feed entries a connected peer announced beyond this node's checkpoint of it.", dp),
		pulling:    d("barrel_sync_pulling", "1 while a pull of the database from the peer runs, else 0.", dp),
		synced:     d("barrel_sync_synced_once", "1 when a pull from the peer succeeded since the node started, else 0.", dp),
		lastSynced: d("barrel_sync_last_synced_timestamp_seconds", "End of the last successful pull from the peer, Unix seconds (absent before the first).", dp),
		done:       d("barrel_sync_progress_docs", "Feed entries the running pull got through so far.", dp),
		expected:   d("barrel_sync_expected_docs", "Feed entries the running pull has to get through in all (from the peer's announcement; 0 unknown).", dp),
		rate:       d("barrel_sync_progress_docs_per_second", "Feed entries per second of the running pull over the last 10 s.", dp),
		remaining:  d("barrel_sync_remaining_seconds", "Estimated seconds left of the running pull (0 unknown).", dp),
		blobsWanted: d("barrel_sync_blobs_wanted", "Attachment blobs replicated documents reference that this node still lacks.",
			[]string{"db"}),
		blobsFetching:  d("barrel_sync_blobs_fetching", "Wanted attachment blobs being transferred now.", []string{"db"}),
		blobsWantedLen: d("barrel_sync_blobs_wanted_bytes", "Total length of the wanted attachment blobs.", []string{"db"}),
	}
}

func (c *syncCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lag, c.pulling, c.synced, c.lastSynced, c.done, c.expected, c.rate,
		c.remaining, c.blobsWanted, c.blobsFetching, c.blobsWantedLen} {
		ch <- d
	}
}

func (c *syncCollector) Collect(ch chan<- prometheus.Metric) {
	np := c.n.net.Load()
	if np == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	series := 0
	for _, s := range np.repl.Status() {
		st := np.replStatus(s)
		if !st.Connected || series >= maxPeerSeries {
			continue
		}
		series++
		gauge(c.lag, float64(st.Lag), st.DB, st.Peer)
		gauge(c.pulling, bit(st.Running), st.DB, st.Peer)
		gauge(c.synced, bit(st.SyncedOnce), st.DB, st.Peer)
		if st.SyncedOnce {
			gauge(c.lastSynced, float64(st.LastSynced.UnixNano())/1e9, st.DB, st.Peer)
		}
		if p := st.Progress; p != nil {
			gauge(c.done, float64(p.Done), st.DB, st.Peer)
			gauge(c.expected, float64(p.Expected), st.DB, st.Peer)
			gauge(c.rate, p.Rate, st.DB, st.Peer)
			gauge(c.remaining, p.Remaining.Seconds(), st.DB, st.Peer)
		}
	}
	if np.blobs == nil {
		return
	}
	for db, b := range np.blobs.statusByDB("") {
		gauge(c.blobsWanted, float64(b.Wanted), db)
		gauge(c.blobsFetching, float64(b.Fetching), db)
		gauge(c.blobsWantedLen, float64(b.WantedBytes), db)
	}
}
