package httpapi

import (
	"context"
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

func (s *server) handleReplicationState(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("db")
	st, err := s.n.ReplicationState(name)
	if err != nil {
		return fmt.Errorf("replication of %q: %w", name, err)
	}
	out := newReplicationState(st)
	if s.cfg.Connectors != nil {
		out.Connectors = s.cfg.Connectors(name)
	}
	writeJSON(w, http.StatusOK, out)
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
