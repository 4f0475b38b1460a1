package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/barrel-db/barrel/node"
)

// dialTimeout bounds POST /peers: a peer that does not answer by then is a
// failed dial (502), not a hung request.
const dialTimeout = 30 * time.Second

// peerList is the answer of GET /peers.
type peerList struct {
	Peers []PeerInfo `json:"peers"`
	// Components says which network parts run and which failed.
	Components []Component `json:"components"`
}

func (s *server) handlePeers(w http.ResponseWriter, r *http.Request) error {
	peers, err := s.n.Peers()
	if err != nil {
		return fmt.Errorf("list peers: %w", err)
	}
	list := peerList{Peers: newPeerInfos(peers), Components: newComponents(s.n.Components())}
	if list.Peers == nil {
		list.Peers = []PeerInfo{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// handleConnect dials {"addr": MULTIADDR}. A bad address is 400; an
// address that does not lead to the peer it names is 502 dial_failed.
func (s *server) handleConnect(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	addr, err := connectAddr(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout)
	defer cancel()
	id, err := s.n.Connect(ctx, addr)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
	return nil
}

// connectAddr parses {"addr": MULTIADDR}; unknown fields are rejected.
func connectAddr(m map[string]any) (string, error) {
	var addr string
	for k, v := range m {
		switch k {
		case "addr":
			a, ok := v.(string)
			if !ok {
				return "", badRequest("addr must be a string")
			}
			addr = a
		default:
			return "", badRequest(fmt.Sprintf("unknown field %q", k))
		}
	}
	if addr == "" {
		return "", badRequest("addr is required: a multiaddr with /p2p/PEERID")
	}
	return addr, nil
}

// handleReplicationState answers a database's replication state, or with
// feed=eventsource (or sse) streams it.
func (s *server) handleReplicationState(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("db")
	switch feed := r.URL.Query().Get("feed"); feed {
	case "eventsource", "sse":
		return s.streamReplication(w, r, name)
	case "", "normal":
	default:
		return badRequest("feed must be normal or eventsource")
	}
	st, err := s.n.ReplicationState(name)
	if err != nil {
		return fmt.Errorf("replication of %q: %w", name, err)
	}
	writeJSON(w, http.StatusOK, s.replicationState(name, st))
	return nil
}

// replicationState is the wire form of st, with the database's CouchDB
// connectors.
func (s *server) replicationState(name string, st node.ReplicationState) ReplicationState {
	out := newReplicationState(st)
	if s.cfg.Connectors != nil {
		out.Connectors = s.cfg.Connectors(name)
	}
	return out
}

// connectorRefresh is how often a replication stream rereads the CouchDB
// connectors' states, which have no watch of their own.
const connectorRefresh = time.Second

// streamReplication serves feed=eventsource: the replication state as an
// event (data: the JSON of GET /dbs/{db}/replication) at once, then each
// time it changes, coalesced by node.WatchReplication to at most four a
// second, and a comment line every SSEHeartbeat while nothing changes,
// until the client goes away, the server shuts down or the database is
// dropped. It returns an error only before anything is written (an unknown
// database).
func (s *server) streamReplication(w http.ResponseWriter, r *http.Request, name string) error {
	ctx := r.Context()
	states, err := s.n.WatchReplication(ctx, name)
	if err != nil {
		return fmt.Errorf("replication of %q: %w", name, err)
	}
	st := <-states // the current state is there at once
	// A failed flush here fails the first send too.
	rc, _ := startEventStream(w)
	heartbeat := time.NewTimer(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	refresh := time.NewTicker(connectorRefresh)
	defer refresh.Stop()
	var last []byte
	send := func() bool {
		data, _ := json.Marshal(s.replicationState(name, st)) // the state always marshals
		if bytes.Equal(data, last) {
			return true
		}
		last = data
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		heartbeat.Reset(s.cfg.SSEHeartbeat)
		return rc.Flush() == nil
	}
	for ok := send(); ok; {
		select {
		case <-ctx.Done():
			return nil
		case next, open := <-states:
			if !open {
				return nil // the database was dropped, or the node closed
			}
			st = next
			ok = send()
		case <-refresh.C:
			ok = send()
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			ok = rc.Flush() == nil
			heartbeat.Reset(s.cfg.SSEHeartbeat)
		}
	}
	return nil
}

// handleSetReplication replaces a database's replication setting with
// {"off": bool, "id_prefix": "...", "where": [{"path","op","value"}]}
// (absent fields are their zero value) and answers the new state.
func (s *server) handleSetReplication(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	rp, err := replicationFromBody(m)
	if err != nil {
		return err
	}
	name := r.PathValue("db")
	if err := s.n.SetReplication(r.Context(), name, rp); err != nil {
		return fmt.Errorf("set replication of %q: %w", name, err)
	}
	return s.handleReplicationState(w, r)
}

// replicationFromBody parses a replication setting; unknown fields are
// rejected so a typo does not silently replicate everything.
func replicationFromBody(m map[string]any) (node.Replication, error) {
	var rp node.Replication
	for k, v := range m {
		switch k {
		case "off":
			b, ok := v.(bool)
			if !ok {
				return rp, badRequest("off must be a boolean")
			}
			rp.Off = b
		case "id_prefix":
			s, ok := v.(string)
			if !ok {
				return rp, badRequest("id_prefix must be a string")
			}
			rp.IDPrefix = s
		case "where":
			conds, ok := v.([]any)
			if !ok && v != nil {
				return rp, badRequest("where must be an array")
			}
			for i, c := range conds {
				cond, err := condFromJSON(c)
				if err != nil {
					return rp, fmt.Errorf("where[%d]: %w", i, err)
				}
				rp.Where = append(rp.Where, cond)
			}
		default:
			return rp, badRequest(fmt.Sprintf("unknown field %q", k))
		}
	}
	return rp, nil
}
