package couch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// A Connector is a replication with a CouchDB-protocol server that the
// daemon keeps running (the connectors of its configuration): rounds of
// Sync, resumed from the checkpoints on both sides, so a restart of
// either end loses nothing and repeats little.
type Connector struct {
	Name       string // unique among connectors; shown in states and metrics
	DB         string // the local database (created by a pull when missing)
	URL        string // the remote database
	Pull, Push bool
	// Live: after each round, wait for the next change (the local feed
	// for a push, the remote's longpoll feed for a pull) and sync again.
	// Otherwise a round runs every Interval (0: once, at start).
	Live     bool
	Interval time.Duration
	Auth     Auth
	DocIDs   []string
	Selector json.RawMessage // a Mango selector: only the documents it matches
}

// ConnectorState is what a connector has done, for status and metrics.
type ConnectorState struct {
	Name        string    `json:"name"`
	DB          string    `json:"db"`
	URL         string    `json:"url"` // without credentials
	Direction   string    `json:"direction"`
	Live        bool      `json:"live"`
	State       string    `json:"state"` // starting, syncing, waiting, retrying, done, stopped
	Rounds      int64     `json:"rounds"`
	DocsPulled  int64     `json:"docs_pulled"`
	DocsPushed  int64     `json:"docs_pushed"`
	Failures    int64     `json:"doc_write_failures"`
	PullSeq     string    `json:"pull_seq,omitempty"` // the remote's seq pulled up to
	PushSeq     string    `json:"push_seq,omitempty"` // the local seq pushed up to
	LastSync    time.Time `json:"last_sync,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Bounds of a connector's retries after an error.
const (
	retryMin = time.Second
	retryMax = time.Minute
	// liveWait is the longest wait for a change between two live rounds
	// (the remote's longpoll timeout): a round runs at least this often.
	liveWait = 30 * time.Second
)

// connectors are the running connectors of a Server.
type connectors struct {
	mu     sync.Mutex
	states map[string]*ConnectorState
	stop   map[string]*run // the connectors running, by name
	base   context.Context // the first StartConnectors' context: the daemon's lifetime
	wg     sync.WaitGroup
}

// StartConnectors runs each connector on its own goroutine until ctx
// ends; WaitConnectors waits for them to stop. A connector's error is
// logged, shown in its state, and retried with backoff: it never stops
// the others or the daemon.
func (s *Server) StartConnectors(ctx context.Context, cs []Connector) error {
	seen := map[string]bool{}
	for _, c := range cs {
		switch {
		case c.Name == "":
			return fmt.Errorf("connector of %s: no name", c.DB)
		case seen[c.Name]:
			return fmt.Errorf("connector %s: the name is used twice", c.Name)
		case !c.Pull && !c.Push:
			return fmt.Errorf("connector %s: choose pull, push or both", c.Name)
		}
		if _, err := newRemote(c.URL, c.Auth, 0); err != nil {
			return fmt.Errorf("connector %s: %w", c.Name, err)
		}
		seen[c.Name] = true
	}
	s.conns.mu.Lock()
	if s.conns.base == nil {
		s.conns.base = ctx
	}
	s.conns.mu.Unlock()
	for _, c := range cs {
		if err := s.startConnector(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// startConnector runs c under ctx, unless a connector of its name runs.
func (s *Server) startConnector(ctx context.Context, c Connector) error {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	if s.conns.states == nil {
		s.conns.states, s.conns.stop = map[string]*ConnectorState{}, map[string]*run{}
	}
	if _, running := s.conns.stop[c.Name]; running {
		return fmt.Errorf("connector %s: %w", c.Name, errRunning)
	}
	cctx, cancel := context.WithCancel(ctx)
	me := &run{cancel: cancel}
	s.conns.stop[c.Name] = me
	s.conns.states[c.Name] = &ConnectorState{Name: c.Name, DB: c.DB, URL: redact(c.URL),
		Direction: direction(c), Live: c.Live, State: "starting"}
	s.conns.wg.Add(1)
	go func() {
		defer s.conns.wg.Done()
		defer func() {
			s.conns.mu.Lock()
			if s.conns.stop[c.Name] == me { // not a later run of the same name
				delete(s.conns.stop, c.Name)
			}
			s.conns.mu.Unlock()
			cancel()
		}()
		s.runConnector(cctx, c)
	}()
	return nil
}

// run is one running connector.
type run struct{ cancel context.CancelFunc }

// errRunning: a connector of that name runs already.
var errRunning = errors.New("running already")

// stopConnector cancels the connector name; false if none runs. It no
// longer counts as running from here, while its round winds down.
func (s *Server) stopConnector(name string) bool {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	r, ok := s.conns.stop[name]
	if ok {
		r.cancel()
		delete(s.conns.stop, name)
	}
	return ok
}

// WaitConnectors returns once every connector started has stopped.
func (s *Server) WaitConnectors() { s.conns.wg.Wait() }

// Connectors returns the states of the connectors of database db ("":
// all), by name.
func (s *Server) Connectors(db string) []ConnectorState {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	var out []ConnectorState
	for _, st := range s.conns.states {
		if db == "" || st.DB == db {
			out = append(out, *st)
		}
	}
	slices.SortFunc(out, func(a, b ConnectorState) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

func direction(c Connector) string {
	switch {
	case c.Pull && c.Push:
		return "both"
	case c.Pull:
		return "pull"
	}
	return "push"
}

func (s *Server) update(name string, f func(*ConnectorState)) {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	f(s.conns.states[name])
}

func (s *Server) runConnector(ctx context.Context, c Connector) {
	log := s.log.With("connector", c.Name, "db", c.DB, "remote", redact(c.URL))
	log.Info("couch connector started", "direction", direction(c), "live", c.Live)
	defer func() {
		s.update(c.Name, func(st *ConnectorState) { st.State = "stopped" })
		log.Info("couch connector stopped")
	}()
	backoff := retryMin
	for ctx.Err() == nil {
		s.update(c.Name, func(st *ConnectorState) { st.State = "syncing" })
		localSeq := uint64(0)
		if d, err := s.n.DB(c.DB); err == nil {
			if info, err := d.Info(ctx); err == nil {
				localSeq = info.UpdateSeq
			}
		}
		stats, err := s.Sync(ctx, c.DB, c.URL, SyncOptions{Pull: c.Pull, Push: c.Push, DocIDs: c.DocIDs, Selector: c.Selector, Auth: c.Auth})
		s.record(c, stats, err)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("couch connector round failed; retrying", "in", backoff, "err", err)
			s.update(c.Name, func(st *ConnectorState) { st.State = "retrying" })
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
		switch {
		case c.Live:
			s.update(c.Name, func(st *ConnectorState) { st.State = "waiting" })
			s.waitForChange(ctx, c, stats, localSeq)
		case c.Interval > 0:
			s.update(c.Name, func(st *ConnectorState) { st.State = "waiting" })
			if !sleep(ctx, c.Interval) {
				return
			}
		default:
			s.update(c.Name, func(st *ConnectorState) { st.State = "done" })
			<-ctx.Done()
			return
		}
	}
}

// record adds a round's outcome to the connector's state and metrics.
func (s *Server) record(c Connector, stats SyncStats, err error) {
	s.update(c.Name, func(st *ConnectorState) {
		st.Rounds++
		if p := stats.Pull; p != nil {
			st.DocsPulled += int64(p.DocsWritten)
			st.Failures += int64(p.Failures)
			st.PullSeq = p.LastSeq
			s.m.connector.WithLabelValues(c.Name, "pull").Add(float64(p.DocsWritten))
		}
		if p := stats.Push; p != nil {
			st.DocsPushed += int64(p.DocsWritten)
			st.Failures += int64(p.Failures)
			st.PushSeq = p.LastSeq
			s.m.connector.WithLabelValues(c.Name, "push").Add(float64(p.DocsWritten))
		}
		if err != nil {
			st.LastError, st.LastErrorAt = err.Error(), time.Now().UTC()
			s.m.connectorErrors.WithLabelValues(c.Name).Inc()
			return
		}
		st.LastSync, st.LastError = time.Now().UTC(), ""
	})
}

// waitForChange returns once a live connector has something to sync: a
// local change after localSeq (push), a remote change after the seq
// pulled (pull), or liveWait passed.
func (s *Server) waitForChange(ctx context.Context, c Connector, stats SyncStats, localSeq uint64) {
	wctx, cancel := context.WithTimeout(ctx, liveWait)
	defer cancel()
	done := make(chan struct{}, 2)
	if c.Push {
		go func() {
			if d, err := s.n.DB(c.DB); err == nil {
				_ = d.WaitChanges(wctx, localSeq)
			}
			done <- struct{}{}
		}()
	}
	if c.Pull && stats.Pull != nil {
		go func() {
			s.longpoll(wctx, c, stats.Pull.LastSeq)
			done <- struct{}{}
		}()
	}
	select {
	case <-done:
	case <-wctx.Done():
	}
}

// longpoll waits on the remote's feed for a change after since.
func (s *Server) longpoll(ctx context.Context, c Connector, since string) {
	rm, err := newRemote(c.URL, c.Auth, liveWait+10*time.Second)
	if err != nil {
		return
	}
	q := url.Values{"feed": {"longpoll"}, "since": {since}, "limit": {"1"},
		"timeout": {fmt.Sprint(liveWait.Milliseconds())}, "heartbeat": {"10000"}}
	if since == "" {
		q.Set("since", "0")
	}
	var page remoteChanges
	err = rm.do(ctx, http.MethodGet, "_changes", q, nil, &page)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// An error is the next round's to report; do not spin on it.
		sleep(ctx, retryMin)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
