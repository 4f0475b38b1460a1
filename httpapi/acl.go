package httpapi

import (
	"fmt"
	"net/http"

	"github.com/barrel-db/barrel/node"
)

// aclRoutes registers GET and PUT /dbs/{db}/_acl: a database's access
// control list (ACL). PUT by a node that is not the owner or an admin
// is 403 not_allowed.
func (s *server) aclRoutes() {
	s.route("GET /dbs/{db}/_acl", s.handleGetACL)
	s.route("PUT /dbs/{db}/_acl", s.handleSetACL)
}

func (s *server) handleGetACL(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("db")
	a, err := s.n.ACL(name)
	if err != nil {
		return fmt.Errorf("acl of %q: %w", name, err)
	}
	writeJSON(w, http.StatusOK, newACL(a))
	return nil
}

// handleSetACL takes {"owner"?, "admins"?, "readers"?, "writers"?}: lists of
// peer ids, readers and writers also "*". A missing list is empty (a
// missing owner keeps it); "revoked", as GET shows it, is accepted and
// ignored, so a GET body can be edited and PUT back. It answers the new ACL.
func (s *server) handleSetACL(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	in, err := parseACL(m)
	if err != nil {
		return err
	}
	name := r.PathValue("db")
	if err := s.n.SetACL(r.Context(), name, in); err != nil {
		return fmt.Errorf("set acl of %q: %w", name, err)
	}
	return s.handleGetACL(w, r)
}

// parseACL reads a PUT /_acl body; unknown fields are rejected.
func parseACL(m map[string]any) (node.ACL, error) {
	var a node.ACL
	list := func(k string, v any, allowAny bool) ([]string, error) {
		if s, ok := v.(string); ok && s == node.AnyPeer && allowAny {
			return []string{node.AnyPeer}, nil
		}
		arr, ok := v.([]any)
		if !ok && v != nil {
			return nil, badRequest(fmt.Sprintf("%s must be a list of peer ids%s", k, map[bool]string{true: ` or "*"`}[allowAny]))
		}
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, ok := e.(string)
			if !ok {
				return nil, badRequest(k + " must hold peer ids (strings)")
			}
			out = append(out, s)
		}
		return out, nil
	}
	var err error
	for k, v := range m {
		switch k {
		case "owner":
			s, ok := v.(string)
			if !ok {
				return a, badRequest("owner must be a peer id")
			}
			a.Owner = s
		case "admins":
			a.Admins, err = list(k, v, false)
		case "readers":
			a.Readers, err = list(k, v, true)
		case "writers":
			a.Writers, err = list(k, v, true)
		case "revoked":
		default:
			return a, badRequest(fmt.Sprintf("unknown field %q", k))
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}
