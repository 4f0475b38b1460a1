package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestE2EAttachFetch(t *testing.T) {
	p := startPeer(t, t.TempDir())
	dir := t.TempDir()
	data := make([]byte, 3<<20+7)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(data)
	src := filepath.Join(dir, "photo.jpg")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, p.url, "", "create-db", "files"); r.code != 0 {
		t.Fatalf("create-db: exit %d %s", r.code, r.stderr)
	}
	r := cli(t, p.url, "", "attach", "files", "d1", src)
	if r.code != 0 || !strings.Contains(r.stdout, `"rev"`) {
		t.Fatalf("attach: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = cli(t, p.url, "", "attach", "--name", "copy", "--type", "application/x-test", "files", "d1", src)
	if r.code != 0 {
		t.Fatalf("attach --name: exit %d, stderr %q", r.code, r.stderr)
	}
	var doc struct {
		Atts map[string]struct {
			ContentType string `json:"content_type"`
			Length      int64  `json:"length"`
			Digest      string `json:"digest"`
		} `json:"_attachments"`
	}
	r = cli(t, p.url, "", "get", "files", "d1")
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("get: %v in %q", err, r.stdout)
	}
	if a := doc.Atts["photo.jpg"]; a.ContentType != "image/jpeg" || a.Length != int64(len(data)) {
		t.Fatalf("got photo.jpg %+v", a)
	}
	if a := doc.Atts["copy"]; a.ContentType != "application/x-test" || a.Digest != doc.Atts["photo.jpg"].Digest {
		t.Fatalf("got copy %+v", a)
	}

	out := filepath.Join(dir, "out.jpg")
	if r := cli(t, p.url, "", "fetch", "files", "d1", "photo.jpg", "-o", out); r.code != 0 {
		t.Fatalf("fetch -o: exit %d, stderr %q", r.code, r.stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetched file: %d bytes (%v), want %d identical bytes", len(got), err, len(data))
	}
	if r := cli(t, p.url, "", "fetch", "files", "d1", "copy"); r.code != 0 || r.stdout != string(data) {
		t.Fatalf("fetch to stdout: exit %d, %d bytes, stderr %q", r.code, len(r.stdout), r.stderr)
	}
	if r := cli(t, p.url, "", "fetch", "files", "d1", "absent", "-o", filepath.Join(dir, "none")); r.code != exitNotFound {
		t.Fatalf("fetch absent: exit %d, want %d", r.code, exitNotFound)
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); !os.IsNotExist(err) {
		t.Fatalf("a failed fetch left its output file: %v", err)
	}
	if r := cli(t, p.url, "", "compact-blobs", "files"); r.code != 0 || !strings.Contains(r.stdout, `"blobs": 0`) {
		t.Fatalf("compact-blobs with every blob referenced: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
