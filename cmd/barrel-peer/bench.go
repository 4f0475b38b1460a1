package main

import (
	"github.com/spf13/cobra"

	"github.com/barrel-db/barrel/internal/bench"
)

// benchCmd wires the bench command to internal/bench, which owns the
// workloads, their flags and their output lines.
func (a *app) benchCmd() *cobra.Command {
	c := bench.NewConfig()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure write, query and memory workloads on a fresh node in a temporary data dir",
		Long:  bench.Help,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			return bench.Run(cmd.Context(), c, a.stdout, a.stderr)
		},
	}
	c.AddFlags(cmd.Flags())
	return cmd
}
