package main

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/httpapi"
)

func (a *app) aclCmd() *cobra.Command {
	var readers, writers, admins, owner string
	cmd := &cobra.Command{
		Use:   "acl DB",
		Short: "Print a database's access control list; with flags, change it first",
		Long: `Print a database's access control list (owner, admins, readers, writers,
revoked writers). Each flag given replaces that list: peer ids separated by
commas, "*" for every peer (readers and writers only), "" for nobody. Lists
not given are kept. Only the owner or an admin may change the list, and
only the owner may hand ownership on (--owner).`,
		Example: `  barrel-peer acl notes
  barrel-peer acl notes --readers '*' --writers 12D3KooWA...,12D3KooWB...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			path := segs("dbs", args[0], "_acl")
			var cur httpapi.ACL
			if err := c.do(cmd.Context(), http.MethodGet, path, nil, &cur); err != nil {
				return err
			}
			f := cmd.Flags()
			if !f.Changed("readers") && !f.Changed("writers") && !f.Changed("admins") && !f.Changed("owner") {
				return printJSON(a.stdout, cur)
			}
			next := httpapi.ACL{Owner: cur.Owner, Admins: cur.Admins, Readers: cur.Readers, Writers: cur.Writers}
			if f.Changed("readers") {
				next.Readers = peerList(readers)
			}
			if f.Changed("writers") {
				next.Writers = peerList(writers)
			}
			if f.Changed("admins") {
				next.Admins = peerList(admins)
			}
			if f.Changed("owner") {
				next.Owner = owner
			}
			var out httpapi.ACL
			if err := c.do(cmd.Context(), http.MethodPut, path, next, &out); err != nil {
				return err
			}
			return printJSON(a.stdout, out)
		},
	}
	cmd.Flags().StringVar(&readers, "readers", "", `peers that may read: ids separated by commas, or "*"`)
	cmd.Flags().StringVar(&writers, "writers", "", `peers that may write: ids separated by commas, or "*"`)
	cmd.Flags().StringVar(&admins, "admins", "", "peers that may change the list: ids separated by commas")
	cmd.Flags().StringVar(&owner, "owner", "", "hand ownership to this peer (the owner only)")
	return cmd
}

// peerList splits a flag's comma-separated peer ids; "" is none.
func peerList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
