package httpapi

import (
	"net"
	"sync"
)

// LimitListener returns ln serving at most cfg.MaxConnections connections
// at once. Accept waits while that many are open, so the connections
// beyond the cap wait in the kernel's accept queue, holding none of our
// memory, instead of each costing a goroutine and its buffers; they are
// served in turn as others close. Closing the returned listener closes ln
// and ends a waiting Accept with net.ErrClosed.
//
// Why not answer 503 past the cap: the answer would have to be written
// before the request is read, and closing a socket with unread request
// bytes resets it, so the client would often see a reset instead of the
// answer; reading the request first costs what the cap saves.
func LimitListener(ln net.Listener, cfg Config) net.Listener {
	cfg = cfg.withDefaults()
	return &limitListener{Listener: ln, slots: make(chan struct{}, cfg.MaxConnections), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back when closed (once, however often Close is
// called).
type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
