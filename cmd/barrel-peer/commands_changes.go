package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

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

// followQuery runs q as a live query and prints its events as JSON lines
// (with ids: "TYPE ID", the seq for current) until the context ends. A
// dropped stream, or one cut for reading too slowly, is resumed from the
// last current seq, so no change is missed.
func (a *app) followQuery(cmd *cobra.Command, c *client, db string, q map[string]any, ids bool) error {
	ctx := cmd.Context()
	q["live"] = true
	var since uint64
	for {
		if since > 0 {
			q["since"] = since
		}
		body, err := json.Marshal(q)
		if err != nil {
			return fmt.Errorf("encode query: %w", err)
		}
		resp, err := c.send(ctx, http.MethodPost, segs("dbs", db, "query"), bytes.NewReader(body))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		resume, err := a.printLive(resp.Body, ids, &since)
		resp.Body.Close()
		if ctx.Err() != nil {
			return nil
		}
		if !resume {
			return err
		}
		fmt.Fprintf(a.stderr, "live query: %v; resuming from seq %d\n", err, since)
		select { // A backoff, so a server that keeps cutting is not hammered.
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil
		}
	}
}

// printLive prints the events of one live-query stream, keeping since at
// the last resumable seq. resume says whether following again from since
// is the way on (the stream dropped, or the server cut a slow reader).
func (a *app) printLive(r io.Reader, ids bool, since *uint64) (resume bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxEventBytes)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e struct {
			Type   string         `json:"type"`
			Seq    uint64         `json:"seq"`
			ID     string         `json:"id"`
			Doc    map[string]any `json:"doc"`
			Error  string         `json:"error"`
			Reason string         `json:"reason"`
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return false, fmt.Errorf("live query event %q: %w", data, err)
		}
		switch e.Type {
		case "current":
			*since = e.Seq
		case "error":
			if e.Error == "lagging" {
				*since = e.Seq
				return true, errors.New(e.Reason)
			}
			return false, fmt.Errorf("live query ended: %s", e.Reason)
		}
		if ids {
			id := e.ID
			if e.Doc != nil {
				id, _ = e.Doc["_id"].(string)
			}
			if e.Type == "current" {
				id = strconv.FormatUint(e.Seq, 10)
			}
			_, err = fmt.Fprintln(a.stdout, e.Type, id)
		} else {
			_, err = fmt.Fprintln(a.stdout, data)
		}
		if err != nil {
			return false, err
		}
	}
	if err := sc.Err(); err != nil {
		return *since > 0, fmt.Errorf("read live query stream: %w", err)
	}
	return *since > 0, errors.New("the server closed the live query stream")
}
