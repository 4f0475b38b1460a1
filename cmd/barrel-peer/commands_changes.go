package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) changesCmd() *cobra.Command {
	var since uint64
	var limit int
	var follow bool
	cmd := &cobra.Command{
		Use:   "changes DB",
		Short: "Print the changes feed, one JSON line per change",
		Long:  "Without --follow, prints one page of changes after --since. With --follow, streams every change as it happens until interrupted.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p := segs("dbs", args[0], "changes") + "?since=" + strconv.FormatUint(since, 10)
			if limit > 0 {
				p += "&limit=" + strconv.Itoa(limit)
			}
			if !follow {
				var page struct {
					Results []map[string]any `json:"results"`
				}
				if err := c.do(cmd.Context(), http.MethodGet, p, nil, &page); err != nil {
					return err
				}
				for _, ch := range page.Results {
					if err := printLine(a.stdout, ch); err != nil {
						return err
					}
				}
				return nil
			}
			return a.followChanges(cmd, c, p+"&feed=sse")
		},
	}
	cmd.Flags().Uint64Var(&since, "since", 0, "print changes after this sequence number")
	cmd.Flags().IntVar(&limit, "limit", 0, "most changes per page (default: the server's)")
	cmd.Flags().BoolVar(&follow, "follow", false, "stream changes as they happen (Server-Sent Events)")
	return cmd
}

// maxEventBytes bounds one line of the event stream.
const maxEventBytes = 1 << 20

// followChanges prints the data of every event of the SSE stream at p
// until the context ends (nil) or the stream breaks (error).
func (a *app) followChanges(cmd *cobra.Command, c *client, p string) error {
	ctx := cmd.Context()
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventBytes)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // id lines, heartbeats, blank separators
		}
		if _, err := fmt.Fprintln(a.stdout, data); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read changes stream: %w", err)
	}
	return errors.New("the server closed the changes stream")
}
