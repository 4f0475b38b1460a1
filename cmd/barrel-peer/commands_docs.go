package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// maxStdinBytes bounds a document read from standard input.
const maxStdinBytes = 64 << 20

// jsonArg returns the JSON text of a document argument, reading standard
// input when arg is "-" or absent. It must be a JSON object.
func (a *app) jsonArg(args []string, i int) (json.RawMessage, error) {
	var raw []byte
	if len(args) <= i || args[i] == "-" {
		b, err := io.ReadAll(io.LimitReader(a.stdin, maxStdinBytes))
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		raw = b
	} else {
		raw = []byte(args[i])
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, usageErr("document must be a JSON object")
	}
	return raw, nil
}

func (a *app) putCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "put DB ID [JSON|-]",
		Short: "Create or replace a document (JSON from the argument or standard input)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sendDoc(cmd, http.MethodPut, args)
		},
	}
}

// sendDoc sends the document JSON of args[2] (or standard input) with
// method to document args[1] of database args[0] and prints the answer.
func (a *app) sendDoc(cmd *cobra.Command, method string, args []string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	body, err := a.jsonArg(args, 2)
	if err != nil {
		return err
	}
	var res map[string]any
	if err := c.do(cmd.Context(), method, segs("dbs", args[0], "docs", args[1]), body, &res); err != nil {
		return err
	}
	return printJSON(a.stdout, res)
}

func (a *app) getCmd() *cobra.Command {
	var conflicts, revs bool
	cmd := &cobra.Command{
		Use:   "get DB ID [PATH]",
		Short: "Print a document, or the value at a JSON pointer PATH inside it",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p := segs("dbs", args[0], "docs", args[1])
			if len(args) == 3 {
				if path := strings.Trim(args[2], "/"); path != "" {
					p += segs(strings.Split(path, "/")...)
				}
			}
			q := url.Values{}
			if conflicts {
				q.Set("conflicts", "true")
			}
			if revs {
				q.Set("revs", "true")
			}
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			var v any
			if err := c.do(cmd.Context(), http.MethodGet, p, nil, &v); err != nil {
				return err
			}
			return printJSON(a.stdout, v)
		},
	}
	cmd.Flags().BoolVar(&conflicts, "conflicts", false, "include _conflicts")
	cmd.Flags().BoolVar(&revs, "revs", false, "include _revs, the revision history newest first")
	return cmd
}

func (a *app) patchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "patch DB ID JSON",
		Short: `Patch a document: a JSON merge patch, plus "_incr", "_add", "_remove" and "_rev"`,
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sendDoc(cmd, http.MethodPatch, args)
		},
	}
}

func (a *app) deleteCmd() *cobra.Command {
	var rev string
	cmd := &cobra.Command{
		Use:   "delete DB ID",
		Short: "Delete a document",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p := segs("dbs", args[0], "docs", args[1])
			if rev != "" {
				p += "?rev=" + url.QueryEscape(rev)
			}
			var res map[string]any
			if err := c.do(cmd.Context(), http.MethodDelete, p, nil, &res); err != nil {
				return err
			}
			return printJSON(a.stdout, res)
		},
	}
	cmd.Flags().StringVar(&rev, "rev", "", "base revision (the delete fails on an unknown revision)")
	return cmd
}

// queryOps are the operators of query and of replicate --where.
var queryOps = []string{"==", "!=", "<", "<=", ">", ">=", "prefix", "exists"}

// checkOp refuses an unknown operator, a value given to exists, and a
// missing value for the others, naming the forms (usage errors).
func checkOp(op string, hasValue bool) error {
	switch {
	case !slices.Contains(queryOps, op):
		return usageErr("unknown operator %q: want one of %s (there is no operator for documents without a path)", op, strings.Join(queryOps, " "))
	case op == "exists" && hasValue:
		return usageErr("exists takes no value: want 'PATH exists' (documents with a value at PATH); documents without PATH cannot be queried")
	case op != "exists" && !hasValue:
		return usageErr("%s needs a value: want 'PATH %s VALUE'", op, op)
	}
	return nil
}

func (a *app) queryCmd() *cobra.Command {
	var limit int
	var idsOnly, follow, count bool
	cmd := &cobra.Command{
		Use:   "query DB PATH OP [VALUE]",
		Short: "Print documents whose PATH compares to VALUE by OP (==, !=, <, <=, >, >=, prefix), or has a value (exists), one JSON line each",
		Long: "VALUE is read as a JSON literal when it parses as one (42, true, null, \"s\"), else as a string.\n" +
			"exists takes no VALUE; every other OP needs one.\n" +
			"All pages are fetched unless --limit is set.",
		Args: cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOp(args[2], len(args) == 4); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			path := args[1]
			if !strings.HasPrefix(path, "/") {
				path = "/" + path
			}
			cond := map[string]any{"path": path, "op": args[2]}
			if len(args) == 4 {
				cond["value"] = parseLiteral(args[3])
			}
			q := map[string]any{"where": []map[string]any{cond}}
			switch {
			case count && (follow || idsOnly || limit > 0):
				return usageErr("--count takes no --follow, --ids or --limit: it prints one number")
			case count:
				q["count"] = true
				var res struct {
					Count int64 `json:"count"`
				}
				if err := c.do(cmd.Context(), http.MethodPost, segs("dbs", args[0], "query"), q, &res); err != nil {
					return err
				}
				_, err := fmt.Fprintln(a.stdout, res.Count)
				return err
			case follow:
				if limit > 0 {
					return usageErr("--follow takes no --limit: it follows the whole result")
				}
				return a.followQuery(cmd, c, args[0], q, idsOnly)
			}
			if idsOnly {
				q["ids_only"] = true
			}
			printed := 0
			for {
				if limit > 0 {
					q["limit"] = min(limit-printed, 1000)
				}
				var page struct {
					Docs   []map[string]any `json:"docs"`
					IDs    []string         `json:"ids"`
					Cursor string           `json:"cursor"`
				}
				if err := c.do(cmd.Context(), http.MethodPost, segs("dbs", args[0], "query"), q, &page); err != nil {
					return err
				}
				for _, id := range page.IDs {
					if _, err := fmt.Fprintln(a.stdout, id); err != nil {
						return err
					}
					printed++
				}
				for _, d := range page.Docs {
					if err := printLine(a.stdout, d); err != nil {
						return err
					}
					printed++
				}
				if page.Cursor == "" || len(page.Docs)+len(page.IDs) == 0 || (limit > 0 && printed >= limit) {
					return nil
				}
				q["cursor"] = page.Cursor
			}
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most this many documents (0: all)")
	cmd.Flags().BoolVar(&idsOnly, "ids", false, "print only document ids (from the index alone for one ==; with --follow: the event type and the id)")
	cmd.Flags().BoolVar(&count, "count", false, "print only the number of matching documents (from the index alone for one ==)")
	cmd.Flags().BoolVar(&follow, "follow", false, "a live query: print the result, then one JSON line per event (added, changed, removed, current) until interrupted")
	return cmd
}
