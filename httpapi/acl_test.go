package httpapi

import (
	"testing"
)

// TestACLRoutes: GET shows the default open ACL owned by the node, PUT
// replaces it, bad bodies are 400, and once the node gave ownership away
// PUT is 403 not_allowed and changes nothing.
func TestACLRoutes(t *testing.T) {
	srv, n := newNetServer(t)
	self := n.PeerID().String()
	const other = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
	runSteps(t, srv, []step{
		{"missing db", "GET", "/dbs/nope/_acl", "", 404, map[string]any{"error": "not_found"}},
		{"create db", "PUT", "/dbs/docs", "", 201, nil},
		{"default", "GET", "/dbs/docs/_acl", "", 200, map[string]any{"owner": self, "admins": []any{}, "readers": []any{"*"}, "writers": []any{"*"}}},
		{"set", "PUT", "/dbs/docs/_acl", `{"readers":"*","writers":["` + other + `"]}`, 200,
			map[string]any{"owner": self, "readers": []any{"*"}, "writers": []any{other}}},
		{"kept", "GET", "/dbs/docs/_acl", "", 200, map[string]any{"writers": []any{other}}},
		{"bad peer id", "PUT", "/dbs/docs/_acl", `{"writers":["nope"]}`, 400, map[string]any{"error": "bad_request"}},
		{"admins cannot be any", "PUT", "/dbs/docs/_acl", `{"admins":"*"}`, 400, map[string]any{"error": "bad_request"}},
		{"unknown field", "PUT", "/dbs/docs/_acl", `{"reader":"*"}`, 400, map[string]any{"error": "bad_request"}},
		{"not an object", "PUT", "/dbs/docs/_acl", `[]`, 400, nil},
		{"document API refuses _acl", "PUT", "/dbs/docs/docs/_acl", `{"owner":"` + other + `"}`, 400, map[string]any{"error": "bad_request"}},
		{"give away", "PUT", "/dbs/docs/_acl", `{"owner":"` + other + `","readers":"*","writers":"*"}`, 200, map[string]any{"owner": other}},
		{"no longer allowed", "PUT", "/dbs/docs/_acl", `{"owner":"` + self + `"}`, 403, map[string]any{"error": "not_allowed"}},
		{"unchanged", "GET", "/dbs/docs/_acl", "", 200, map[string]any{"owner": other}},
	})
}
