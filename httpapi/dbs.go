package httpapi

import (
	"fmt"
	"net/http"
)

func (s *server) handleRoot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.n.Info())
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, okBody)
}

func (s *server) handleListDBs(w http.ResponseWriter, r *http.Request) {
	names, err := s.n.ListDBs(r.Context())
	if err != nil {
		s.writeError(w, r, fmt.Errorf("list databases: %w", err))
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, names)
}

func (s *server) handleCreateDB(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("db")
	if err := s.n.CreateDB(r.Context(), name); err != nil {
		s.writeError(w, r, fmt.Errorf("create database %q: %w", name, err))
		return
	}
	writeJSON(w, http.StatusCreated, okBody)
}

func (s *server) handleDBInfo(w http.ResponseWriter, r *http.Request) {
	d, err := s.db(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := d.Info(r.Context())
	if err != nil {
		s.writeError(w, r, fmt.Errorf("database info: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *server) handleDropDB(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("db")
	if err := s.n.DropDB(r.Context(), name); err != nil {
		s.writeError(w, r, fmt.Errorf("drop database %q: %w", name, err))
		return
	}
	writeJSON(w, http.StatusOK, okBody)
}
