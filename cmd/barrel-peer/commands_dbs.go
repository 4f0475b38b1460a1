package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

func (a *app) dbsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dbs",
		Short: "List databases, one per line (--json: a JSON array)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var names []string
			if err := c.do(cmd.Context(), http.MethodGet, "/dbs", nil, &names); err != nil {
				return err
			}
			if asJSON {
				if names == nil {
					names = []string{}
				}
				return printJSON(a.stdout, names)
			}
			for _, n := range names {
				if _, err := fmt.Fprintln(a.stdout, n); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (a *app) createDBCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "create-db DB",
		Short: "Create a database",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return c.do(cmd.Context(), http.MethodPut, segs("dbs", args[0]), nil, nil)
		},
	}
}

func (a *app) dropDBCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "drop-db DB",
		Short: "Delete a database and all its documents",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return c.do(cmd.Context(), http.MethodDelete, segs("dbs", args[0]), nil, nil)
		},
	}
}
