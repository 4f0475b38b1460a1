package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/couch"
)

// couchSyncCmd makes the daemon replicate a database once with a
// CouchDB-protocol server (POST /couch/_replicate, docs/couch-protocol.md,
// "barrel as a client").
func (a *app) couchSyncCmd() *cobra.Command {
	var pull, push, both bool
	var docIDs []string
	var user, passwordFile, selector string
	var live bool
	cmd := &cobra.Command{
		Use:   "couch-sync DB URL [--pull|--push|--both] [--live] [--doc-ids a,b | --selector JSON] [--user U --password-file F]",
		Short: "Replicate DB once with a CouchDB-protocol server's database at URL (CouchDB, PouchDB Server, another barrel's /couch/DB); prints what moved as one JSON line",
		Long: `couch-sync makes the daemon replicate its database DB once with the remote
database URL, as CouchDB's replicator does: --pull (the default) copies the
remote's changes into DB (created if missing), --push copies DB's changes to
the remote (whose database is created if missing), --both pulls then pushes.
Checkpoints are kept on both sides (_local/ documents), so a repeated sync
reads only what changed since. The password of --user is read from
--password-file, else from the environment variable BARREL_COUCH_PASSWORD.
It exits non-zero when the sync fails or a document could not be written
(the printed line's errors say why). --selector takes a Mango selector
(e.g. '{"type":"note"}') and replicates only the documents it matches.
--live starts a continuous replication in the daemon (CouchDB's
"continuous": true), prints its id, and stops it when interrupted (Ctrl-C);
a replication that must survive restarts belongs in the configuration's
connectors.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n := btoi(pull) + btoi(push) + btoi(both); n > 1 {
				return usageErr("--pull, --push and --both contradict each other")
			} else if n == 0 {
				pull = true
			}
			db, remote := args[0], args[1]
			if !strings.HasPrefix(remote, "http://") && !strings.HasPrefix(remote, "https://") {
				return usageErr("URL %q: want the remote database's http:// or https:// URL", remote)
			}
			password := os.Getenv("BARREL_COUCH_PASSWORD")
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageErr("--password-file: %v", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			endpoint := any(remote)
			if user != "" || password != "" {
				endpoint = map[string]any{"url": remote,
					"auth": map[string]any{"basic": map[string]string{"username": user, "password": password}}}
			}
			if len(docIDs) > 0 && selector != "" {
				return usageErr("--doc-ids and --selector contradict each other")
			}
			if selector != "" && !json.Valid([]byte(selector)) {
				return usageErr("--selector %q: not JSON", selector)
			}
			request := func(source, target any) map[string]any {
				body := map[string]any{"source": source, "target": target}
				if len(docIDs) > 0 {
					body["doc_ids"] = docIDs
				}
				if selector != "" {
					body["selector"] = json.RawMessage(selector)
				}
				return body
			}
			if live {
				var reqs []map[string]any
				if pull || both {
					reqs = append(reqs, request(endpoint, db))
				}
				if push || both {
					reqs = append(reqs, request(db, endpoint))
				}
				return a.liveSync(cmd.Context(), c, reqs)
			}
			run := func(source, target any) (*couch.ReplicationStats, error) {
				body := request(source, target)
				var st couch.ReplicationStats
				if err := c.do(cmd.Context(), http.MethodPost, "/couch/_replicate", body, &st); err != nil {
					return nil, err
				}
				return &st, nil
			}
			var out couch.SyncStats
			if pull || both {
				if out.Pull, err = run(endpoint, db); err != nil {
					return err
				}
			}
			if push || both {
				if out.Push, err = run(db, endpoint); err != nil {
					return err
				}
			}
			if err := printLine(a.stdout, out); err != nil {
				return err
			}
			failed := 0
			for _, s := range []*couch.ReplicationStats{out.Pull, out.Push} {
				if s != nil {
					failed += s.Failures
				}
			}
			if failed > 0 {
				return &exitError{code: exitFailed, err: fmt.Errorf("%d documents could not be replicated", failed)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&pull, "pull", false, "copy the remote's changes into DB (the default)")
	f.BoolVar(&push, "push", false, "copy DB's changes to the remote")
	f.BoolVar(&both, "both", false, "pull, then push")
	f.StringSliceVar(&docIDs, "doc-ids", nil, "replicate only these documents (comma-separated)")
	f.StringVar(&user, "user", "", "user name for the remote (HTTP Basic)")
	f.StringVar(&passwordFile, "password-file", "", "file holding the remote's password (default: env BARREL_COUCH_PASSWORD)")
	f.StringVar(&selector, "selector", "", "replicate only the documents this Mango selector matches (JSON)")
	f.BoolVar(&live, "live", false, "replicate continuously until interrupted")
	return cmd
}

// liveSync starts continuous replications in the daemon, prints their
// ids, and cancels them when ctx ends (an interrupt).
func (a *app) liveSync(ctx context.Context, c *client, reqs []map[string]any) error {
	var started []map[string]any
	defer func() {
		// Cancelled with a context of its own: ctx is done by now.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, r := range started {
			r["cancel"] = true
			_ = c.do(cctx, http.MethodPost, "/couch/_replicate", r, nil)
		}
	}()
	for _, r := range reqs {
		r["continuous"] = true
		var res struct {
			LocalID string `json:"_local_id"`
		}
		if err := c.do(ctx, http.MethodPost, "/couch/_replicate", r, &res); err != nil {
			return err
		}
		started = append(started, r)
		if err := printLine(a.stdout, map[string]string{"live": res.LocalID}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
