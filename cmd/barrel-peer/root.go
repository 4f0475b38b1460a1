package main

import (
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/node"
)

// defaultAPI is the daemon address client commands use by default.
const defaultAPI = "http://127.0.0.1:7080"

// app is one invocation of the binary: its streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	api   string // base URL of the daemon's HTTP API
	token string // bearer token for the API, optional

	// started is set once cobra has accepted the command line and a
	// command begins to run; errors before that are usage errors.
	started bool
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "barrel-peer",
		Short:         "barrel: a local-first peer-to-peer document database",
		SilenceErrors: true,
		SilenceUsage:  true,
		// --version prints what the version command prints.
		Version: node.BuildVersion(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.started = true
			return checkEmptyArgs(cmd, args)
		},
	}
	api := os.Getenv("BARREL_API")
	if api == "" {
		api = defaultAPI
	}
	root.SetVersionTemplate(versionLine())
	root.PersistentFlags().StringVar(&a.api, "api", api, "HTTP API of the daemon for client commands (env BARREL_API)")
	root.PersistentFlags().StringVar(&a.token, "token", os.Getenv("BARREL_TOKEN"), "bearer token for the HTTP API (env BARREL_TOKEN)")
	root.AddCommand(
		a.runCmd(),
		a.versionCmd(),
		a.dbsCmd(), a.createDBCmd(), a.dropDBCmd(),
		a.putCmd(), a.getCmd(), a.patchCmd(), a.deleteCmd(),
		a.attachCmd(), a.fetchCmd(), a.compactBlobsCmd(),
		a.compactCmd(), a.purgeCmd(), a.historyCmd(),
		a.docsCmd(), a.queryCmd(), a.changesCmd(),
		a.importCmd(), a.exportCmd(),
		a.idCmd(), a.peersCmd(), a.connectCmd(), a.statusCmd(), a.replicateCmd(),
		a.couchSyncCmd(),
		a.aclCmd(),
		a.benchCmd(),
	)
	return root
}

// checkEmptyArgs refuses an empty database name, document id, attachment
// name, file or address argument (put places ”) as a usage error naming
// it. Sent on, an empty name or id changes the URL's shape
// (/dbs/places/docs/), which the daemon answers with "no such route" and a
// not-found exit code. An empty VALUE, JSON or PATH is left to the command:
// "" is a value a query may look for.
func checkEmptyArgs(cmd *cobra.Command, args []string) error {
	names := strings.Fields(cmd.Use)[1:]
	for i, arg := range args {
		if arg != "" || len(names) == 0 {
			continue
		}
		name := strings.Trim(names[min(i, len(names)-1)], "[]. ")
		switch {
		case name == "DB":
			return usageErr("the database name is empty")
		case name == "ID":
			return usageErr("the document id is empty")
		case name == "NAME":
			return usageErr("the attachment name is empty")
		case strings.HasPrefix(name, "FILE"), name == "MULTIADDR", name == "OP":
			return usageErr("argument %s is empty", name)
		}
	}
	return nil
}
