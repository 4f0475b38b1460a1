package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

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
		return fmt.Errorf("import file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import file: %w", err)
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
		// A busy daemon answers 503 at once rather than queue: wait and
		// send the batch again, as its Retry-After says.
		err := retryOverloaded(ctx, func() error {
			return c.do(ctx, http.MethodPost, segs("dbs", db, "bulk"), batch.Bytes(), &res)
		}, func(err error, wait time.Duration) {
			fmt.Fprintf(a.stderr, "barrel-peer: the daemon is busy (%v); sending the batch again in %v\n", err, wait)
		})
		if err != nil {
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
		Long: "The documents come from one snapshot of the database, taken when the export starts,\n" +
			"in one streamed request; writes made meanwhile are not in it. A document that\n" +
			"cannot be read is named on standard error and skipped, the others are exported,\n" +
			"and the exit code is 1. A progress bar is shown on a terminal.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.export(cmd.Context(), c, args[0], exportOptions{progress: true})
		},
	}
}

// maxExportLineBytes bounds one line of an export stream: a document is
// at most the server's body limit, far below this.
const maxExportLineBytes = 256 << 20

// exportOptions select what export streams and how.
type exportOptions struct {
	prefix   string // only ids starting with it
	rev      bool   // "_rev" in each line
	limit    int64  // stop after this many documents (0: all)
	progress bool   // a progress bar on a terminal
}

// export streams GET /dbs/{db}/_export to standard output: document lines
// as they come, control lines ({"_export_error"}, {"_export_end"}) read
// and reported, not printed, so the output imports as it is.
func (a *app) export(ctx context.Context, c *client, db string, o exportOptions) error {
	q := url.Values{}
	if o.prefix != "" {
		q.Set("prefix", o.prefix)
	}
	if o.rev {
		q.Set("rev", "true")
	}
	p := segs("dbs", db, "_export")
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var bar *progressbar.ProgressBar
	if fd, ok := a.stderr.(*os.File); ok && o.progress && term.IsTerminal(int(fd.Fd())) {
		total, err := strconv.ParseInt(resp.Header.Get("X-Barrel-Doc-Count"), 10, 64)
		if err != nil || total <= 0 {
			total = -1 // unknown: a spinner
		}
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription("exporting"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("docs"),
			progressbar.OptionClearOnFinish())
	}
	w := bufio.NewWriterSize(a.stdout, 64<<10)
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var end *exportEnd
	var docs int64
	var long []byte
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it, bounded.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxExportLineBytes {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			if len(long) > maxExportLineBytes {
				return fmt.Errorf("export of %s: a line longer than %d bytes after %d documents", db, maxExportLineBytes, docs)
			}
			line = long
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			switch {
			case bytes.HasPrefix(line, []byte(`{"_id":`)):
				if _, werr := w.Write(line); werr != nil {
					return werr
				}
				docs++
				if bar != nil {
					_ = bar.Add(1)
				}
				if o.limit > 0 && docs >= o.limit {
					return w.Flush() // enough: the rest of the stream is dropped
				}
			default:
				var ctl struct {
					Error *struct{ ID, Reason string } `json:"_export_error"`
					End   *exportEnd                   `json:"_export_end"`
				}
				if jerr := json.Unmarshal(line, &ctl); jerr != nil || (ctl.Error == nil && ctl.End == nil) {
					return fmt.Errorf("export of %s: unexpected line after %d documents: %.100q", db, docs, line)
				}
				if ctl.Error != nil {
					fmt.Fprintf(a.stderr, "barrel-peer: export: document %q cannot be read: %s\n", ctl.Error.ID, ctl.Error.Reason)
				}
				if ctl.End != nil {
					end = ctl.End
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("export of %s: read after %d documents: %w", db, docs, err)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err := w.Flush(); err != nil {
		return err
	}
	switch {
	case end == nil:
		return fmt.Errorf("export of %s: the stream ended early, after %d documents: the output is incomplete", db, docs)
	case end.Error != "":
		return fmt.Errorf("export of %s stopped after %d documents: %s", db, docs, end.Error)
	case end.Failed > 0:
		return fmt.Errorf("exported %d documents of %s; %d could not be read (named above)", docs, db, end.Failed)
	}
	return nil
}

// exportEnd is the last line of an export stream (httpapi's exportEnd).
type exportEnd struct {
	Docs   int64  `json:"docs"`
	Failed int64  `json:"failed"`
	Seq    uint64 `json:"seq"`
	Error  string `json:"error"`
}
