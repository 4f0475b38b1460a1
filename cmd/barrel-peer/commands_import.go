package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Import batching: at most importBatchDocs documents and about
// importBatchBytes of JSON per bulk request, well under the server's
// default 8 MiB body limit.
const (
	importBatchDocs  = 1000
	importBatchBytes = 4 << 20
	maxLineBytes     = 8 << 20
)

func (a *app) importCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import DB FILE.ndjson",
		Short: `Import documents from a file of JSON objects, one per line, each with an "_id"`,
		Long: "The whole file is checked first: a line that is not a JSON object with a string \"_id\"\n" +
			"stops the import before anything is written, naming the line. Documents are then\n" +
			"written in bulk batches of 1000; per-document failures are counted and reported.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.importFile(cmd.Context(), c, args[0], args[1])
		},
	}
}

// scanLines calls fn with every non-blank line of r and its 1-based number.
func scanLines(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

// checkLine verifies one import line: a JSON object with a string _id.
func checkLine(line []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if obj == nil {
		return fmt.Errorf("bad JSON: not an object")
	}
	var id string
	if raw, ok := obj["_id"]; !ok || json.Unmarshal(raw, &id) != nil || id == "" {
		return fmt.Errorf(`missing or non-string "_id"`)
	}
	return nil
}

func (a *app) importFile(ctx context.Context, c *client, db, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open import file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat import file: %w", err)
	}

	// Pass 1: validate, so bad input changes nothing.
	total := 0
	if err := scanLines(f, func(n int, line []byte) error {
		if err := checkLine(line); err != nil {
			return fmt.Errorf("%s line %d: %w", name, n, err)
		}
		total++
		return nil
	}); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind import file: %w", err)
	}

	// Pass 2: send in batches.
	var bar *progressbar.ProgressBar
	if fd, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		bar = progressbar.NewOptions64(st.Size(),
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionClearOnFinish())
	}
	var ok, failed int
	var batch bytes.Buffer
	docs := 0
	flush := func() error {
		if docs == 0 {
			return nil
		}
		batch.WriteString(`]}`)
		var res struct {
			Results []struct {
				ID     string `json:"id"`
				Error  string `json:"error"`
				Reason string `json:"reason"`
			} `json:"results"`
		}
		if err := c.do(ctx, http.MethodPost, segs("dbs", db, "bulk"), batch.Bytes(), &res); err != nil {
			return fmt.Errorf("import batch after %d documents: %w", ok+failed, err)
		}
		for _, r := range res.Results {
			if r.Error != "" {
				failed++
				fmt.Fprintf(a.stderr, "barrel-peer: %s: %s\n", r.ID, r.Reason)
			} else {
				ok++
			}
		}
		batch.Reset()
		docs = 0
		return nil
	}
	err = scanLines(f, func(n int, line []byte) error {
		if docs == 0 {
			batch.WriteString(`{"docs":[`)
		} else {
			batch.WriteByte(',')
		}
		batch.Write(line)
		docs++
		if bar != nil {
			_ = bar.Add(len(line) + 1)
		}
		if docs >= importBatchDocs || batch.Len() >= importBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "imported %d of %d documents into %s, %d failed\n", ok, total, db, failed)
	if failed > 0 {
		return fmt.Errorf("%d documents failed to import", failed)
	}
	return nil
}

func (a *app) exportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export DB",
		Short: "Print every live document as one JSON line with its _id (NDJSON, importable)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.export(cmd.Context(), c, args[0])
		},
	}
}

// export pages through the document list and prints each document without
// its _rev, so the output imports into another database as is.
func (a *app) export(ctx context.Context, c *client, db string) error {
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	after := ""
	for {
		p := segs("dbs", db, "docs") + "?limit=1000"
		if after != "" {
			p += "&start_after=" + url.QueryEscape(after)
		}
		var page struct {
			Docs []struct {
				ID string `json:"id"`
			} `json:"docs"`
			Next string `json:"next"`
		}
		if err := c.do(ctx, http.MethodGet, p, nil, &page); err != nil {
			return err
		}
		for _, d := range page.Docs {
			var doc map[string]any
			err := c.do(ctx, http.MethodGet, segs("dbs", db, "docs", d.ID), nil, &doc)
			if isNotFound(err) {
				continue // deleted since it was listed
			}
			if err != nil {
				return err
			}
			delete(doc, "_rev")
			if err := printLine(w, doc); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return w.Flush()
		}
		after = page.Next
	}
}
