package gossip

import (
	"context"
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Run publishes notified announcements (after Debounce) and re-announces
// every joined database each Heartbeat, and runs one reader per joined
// topic that feeds Announcements. It returns nil once ctx ends and every
// goroutine it started has stopped, or ErrRunning if another Run of g is
// running. Publish errors are logged, not returned: the heartbeat retries.
func (g *Gossip) Run(ctx context.Context) error {
	rs := &runState{ctx: ctx}
	g.mu.Lock()
	if g.mu.run != nil {
		g.mu.Unlock()
		return ErrRunning
	}
	g.mu.run = rs
	for _, j := range g.mu.topics {
		g.startReader(rs, j)
	}
	g.mu.Unlock()

	g.publishLoop(ctx)

	// No reader starts after this: Join sees run == nil.
	g.mu.Lock()
	g.mu.run = nil
	for _, j := range g.mu.topics {
		if j.stopReader != nil {
			j.stopReader()
			j.stopReader, j.readerDone = nil, nil
		}
	}
	g.mu.Unlock()
	rs.wg.Wait()
	return nil
}

// startReader starts j's reader under rs. g.mu must be held.
func (g *Gossip) startReader(rs *runState, j *joined) {
	ctx, cancel := context.WithCancel(rs.ctx)
	done := make(chan struct{})
	j.stopReader, j.readerDone = cancel, done
	sub := j.sub
	log := g.log.With("db", j.db)
	rs.wg.Go(func() {
		defer close(done)
		defer cancel()
		g.read(ctx, sub, log)
	})
}

// read delivers the announcements of sub until ctx ends or the
// subscription is closed. Our own messages are skipped.
func (g *Gossip) read(ctx context.Context, sub *pubsub.Subscription, log *slog.Logger) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Debug("gossip subscription ended", "err", err)
			}
			return
		}
		from := msg.GetFrom()
		if from == g.self {
			continue
		}
		a, ok := msg.ValidatorData.(Announcement)
		if !ok {
			// Every message passed our validator; this is a message
			// gossipsub delivered without it, which must not happen.
			continue
		}
		g.m.received.Inc()
		g.deliver(Received{From: from, Via: msg.ReceivedFrom, Ann: a})
	}
}

// publishLoop owns the debounce timer and the heartbeat ticker until ctx
// ends.
func (g *Gossip) publishLoop(ctx context.Context) {
	// Since Go 1.23 a stopped timer never delivers a stale tick, so Stop
	// needs no drain.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	armed := false
	var beat <-chan time.Time
	if g.cfg.Heartbeat > 0 {
		t := time.NewTicker(g.cfg.Heartbeat)
		defer t.Stop()
		beat = t.C
	}
	defer debounce.Stop()
	// A Notify after a quiet Debounce is published at once (a lone commit
	// is not delayed); the Notifies that follow within Debounce of that
	// publish wait for the window to end and go out as one, with the
	// latest values. So at most one publish per Debounce, and none later
	// than Debounce after its Notify.
	var last time.Time // the last debounced publish
	// Notifies before Run are pending already.
	g.kickLoop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.kick:
			if armed {
				break
			}
			if wait := g.cfg.Debounce - time.Since(last); wait > 0 {
				debounce.Reset(wait)
				armed = true
				break
			}
			g.publish(ctx, false)
			last = time.Now()
		case <-debounce.C:
			armed = false
			g.publish(ctx, false)
			last = time.Now()
		case <-beat:
			g.publish(ctx, true)
		}
	}
}

// kickLoop tells the publish loop that an announcement is pending.
func (g *Gossip) kickLoop() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// publish publishes every pending announcement, and with all every joined
// database's latest announcement.
func (g *Gossip) publish(ctx context.Context, all bool) {
	type item struct {
		db    string
		topic *pubsub.Topic
		a     Announcement
	}
	var items []item
	g.mu.Lock()
	for _, j := range g.mu.topics {
		if j.has && (j.pending || all) {
			items = append(items, item{j.db, j.topic, j.last})
			j.pending = false
		}
	}
	g.mu.Unlock()
	for _, it := range items {
		data, err := encode(it.a)
		if err != nil {
			g.log.Error("encode announcement", "db", it.db, "err", err)
			continue
		}
		if err := it.topic.Publish(ctx, data); err != nil {
			if ctx.Err() == nil {
				g.log.Warn("announcement not published", "db", it.db, "seq", it.a.Seq, "err", err)
			}
			continue
		}
		g.m.sent.Inc()
	}
}
