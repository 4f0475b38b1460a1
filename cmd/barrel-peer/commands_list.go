package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"
)

// docsPage is the answer of GET /dbs/{db}/docs.
type docsPage struct {
	Docs []struct {
		ID  string `json:"id"`
		Rev string `json:"rev"`
	} `json:"docs"`
	Next string `json:"next"`
}

func (a *app) docsCmd() *cobra.Command {
	var prefix string
	var limit int64
	var bodies, asJSON bool
	cmd := &cobra.Command{
		Use:   "docs DB",
		Short: "List documents in id order: id and revision, tab-separated, one per line (like CouchDB's _all_docs)",
		Long: "--bodies prints each whole document instead, as one JSON line with _id and _rev,\n" +
			"read from one snapshot of the database. --json prints {\"id\",\"rev\"} lines.\n" +
			"Deleted documents are not listed.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErr("--limit must not be negative")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			db := args[0]
			if bodies {
				return a.export(cmd.Context(), c, db, exportOptions{prefix: prefix, rev: true, limit: limit})
			}
			var printed int64
			after := ""
			for {
				page := int64(1000)
				if limit > 0 {
					page = min(page, limit-printed)
				}
				q := url.Values{"limit": {strconv.FormatInt(page, 10)}}
				if prefix != "" {
					q.Set("prefix", prefix)
				}
				if after != "" {
					q.Set("start_after", after)
				}
				var res docsPage
				if err := c.do(cmd.Context(), http.MethodGet, segs("dbs", db, "docs")+"?"+q.Encode(), nil, &res); err != nil {
					return err
				}
				for _, d := range res.Docs {
					var err error
					if asJSON {
						err = printLine(a.stdout, map[string]string{"id": d.ID, "rev": d.Rev})
					} else {
						_, err = fmt.Fprintf(a.stdout, "%s\t%s\n", d.ID, d.Rev)
					}
					if err != nil {
						return err
					}
					printed++
				}
				if res.Next == "" || len(res.Docs) == 0 || (limit > 0 && printed >= limit) {
					return nil
				}
				after = res.Next
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "", "only documents whose id starts with P")
	f.Int64Var(&limit, "limit", 0, "at most this many documents (0: all)")
	f.BoolVar(&bodies, "bodies", false, "print whole documents (JSON lines with _id and _rev)")
	f.BoolVar(&asJSON, "json", false, `print {"id","rev"} JSON lines`)
	cmd.MarkFlagsMutuallyExclusive("bodies", "json")
	return cmd
}
