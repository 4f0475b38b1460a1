package main

import (
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// compactCmd runs a history compaction of a database now. Flags override
// the daemon's configured retention for this run only.
func (a *app) compactCmd() *cobra.Command {
	var keepRevs int
	var keepFor, tombsFor time.Duration
	cmd := &cobra.Command{
		Use:   "compact DB",
		Short: "Fold old history into base states and drop old tombstones now; prints what it did as JSON",
		Long: `Compact runs a history compaction of DB now (docs/design.md, Compaction).
Without flags it uses the daemon's retention (the retention: section of its
config). Each flag replaces one setting for this run only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if keepRevs < 0 || keepFor < 0 || tombsFor < 0 {
				return usageErr("--keep-revisions, --keep-for and --tombstones-for must not be negative")
			}
			body := map[string]any{}
			f := cmd.Flags()
			if f.Changed("keep-revisions") {
				body["keep_revisions"] = keepRevs
			}
			if f.Changed("keep-for") {
				body["keep_for"] = keepFor.String()
			}
			if f.Changed("tombstones-for") {
				body["tombstones_for"] = tombsFor.String()
			}
			var in any // no body: the daemon's retention
			if len(body) > 0 {
				in = body
			}
			var res map[string]any
			if err := c.do(cmd.Context(), http.MethodPost, segs("dbs", args[0], "_compact"), in, &res); err != nil {
				return err
			}
			return printJSON(a.stdout, res)
		},
	}
	cmd.Flags().IntVar(&keepRevs, "keep-revisions", 0, "newest revisions kept per document (default: the daemon's retention)")
	cmd.Flags().DurationVar(&keepFor, "keep-for", 0, "history younger than this is kept, e.g. 720h (default: the daemon's retention)")
	cmd.Flags().DurationVar(&tombsFor, "tombstones-for", 0, "tombstones younger than this are kept; 0: --keep-for (default: the daemon's retention)")
	return cmd
}

// purgeCmd removes documents and their whole history from the daemon.
func (a *app) purgeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "purge DB ID...",
		Short: "Remove documents with all their history from this peer only (they are refused if a peer offers them again); prints the result as JSON",
		Long: `Purge removes documents and all their history from this peer, for data
that must be gone. Purges do not travel to other peers: run it on every peer
that holds the documents. Once purged, their changes are refused if a peer
offers them again.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := c.do(cmd.Context(), http.MethodPost, segs("dbs", args[0], "_purge"), map[string]any{"ids": args[1:]}, &res); err != nil {
				return err
			}
			return printJSON(a.stdout, res)
		},
	}
}

// historyCmd prints what a document's history keeps.
func (a *app) historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history DB ID",
		Short: "Print a document's kept revisions, newest first, and the base older ones were folded into (compacted: true), as JSON",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var res struct {
				History []map[string]any `json:"history"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, segs("dbs", args[0], "docs", args[1], "_history"), nil, &res); err != nil {
				return err
			}
			return printJSON(a.stdout, res.History)
		},
	}
}
