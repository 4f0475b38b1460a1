package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// progress returns a byte progress bar on the terminal a.stderr is, or nil
// when it is not one (a pipe, a file, a test). total -1 means unknown.
func (a *app) progress(total int64, what string) *progressbar.ProgressBar {
	fd, ok := a.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(fd.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription(what),
		progressbar.OptionClearOnFinish())
}

// withProgress counts what passes through r on bar (nil: no bar).
func withProgress(r io.Reader, bar *progressbar.ProgressBar) io.Reader {
	if bar == nil {
		return r
	}
	pr := progressbar.NewReader(r, bar)
	return &pr
}

func (a *app) attachCmd() *cobra.Command {
	var name, ctype, rev string
	cmd := &cobra.Command{
		Use:   "attach DB ID FILE",
		Short: "Attach FILE to a document (streamed; the document is created if needed)",
		Long: "Attach FILE to document ID of DB under --name (default: the file's base name)\n" +
			"with --type (default: from the file's extension). The content is streamed and\n" +
			"stored once per SHA-256 digest; a progress bar shows on a terminal.",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			f, err := os.Open(args[2])
			if err != nil {
				return fmt.Errorf("attachment file: %w", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return fmt.Errorf("attachment file: %w", err)
			}
			if name == "" {
				name = filepath.Base(args[2])
			}
			if ctype == "" {
				ctype = mime.TypeByExtension(filepath.Ext(args[2]))
			}
			if ctype == "" {
				ctype = "application/octet-stream"
			}
			bar := a.progress(st.Size(), "uploading")
			path := segs("dbs", args[0], "docs", args[1], "_attachments", name)
			if rev != "" {
				path += "?rev=" + url.QueryEscape(rev)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPut, c.base+path, withProgress(f, bar))
			if err != nil {
				return fmt.Errorf("build request: %w", err)
			}
			req.ContentLength = st.Size()
			req.Header.Set("Content-Type", ctype)
			resp, err := c.sendRequest(req)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var res map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			return printJSON(a.stdout, res)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "attachment name (default: the file's base name)")
	cmd.Flags().StringVar(&ctype, "type", "", "content type (default: from the file's extension)")
	cmd.Flags().StringVar(&rev, "rev", "", "base revision of the document")
	return cmd
}

func (a *app) fetchCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "fetch DB ID NAME",
		Short: "Download attachment NAME of a document (to -o FILE, or standard output)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet,
				c.base+segs("dbs", args[0], "docs", args[1], "_attachments", args[2]), nil)
			if err != nil {
				return fmt.Errorf("build request: %w", err)
			}
			resp, err := c.sendRequest(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			w := a.stdout
			var f *os.File
			if out != "" && out != "-" {
				// Write beside the target and rename, so a failed download
				// never leaves a truncated FILE.
				f, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
				if err != nil {
					return fmt.Errorf("output file: %w", err)
				}
				defer os.Remove(f.Name()) // after the rename: nothing left to remove
				defer f.Close()
				w = f
			}
			bar := a.progress(resp.ContentLength, "downloading")
			_, err = io.Copy(w, withProgress(resp.Body, bar))
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return fmt.Errorf("download attachment: %w", err)
			}
			if f == nil {
				return nil
			}
			if err := errors.Join(f.Sync(), f.Close()); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			if err := os.Rename(f.Name(), out); err != nil {
				return fmt.Errorf("download attachment: %w", err) // names both files
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of standard output")
	return cmd
}

func (a *app) compactBlobsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compact-blobs DB",
		Short: "Reclaim the attachment blobs no document of DB references",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var res map[string]any
			if err := c.do(cmd.Context(), http.MethodPost, segs("dbs", args[0], "blobs", "compact"), nil, &res); err != nil {
				return err
			}
			return printJSON(a.stdout, res)
		},
	}
}
