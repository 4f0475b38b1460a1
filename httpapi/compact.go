package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/barrel-db/barrel/node"
)

// compactRoutes registers history compaction, purge and a document's kept
// history (docs/design.md, Compaction).
func (s *server) compactRoutes() {
	s.route("POST /dbs/{db}/_compact", s.handleCompact)
	s.route("POST /dbs/{db}/_purge", s.handlePurge)
	s.route("GET /dbs/{db}/docs/{id}/_history", s.handleHistory)
}

// handleCompact runs a compaction now and answers its Compaction.
// The body is optional: {"keep_revisions": N, "keep_for": "720h",
// "tombstones_for": "24h"}, each field replacing the node's configured
// retention for this run; no body compacts with the configured retention.
func (s *server) handleCompact(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("read body: %w: %w", errReadBody, err)
	}
	var ret *node.Retention
	if len(bytes.TrimSpace(raw)) > 0 {
		v, err := decodeBytes(raw)
		if err != nil {
			return err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return badJSON("body must be a JSON object")
		}
		rt, err := parseRetention(d.Retention(), m)
		if err != nil {
			return err
		}
		ret = &rt
	}
	st, err := d.Compact(r.Context(), ret)
	if err != nil {
		return fmt.Errorf("compact %q: %w", d.Name(), err)
	}
	writeJSON(w, http.StatusOK, newCompaction(st))
	return nil
}

// parseRetention applies a _compact body over base; unknown fields, wrong
// types and negative values are refused.
func parseRetention(base node.Retention, m map[string]any) (node.Retention, error) {
	r := base
	dur := func(k string, v any) (time.Duration, error) {
		str, ok := v.(string)
		if !ok {
			return 0, badRequest(k + ` must be a duration such as "720h" or "30m"`)
		}
		d, err := time.ParseDuration(str)
		if err != nil || d < 0 {
			return 0, badRequest(fmt.Sprintf("%s %q: want a duration >= 0 such as \"720h\"", k, str))
		}
		return d, nil
	}
	var err error
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch k {
		case "keep_revisions":
			n, ok := v.(int64)
			if !ok || n < 0 || n > math.MaxInt32 {
				return r, badRequest("keep_revisions must be an integer >= 0")
			}
			r.KeepRevisions = int(n)
		case "keep_for":
			r.KeepFor, err = dur(k, v)
		case "tombstones_for":
			r.TombstonesFor, err = dur(k, v)
		default:
			return r, badRequest(fmt.Sprintf("unknown field %q: want keep_revisions, keep_for or tombstones_for", k))
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// handlePurge takes {"ids": [...]} and answers the PurgeResult: the
// documents removed with all their history on this node, and the ids it
// did not hold.
func (s *server) handlePurge(w http.ResponseWriter, r *http.Request) error {
	m, err := decodeObject(r.Body)
	if err != nil {
		return err
	}
	ids, err := parsePurge(m)
	if err != nil {
		return err
	}
	d, err := s.db(r)
	if err != nil {
		return err
	}
	res, err := d.Purge(r.Context(), ids)
	if err != nil {
		return fmt.Errorf("purge %q: %w", d.Name(), err)
	}
	writeJSON(w, http.StatusOK, newPurgeResult(res))
	return nil
}

// parsePurge reads a _purge body: {"ids": [strings]}, nothing else.
func parsePurge(m map[string]any) ([]string, error) {
	for k := range m {
		if k != "ids" {
			return nil, badRequest(fmt.Sprintf("unknown field %q: want ids", k))
		}
	}
	arr, ok := m["ids"].([]any)
	if !ok {
		return nil, badRequest("ids must be a list of document ids")
	}
	ids := make([]string, len(arr))
	for i, v := range arr {
		if ids[i], ok = v.(string); !ok {
			return nil, badRequest("ids must hold document ids (strings)")
		}
	}
	return ids, nil
}

// handleHistory answers what a document's history keeps: {"id", "history":
// [Revision]}, newest first, the folded base last.
func (s *server) handleHistory(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	d, err := s.db(r)
	if err != nil {
		return err
	}
	h, err := d.History(r.Context(), id)
	if err != nil {
		return fmt.Errorf("history of %q: %w", id, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "history": newRevisions(h)})
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
