package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/node"
)

// versionLine is what `barrel-peer version` and `barrel-peer --version`
// print: node.BuildVersion (the version GET / and the libp2p agent report
// too), then the platform and the Go release.
func versionLine() string {
	return fmt.Sprintf("barrel-peer %s %s/%s %s\n", node.BuildVersion(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of barrel-peer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(a.stdout, versionLine())
			return err
		},
	}
}
