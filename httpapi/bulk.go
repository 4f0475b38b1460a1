package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/barrel-db/barrel/node"
)

// bulkResult is one document's outcome in a bulk answer: id and rev on
// success, error and reason on failure.
type bulkResult struct {
	ID     string `json:"id"`
	Rev    string `json:"rev,omitempty"`
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// bulkRequest parses {"docs":[...], "atomic": bool}. Each doc needs a
// string "_id"; "_rev" is its base revision, "_deleted": true makes it a
// delete; other reserved fields are rejected. A malformed entry rejects the
// whole request, so nothing is written.
func bulkRequest(m map[string]any) ([]node.DocOp, bool, error) {
	var atomic bool
	var ops []node.DocOp
	for k, v := range m {
		switch k {
		case "atomic":
			b, ok := v.(bool)
			if !ok {
				return nil, false, badRequest("atomic must be a boolean")
			}
			atomic = b
		case "docs":
			docs, ok := v.([]any)
			if !ok {
				return nil, false, badRequest("docs must be an array")
			}
			ops = make([]node.DocOp, 0, len(docs))
			for i, d := range docs {
				op, err := bulkDoc(d)
				if err != nil {
					return nil, false, fmt.Errorf("docs[%d]: %w", i, err)
				}
				ops = append(ops, op)
			}
		default:
			return nil, false, badRequest(fmt.Sprintf("unknown field %q", k))
		}
	}
	if ops == nil {
		return nil, false, badRequest("docs is required")
	}
	return ops, atomic, nil
}

func bulkDoc(v any) (node.DocOp, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return node.DocOp{}, badRequest("a document must be an object")
	}
	op := node.DocOp{Body: make(map[string]any, len(m))}
	hasID := false
	for k, v := range m {
		switch {
		case k == "_id":
			s, ok := v.(string)
			if !ok {
				return node.DocOp{}, badRequest("_id must be a string")
			}
			op.ID, hasID = s, true
		case k == "_rev":
			s, ok := v.(string)
			if !ok {
				return node.DocOp{}, badRequest("_rev must be a string")
			}
			op.Rev = s
		case k == "_deleted":
			b, ok := v.(bool)
			if !ok {
				return node.DocOp{}, badRequest("_deleted must be a boolean")
			}
			op.Delete = b
		case strings.HasPrefix(k, "_"):
			return node.DocOp{}, badRequest(fmt.Sprintf("field %q is reserved", k))
		default:
			op.Body[k] = v
		}
	}
	if !hasID {
		return node.DocOp{}, badRequest("_id is required")
	}
	if op.Delete {
		op.Body = nil
	}
	return op, nil
}

// bulkResults renders the node's per-document outcomes, mapping each error
// through errorStatus.
func bulkResults(rs []node.BulkResult) []bulkResult {
	out := make([]bulkResult, len(rs))
	for i, r := range rs {
		out[i] = bulkResult{ID: r.ID, Rev: r.Rev}
		if r.Error != nil {
			_, code, reason, _ := errorStatus(r.Error)
			out[i] = bulkResult{ID: r.ID, Error: code, Reason: reason}
		}
	}
	return out
}

func (s *server) handleBulk(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	ops, atomic, err := bulkRequest(m)
	if err != nil {
		return err
	}
	if err := chargeOf(r.Body).add(int64(len(ops)) * costPerBulkDoc); err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	rs, err := d.Bulk(r.Context(), ops, atomic)
	results := bulkResults(rs)
	if err != nil {
		return &bulkError{err: fmt.Errorf("bulk of %d docs: %w", len(ops), err), results: results}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
	return nil
}
