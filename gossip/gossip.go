package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossip announces heads per database and receives other peers'
// announcements. Its methods are safe for concurrent use.
type Gossip struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	self peer.ID
	ps   *pubsub.PubSub
	out  chan Received
	kick chan struct{} // capacity 1: a Notify happened

	// mu guards the joined topics and the running Run, if any. It is never
	// held across a publish or a wait.
	mu struct {
		sync.Mutex
		topics map[string]*joined
		run    *runState // non-nil while Run runs
	}
}

// joined is one joined database's topic and announcement state, guarded by
// Gossip.mu.
type joined struct {
	db    string
	topic *pubsub.Topic
	sub   *pubsub.Subscription

	last    Announcement // latest value given to Notify
	has     bool         // last is set
	pending bool         // last is not yet published

	stopReader context.CancelFunc // non-nil while a reader runs
	readerDone chan struct{}
}

// runState is what Join needs to start a reader while Run runs.
type runState struct {
	ctx context.Context
	wg  sync.WaitGroup
}

// New creates the gossipsub router on h, with strict message signing, flood
// publishing of our own messages, the mesh cfg.Mesh describes (by default
// none: announcements go to connected peers only) and a message size limit
// derived from cfg.MaxMessageBytes. Create it before h connects to peers: a peer
// connected before the router exists may stay unknown to it. The router's own
// goroutines live until ctx ends: cancel it after Run returned and before
// closing h. Errors come from metric registration or from gossipsub.
func New(ctx context.Context, h host.Host, cfg Config) (*Gossip, error) {
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register gossip metrics: %w", err)
	}
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(cfg.MaxMessageBytes+envelopeBytes),
		// Our own announcements go to every subscribed peer, not only to
		// our mesh: by default there is no mesh (Mesh), and with Relay the
		// mesh is empty until gossipsub's first heartbeat after a peer
		// subscribes, and an announcement published then would reach
		// nobody. Announcements are small.
		pubsub.WithFloodPublish(cfg.Mesh.floodPublish()),
		pubsub.WithGossipSubParams(cfg.Mesh.params()),
		pubsub.WithLogger(cfg.Logger.With("component", "pubsub")),
	)
	if err != nil {
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	g := &Gossip{
		cfg:  cfg,
		log:  cfg.Logger,
		m:    m,
		self: h.ID(),
		ps:   ps,
		out:  make(chan Received, cfg.ReceiveQueue),
		kick: make(chan struct{}, 1),
	}
	g.mu.topics = make(map[string]*joined)
	return g, nil
}

// Join subscribes to db's topic and registers its validator. Joining a
// joined database does nothing. While Run runs, a reader for the topic
// starts at once; otherwise at Run's start. ErrInvalidDB for a bad name.
func (g *Gossip) Join(db string) error {
	if err := checkDB(db); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.mu.topics[db]; ok {
		return nil
	}
	name := Topic(db)
	if err := g.ps.RegisterTopicValidator(name, g.validator(db), pubsub.WithValidatorInline(true)); err != nil {
		return fmt.Errorf("join %s: register validator: %w", db, err)
	}
	t, err := g.ps.Join(name)
	if err != nil {
		_ = g.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("join %s: %w", db, err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		_ = t.Close()
		_ = g.ps.UnregisterTopicValidator(name)
		return fmt.Errorf("join %s: subscribe: %w", db, err)
	}
	j := &joined{db: db, topic: t, sub: sub}
	g.mu.topics[db] = j
	if g.mu.run != nil {
		g.startReader(g.mu.run, j)
	}
	return nil
}

// Leave stops the reader of db's topic, unsubscribes and forgets db's
// pending announcement. ErrNotJoined if db was not joined.
func (g *Gossip) Leave(db string) error {
	g.mu.Lock()
	j, ok := g.mu.topics[db]
	if ok {
		delete(g.mu.topics, db)
		if j.stopReader != nil {
			j.stopReader()
		}
	}
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("leave %s: %w", db, ErrNotJoined)
	}
	if j.readerDone != nil {
		<-j.readerDone
	}
	j.sub.Cancel()
	err := j.topic.Close()
	if uerr := g.ps.UnregisterTopicValidator(Topic(db)); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fmt.Errorf("leave %s: %w", db, err)
	}
	return nil
}

// Notify records a as db's latest announcement (a.DB is set to db). The
// publish loop publishes it at once after a quiet Debounce, else with the
// rest of its burst at the end of the window (Config.Debounce). It never
// blocks; a Notify for a database not joined, or with a
// digest that is not DigestBytes long, is dropped and logged.
func (g *Gossip) Notify(db string, a Announcement) {
	a.DB = db
	if err := check(a); err != nil {
		g.log.Warn("announcement not published", "db", db, "err", err)
		return
	}
	a.Digest = append([]byte(nil), a.Digest...)
	g.mu.Lock()
	j, ok := g.mu.topics[db]
	if ok {
		j.last, j.has, j.pending = a, true, true
	}
	g.mu.Unlock()
	if !ok {
		g.log.Debug("announcement for a database not joined", "db", db)
		return
	}
	g.kickLoop()
}

// Announcements delivers valid announcements from other peers. The channel
// is never closed; when it is full the oldest entry is dropped (counted by
// barrel_gossip_dropped_total), so a slow reader never blocks gossipsub.
func (g *Gossip) Announcements() <-chan Received { return g.out }

// Peers returns the connected peers subscribed to db's topic. The caller
// owns the slice.
func (g *Gossip) Peers(db string) []peer.ID { return g.ps.ListPeers(Topic(db)) }

// deliver queues r for Announcements without blocking: when the channel is
// full it drops the oldest entry, or r itself if others keep it full.
func (g *Gossip) deliver(r Received) {
	for range 2 {
		select {
		case g.out <- r:
			return
		default:
		}
		select {
		case <-g.out:
			g.m.dropped.Inc()
		default:
		}
	}
	g.m.dropped.Inc()
}
