package main

import (
	"io"
	"os"

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
		PersistentPreRun: func(*cobra.Command, []string) {
			a.started = true
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
		a.queryCmd(), a.changesCmd(),
		a.importCmd(), a.exportCmd(),
		a.idCmd(), a.peersCmd(), a.connectCmd(), a.statusCmd(), a.replicateCmd(),
		a.aclCmd(),
		a.benchCmd(),
	)
	return root
}
