package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/barrel-db/barrel/node"
)

// The WebSocket endpoint, GET /dbs/{db}/_ws (docs/http-api.md,
// "WebSocket"): one connection carries several subscriptions, each a live
// query or a changes feed, named by the client. Messages are JSON text.
//
//	-> {"type":"subscribe","sub":"q1","query":{"where":[...]},"since":0}
//	-> {"type":"subscribe","sub":"c1","changes":{"since":0}}
//	-> {"type":"unsubscribe","sub":"q1"}
//	<- {"type":"subscribed","sub":"q1"}
//	<- {"type":"added"|"changed"|"removed"|"current","sub":"q1","seq":N,...}
//	<- {"type":"changes","sub":"c1","results":[...],"last_seq":N}
//	<- {"type":"error","sub":"q1","error":CODE,"reason":"...","seq":N}  (the subscription ended)
//	<- {"type":"unsubscribed","sub":"q1"}
//
// A message that is not JSON, not an object, of an unknown type or that
// lacks what its type needs gets {"type":"error",...} without "sub" and the
// connection is closed (1007 for bad JSON, 1003 for a binary message, 1008
// otherwise); a message over wsMaxMessageBytes is refused by the library
// with 1009. The server pings every SSEHeartbeat and closes a connection
// whose pong does not come within it.
const (
	wsMaxMessageBytes = 64 << 10
	wsMaxSubs         = 64
	wsMaxSubIDBytes   = 128
	wsWriteTimeout    = 10 * time.Second
	wsChangesPage     = 1000
)

// wsConns tracks the open WebSocket connections, which net/http stops
// tracking once they are hijacked, so that shutdown can close them.
type wsConns struct {
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

func (t *wsConns) add(c *websocket.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conns == nil {
		return false // Shut down.
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *wsConns) remove(c *websocket.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
}

// closeAll closes every connection with 1001 (going away) and refuses new ones.
func (t *wsConns) closeAll() {
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		_ = c.Close(websocket.StatusGoingAway, "the server is shutting down")
	}
}

// wsSession is one WebSocket connection's subscriptions.
// A browser's WebSocket cannot carry an Authorization header, so the
// endpoint takes the token as a subprotocol too: the client offers
// wsProtocol and wsTokenProtocol followed by the token in unpadded
// base64url (new WebSocket(url, ["barrel", "barrel.token." + b64])), and
// the server selects wsProtocol. The token then travels in a header, as
// a bearer token does, never in the URL (which logs and histories keep).
const (
	wsProtocol      = "barrel"
	wsTokenProtocol = "barrel.token."
)

// wsToken returns the token a WebSocket upgrade offers as a subprotocol.
func wsToken(r *http.Request) (string, bool) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return "", false
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), wsTokenProtocol)
			if !ok {
				continue
			}
			tok, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				return "", false
			}
			return string(tok), true
		}
	}
	return "", false
}

type wsSession struct {
	s    *server
	d    *node.DB
	c    *websocket.Conn
	ctx  context.Context // the connection's: ends when it closes
	wg   sync.WaitGroup  // the subscriptions' goroutines
	mu   sync.Mutex      // guards subs
	subs map[string]context.CancelFunc
}

func (s *server) handleWS(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	// Accept checks the Origin: a page of another origin cannot open a
	// connection with the user's credentials.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wsProtocol}})
	if err != nil {
		return nil // Accept has answered the failed handshake.
	}
	if !s.ws.add(c) {
		_ = c.Close(websocket.StatusGoingAway, "the server is shutting down")
		return nil
	}
	defer s.ws.remove(c)
	c.SetReadLimit(wsMaxMessageBytes)
	ctx, cancel := context.WithCancel(r.Context()) // The server's base context ends it on shutdown.
	defer cancel()
	ss := &wsSession{s: s, d: d, c: c, ctx: ctx, subs: map[string]context.CancelFunc{}}
	go ss.ping(cancel)
	code, reason := ss.read()
	cancel()
	ss.wg.Wait()
	_ = c.Close(code, reason)
	return nil
}

// ping checks the peer is there every SSEHeartbeat; a missing pong ends
// the connection.
func (ss *wsSession) ping(cancel context.CancelFunc) {
	t := time.NewTicker(ss.s.cfg.SSEHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-t.C:
		}
		ctx, done := context.WithTimeout(ss.ctx, ss.s.cfg.SSEHeartbeat)
		err := ss.c.Ping(ctx)
		done()
		if err != nil {
			cancel()
			_ = ss.c.CloseNow()
			return
		}
	}
}

// read serves the client's messages until the connection ends or a
// message breaks the protocol; it returns the close code and reason.
func (ss *wsSession) read() (websocket.StatusCode, string) {
	for {
		typ, data, err := ss.c.Read(ss.ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st != -1 {
				return websocket.StatusNormalClosure, "" // The client closed.
			}
			return websocket.StatusGoingAway, "" // Gone, too large (already closed with 1009) or shut down.
		}
		if typ != websocket.MessageText {
			return ss.refuse(websocket.StatusUnsupportedData, "binary messages are not accepted: send JSON text")
		}
		v, err := decodeBytes(data)
		if err != nil {
			return ss.refuse(websocket.StatusInvalidFramePayloadData, "bad JSON: "+err.Error())
		}
		m, ok := v.(map[string]any)
		if !ok {
			return ss.refuse(websocket.StatusPolicyViolation, "a message must be a JSON object")
		}
		if reason := ss.handle(m); reason != "" {
			return ss.refuse(websocket.StatusPolicyViolation, reason)
		}
	}
}

// refuse tells the client why its message ends the connection.
func (ss *wsSession) refuse(code websocket.StatusCode, reason string) (websocket.StatusCode, string) {
	_ = ss.send(liveEnd{Type: "error", Error: "bad_request", Reason: reason})
	if len(reason) > 120 { // A close frame's reason must fit in 123 bytes.
		reason = reason[:120]
	}
	return code, reason
}

// handle serves one message; a non-empty result is a protocol error that
// ends the connection.
func (ss *wsSession) handle(m map[string]any) string {
	typ, _ := m["type"].(string)
	id, _ := m["sub"].(string)
	switch typ {
	case "subscribe", "unsubscribe":
	case "":
		return "a message needs a string \"type\": subscribe or unsubscribe"
	default:
		return fmt.Sprintf("unknown message type %q: want subscribe or unsubscribe", typ)
	}
	if id == "" || len(id) > wsMaxSubIDBytes {
		return fmt.Sprintf("%s needs \"sub\": a string of 1 to %d bytes naming the subscription", typ, wsMaxSubIDBytes)
	}
	if typ == "unsubscribe" {
		ss.mu.Lock()
		stop, ok := ss.subs[id]
		ss.mu.Unlock()
		if ok {
			stop() // Its goroutine says unsubscribed when it has stopped.
		} else {
			_ = ss.send(liveEnd{Type: "error", Sub: id, Error: "not_found", Reason: "no subscription " + id})
		}
		return ""
	}
	// Only this goroutine adds subscriptions: what it checks here holds
	// until it adds this one.
	ss.mu.Lock()
	_, dup := ss.subs[id]
	n := len(ss.subs)
	ss.mu.Unlock()
	if dup {
		return fmt.Sprintf("subscription %q exists: unsubscribe it first or use another name", id)
	}
	if n >= wsMaxSubs {
		_ = ss.send(liveEnd{Type: "error", Sub: id, Error: "overloaded", Reason: fmt.Sprintf("a connection holds at most %d subscriptions", wsMaxSubs)})
		return ""
	}
	ctx, stop := context.WithCancel(ss.ctx)
	run, err := ss.subscription(ctx, id, m)
	if err != nil {
		stop()
		e := newLiveEnd(err)
		e.Sub = id
		_ = ss.send(e)
		return ""
	}
	ss.mu.Lock()
	ss.subs[id] = stop
	ss.mu.Unlock()
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		defer stop()
		_ = ss.send(map[string]string{"type": "subscribed", "sub": id})
		end := run(ctx)
		ss.mu.Lock()
		delete(ss.subs, id)
		ss.mu.Unlock()
		switch {
		case ss.ctx.Err() != nil: // The connection is ending.
		case ctx.Err() != nil || errors.Is(end, node.ErrUnsubscribed):
			_ = ss.send(map[string]string{"type": "unsubscribed", "sub": id})
		default:
			e := newLiveEnd(end)
			e.Sub = id
			_ = ss.send(e)
		}
	}()
	return ""
}

// subscription parses a subscribe message into the function that serves
// it until its context ends; the error is the subscription's refusal
// (bad query, unknown field), sent back without closing the connection.
func (ss *wsSession) subscription(ctx context.Context, id string, m map[string]any) (func(context.Context) error, error) {
	var since uint64
	for k, v := range m {
		switch k {
		case "type", "sub", "query", "changes":
		case "since":
			n, ok := v.(int64)
			if !ok || n < 0 {
				return nil, badRequest(fmt.Sprintf("since must be an integer in [0, %d]", int64(math.MaxInt64)))
			}
			since = uint64(n)
		default:
			return nil, badRequest(fmt.Sprintf("unknown field %q", k))
		}
	}
	qv, hasQuery := m["query"]
	cv, hasChanges := m["changes"]
	if hasQuery == hasChanges {
		return nil, badRequest("subscribe needs one of \"query\" (a live query) or \"changes\" (the changes feed)")
	}
	if hasChanges {
		if cm, ok := cv.(map[string]any); !ok || len(cm) != 0 {
			return nil, badRequest("changes must be an empty object ({}): the feed from since")
		}
		return func(ctx context.Context) error { return ss.changes(ctx, id, since) }, nil
	}
	qm, ok := qv.(map[string]any)
	if !ok {
		return nil, badRequest("query must be an object: {\"where\": [...], \"order_by\": ...}")
	}
	q, err := queryFromBody(qm)
	if err != nil {
		return nil, err
	}
	sub, err := ss.d.Subscribe(ctx, node.LiveQuery{Query: q, Since: since})
	if err != nil {
		return nil, fmt.Errorf("live query: %w", err)
	}
	return func(ctx context.Context) error {
		defer sub.Close()
		for {
			e, err := sub.Next(ctx)
			if err != nil {
				return err
			}
			ev := newLiveEvent(e)
			ev.Sub = id
			if err := ss.send(ev); err != nil {
				return err
			}
		}
	}, nil
}

// wsChanges is a page of the changes feed on a WebSocket.
type wsChanges struct {
	Type    string   `json:"type"` // "changes"
	Sub     string   `json:"sub"`
	Results []Change `json:"results"`
	LastSeq uint64   `json:"last_seq"`
}

// changes sends the feed after since, a page per message, then follows it.
func (ss *wsSession) changes(ctx context.Context, id string, since uint64) error {
	for {
		cs, _, err := ss.d.Changes(ctx, since, wsChangesPage)
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			page := newChangesPage(cs, since, 0)
			since = page.LastSeq
			if err := ss.send(wsChanges{Type: "changes", Sub: id, Results: page.Results, LastSeq: page.LastSeq}); err != nil {
				return err
			}
		}
		if len(cs) < wsChangesPage {
			if err := ss.d.WaitChanges(ctx, since); err != nil {
				return err
			}
		}
	}
}

// send writes one message; a client that does not take it within
// wsWriteTimeout loses the connection.
func (ss *wsSession) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("websocket message: %w", err)
	}
	ctx, cancel := context.WithTimeout(ss.ctx, wsWriteTimeout)
	defer cancel()
	if err := ss.c.Write(ctx, websocket.MessageText, data); err != nil {
		_ = ss.c.CloseNow()
		return err
	}
	return nil
}
