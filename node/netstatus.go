package node

import (
	"context"
	"errors"
	"sync"

	"github.com/barrel-db/barrel/discovery"
)

// Component is the state of one network part of a node, as Info (and the
// status command) and GET /peers show it.
type Component struct {
	Name  string // gossip, sync, blobs, discovery, mdns, dht, announcements
	State string // running, off, failed, stopped
	Error string // why it failed
}

// Component states.
const (
	StateRunning = "running"
	StateOff     = "off"
	StateFailed  = "failed"
	StateStopped = "stopped"
)

// netGroup runs the network goroutines of a node. Unlike an errgroup, one
// part that fails does not stop the others: its error is logged at once
// (not only when the node stops) and reported by Components; the others
// keep running. Wait waits for every part.
type netGroup struct {
	n  *Node
	wg sync.WaitGroup

	mu struct { // guards parts
		sync.Mutex
		order []string
		parts map[string]*Component
	}
}

func newNetGroup(n *Node) *netGroup {
	g := &netGroup{n: n}
	g.mu.parts = map[string]*Component{}
	return g
}

// Go runs fn as the part name until it returns. An error it returns before
// ctx ended marks the part failed and is logged (Error: a part of the
// network stopped working and stays so until the node restarts).
func (g *netGroup) Go(ctx context.Context, name string, fn func(context.Context) error) {
	g.set(name, StateRunning, "")
	g.wg.Go(func() {
		err := fn(ctx)
		switch {
		// Logged before the state moves, so whoever sees the part failed
		// (status, a test) finds the line in the log already.
		case err != nil && ctx.Err() == nil:
			g.n.log.Error("network part stopped: the rest of the network keeps running; restart the node to retry", "component", name, "err", err)
			g.set(name, StateFailed, err.Error())
		case err != nil && !isCanceled(err):
			g.n.log.Warn("network part stopped with an error", "component", name, "err", err)
			g.set(name, StateFailed, err.Error())
		default:
			g.set(name, StateStopped, "")
		}
	})
}

func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }

func (g *netGroup) set(name, state, errText string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.mu.parts[name]
	if !ok {
		c = &Component{Name: name}
		g.mu.parts[name] = c
		g.mu.order = append(g.mu.order, name)
	}
	c.State, c.Error = state, errText
}

// Wait waits for every part to return.
func (g *netGroup) Wait() { g.wg.Wait() }

// components lists the parts in start order.
func (g *netGroup) components() []Component {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Component, 0, len(g.mu.order))
	for _, name := range g.mu.order {
		out = append(out, *g.mu.parts[name])
	}
	return out
}

// Components reports the state of every network part: the goroutines the
// node runs (gossip, sync, blobs, discovery, announcements) and the
// discovery mechanisms (mdns, dht). Nil without networking.
func (n *Node) Components() []Component {
	np := n.net.Load()
	if np == nil {
		return nil
	}
	out := np.group.components()
	for _, m := range np.disc.Mechanisms() {
		out = append(out, Component{Name: m.Name, State: mechState(m.State), Error: m.Error})
	}
	return out
}

func mechState(s string) string {
	switch s {
	case discovery.StateRunning:
		return StateRunning
	case discovery.StateOff:
		return StateOff
	case discovery.StateFailed:
		return StateFailed
	}
	return StateStopped
}
