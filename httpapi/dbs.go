package httpapi

import (
	"fmt"
	"net/http"
)

func (s *server) handleRoot(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, newInfo(s.n.Info()))
	return nil
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, okBody)
	return nil
}

func (s *server) handleListDBs(w http.ResponseWriter, r *http.Request) error {
	names, err := s.n.ListDBs(r.Context())
	if err != nil {
		return fmt.Errorf("list databases: %w", err)
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, names)
	return nil
}

func (s *server) handleCreateDB(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("db")
	if err := s.n.CreateDB(r.Context(), name); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	writeJSON(w, http.StatusCreated, okBody)
	return nil
}

func (s *server) handleDBInfo(w http.ResponseWriter, r *http.Request) error {
	d, err := s.db(r)
	if err != nil {
		return err
	}
	info, err := d.Info(r.Context())
	if err != nil {
		return fmt.Errorf("database info: %w", err)
	}
	writeJSON(w, http.StatusOK, newDBInfo(info))
	return nil
}

func (s *server) handleDropDB(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("db")
	if err := s.n.DropDB(r.Context(), name); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	writeJSON(w, http.StatusOK, okBody)
	return nil
}
