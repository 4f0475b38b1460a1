package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/httpapi"
)

func (a *app) idCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print the daemon's peer id, then its addresses one per line (--json: GET / as is)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var info httpapi.Info
			if err := c.do(cmd.Context(), http.MethodGet, "/", nil, &info); err != nil {
				return err
			}
			if asJSON {
				if info.Addrs == nil {
					info.Addrs = []string{}
				}
				return printJSON(a.stdout, info)
			}
			_, err = fmt.Fprintln(a.stdout, strings.Join(append([]string{info.PeerID}, info.Addrs...), "\n"))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"peer_id","version","addresses"}`)
	return cmd
}

func (a *app) peersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List connected peers, one per line: id, addresses, then per database its checkpoint and last sync",
		Long: "Each line is tab-separated: the peer id, its addresses joined by commas, and one field\n" +
			"per database replicated with it: DB checkpoint=N lag=N last_sync=TIME [running]\n" +
			"[pulled=DONE/EXPECTED] [error=...] (EXPECTED 0: not known yet).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var res struct {
				Peers []httpapi.PeerInfo `json:"peers"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, "/peers", nil, &res); err != nil {
				return err
			}
			if asJSON {
				return printJSON(a.stdout, res)
			}
			for _, p := range res.Peers {
				if err := writePeerLine(a.stdout, p); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON answer instead")
	return cmd
}

// writePeerLine writes one peer as a tab-separated line.
func writePeerLine(w io.Writer, p httpapi.PeerInfo) error {
	fields := []string{p.ID, strings.Join(p.Addrs, ",")}
	for _, d := range p.DBs {
		fields = append(fields, dbReplSummary(d))
	}
	_, err := fmt.Fprintln(w, strings.Join(fields, "\t"))
	return err
}

// dbReplSummary is one database's replication with a peer in one field.
func dbReplSummary(d httpapi.PeerReplStatus) string {
	s := fmt.Sprintf("%s checkpoint=%d lag=%d", d.DB, d.Checkpoint, d.Lag)
	if d.LastSync.IsZero() {
		s += " last_sync=never"
	} else {
		s += " last_sync=" + d.LastSync.UTC().Format(time.RFC3339)
	}
	if d.Running {
		s += " running"
	}
	if p := d.Progress; p != nil {
		s += fmt.Sprintf(" pulled=%d/%d", p.Done, p.Expected)
	}
	if d.LastError != "" {
		s += fmt.Sprintf(" error=%q", d.LastError)
	}
	return s
}

func (a *app) connectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "connect MULTIADDR",
		Short: "Dial a peer (a multiaddr ending in /p2p/PEERID); it is remembered and redialed. Prints its id",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var res struct {
				ID string `json:"id"`
			}
			if err := c.do(cmd.Context(), http.MethodPost, "/peers", map[string]string{"addr": args[0]}, &res); err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, res.ID)
			return err
		},
	}
}

// status is what the status command prints.
type status struct {
	httpapi.Info
	Network bool       `json:"network"` // false: the daemon runs with --no-network
	Peers   int        `json:"peers"`   // connected peers
	DBs     []dbStatus `json:"dbs"`
}

// dbStatus is one database in the status output.
type dbStatus struct {
	Name        string                   `json:"name"`
	DocCount    int64                    `json:"doc_count"`
	UpdateSeq   uint64                   `json:"update_seq"`
	Replication httpapi.ReplicationState `json:"replication"`
}

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print the node, its connected peers and every database with its sync state with each peer (--json: as JSON)",
		Long: "One line for the node, then per database a line and, indented, one line per peer it\n" +
			"replicated with since the daemon started (connected or not: synced how long ago, lag,\n" +
			"and while a pull runs its progress, rate and time left), its attachments in flight and\n" +
			"its CouchDB connectors. --json prints the same as one JSON object.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var st status
			if err := c.do(ctx, http.MethodGet, "/", nil, &st.Info); err != nil {
				return err
			}
			var peers struct {
				Peers []httpapi.PeerInfo `json:"peers"`
			}
			switch err := c.do(ctx, http.MethodGet, "/peers", nil, &peers); {
			case err == nil:
				st.Network, st.Peers = true, len(peers.Peers)
			case apiCode(err) != "no_network":
				return err
			}
			var names []string
			if err := c.do(ctx, http.MethodGet, "/dbs", nil, &names); err != nil {
				return err
			}
			st.DBs = []dbStatus{}
			for _, name := range names {
				var d dbStatus
				err := c.do(ctx, http.MethodGet, segs("dbs", name), nil, &d)
				if err == nil {
					err = c.do(ctx, http.MethodGet, segs("dbs", name, "replication"), nil, &d.Replication)
				}
				if isNotFound(err) {
					continue // dropped since the listing
				}
				if err != nil {
					return err
				}
				st.DBs = append(st.DBs, d)
			}
			if asJSON {
				return printJSON(a.stdout, st)
			}
			return writeStatus(a.stdout, st, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the state as JSON (node info, network, peers, databases with their replication)")
	return cmd
}

func (a *app) replicateCmd() *cobra.Command {
	var off, on, all bool
	var prefix string
	var where []string
	cmd := &cobra.Command{
		Use:   "replicate DB [--off|--on] [--id-prefix P] [--where 'PATH OP VALUE']... [--all]",
		Short: "Show or change a database's replication: off, on, or a partial view; prints the resulting state",
		Long: "Flags change only what they name; without flags the current state is printed.\n" +
			"--id-prefix and --where make the database a partial view that pulls only matching\n" +
			"documents from now on (documents already held stay). --where takes one quoted\n" +
			"argument 'PATH OP VALUE' (OP one of == != < <= > >= prefix exists; VALUE a JSON literal\n" +
			"if it parses as one, else a string), is repeatable, and replaces the previous conditions.\n" +
			"--all removes the prefix and the conditions.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			if off && on {
				return usageErr("--off and --on contradict each other")
			}
			if all && (f.Changed("id-prefix") || f.Changed("where")) {
				return usageErr("--all contradicts --id-prefix and --where")
			}
			conds := make([]httpapi.Cond, 0, len(where))
			for _, w := range where {
				c, err := parseCond(w)
				if err != nil {
					return err
				}
				conds = append(conds, c)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p := segs("dbs", args[0], "replication")
			var st httpapi.ReplicationState
			if err := c.do(cmd.Context(), http.MethodGet, p, nil, &st); err != nil {
				return err
			}
			if !off && !on && !all && !f.Changed("id-prefix") && !f.Changed("where") {
				return printJSON(a.stdout, st)
			}
			set := st.Setting
			switch {
			case off:
				set.Off = true
			case on:
				set.Off = false
			}
			if all {
				set.IDPrefix, set.Where = "", nil
			}
			if f.Changed("id-prefix") {
				set.IDPrefix = prefix
			}
			if f.Changed("where") {
				set.Where = conds
			}
			// A fresh value: decoding into st would keep the fields the
			// answer omits (an emptied prefix or where).
			var now httpapi.ReplicationState
			if err := c.do(cmd.Context(), http.MethodPut, p, set, &now); err != nil {
				return err
			}
			return printJSON(a.stdout, now)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&off, "off", false, "stop replicating the database")
	f.BoolVar(&on, "on", false, "replicate the database again")
	f.BoolVar(&all, "all", false, "replicate every document: drop the id prefix and the conditions")
	f.StringVar(&prefix, "id-prefix", "", "partial view: only documents whose id starts with P")
	f.StringArrayVar(&where, "where", nil, "partial view: only documents matching 'PATH OP VALUE' (repeatable, all must match)")
	return cmd
}

// parseCond reads 'PATH OP VALUE' (no VALUE for exists; VALUE may hold
// spaces). A PATH without a leading slash gets one, as in query.
func parseCond(s string) (httpapi.Cond, error) {
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return httpapi.Cond{}, usageErr("--where %q: want 'PATH OP VALUE' or 'PATH exists'", s)
	}
	if err := checkOp(fields[1], len(fields) > 2); err != nil {
		return httpapi.Cond{}, usageErr("--where %q: %v (the form is 'PATH OP VALUE', or 'PATH exists')", s, err)
	}
	c := httpapi.Cond{Path: fields[0], Op: fields[1]}
	if !strings.HasPrefix(c.Path, "/") {
		c.Path = "/" + c.Path
	}
	if len(fields) > 2 {
		// The value is everything after OP, spaces included.
		rest := strings.TrimSpace(s)
		rest = strings.TrimSpace(strings.TrimPrefix(rest, fields[0]))
		rest = strings.TrimSpace(strings.TrimPrefix(rest, fields[1]))
		c.Value = parseLiteral(rest)
	}
	return c, nil
}
