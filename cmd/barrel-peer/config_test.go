package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "barrel.yaml")
	if err := os.WriteFile(file, []byte("data_dir: /from/file\nhttp:\n  addr: 127.0.0.1:9999\n  token: tok\nwrite_queue: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("data_dri: /typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_DATA_HOME", "/xdg")
	tests := []struct {
		name    string
		file    string
		args    []string
		want    fileConfig
		wantErr string
	}{
		{"defaults", "", nil, fileConfig{DataDir: "/xdg/barrel", HTTP: httpConfig{Addr: "127.0.0.1:7080"}, Durability: "sync", LogLevel: "info"}, ""},
		{"file over defaults", file, nil, fileConfig{DataDir: "/from/file", HTTP: httpConfig{Addr: "127.0.0.1:9999", Token: "tok"}, Durability: "sync", WriteQueue: 7, LogLevel: "info"}, ""},
		{"flags over file", file, []string{"--data", "/flag", "--write-queue", "9", "--durability", "batch"}, fileConfig{DataDir: "/flag", HTTP: httpConfig{Addr: "127.0.0.1:9999", Token: "tok"}, Durability: "batch", WriteQueue: 9, LogLevel: "info"}, ""},
		{"unknown key", bad, nil, fileConfig{}, "data_dri"},
		{"missing file", filepath.Join(dir, "none.yaml"), nil, fileConfig{}, "none.yaml"},
		{"bad durability and level", "", []string{"--durability", "maybe", "--log-level", "loud"}, fileConfig{}, "durability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{}
			cmd := a.runCmd()
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := loadConfig(tt.file, cmd.Flags())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig("../../configs/barrel.yaml", pflag.NewFlagSet("x", pflag.ContinueOnError))
	if err != nil {
		t.Fatalf("configs/barrel.yaml: %v", err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:7080" || cfg.Durability != "sync" || cfg.HTTP.MaxBodyBytes != 8<<20 {
		t.Fatalf("got %+v", cfg)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7080": true, "localhost:1": true, "[::1]:80": true,
		":7080": false, "0.0.0.0:7080": false, "192.168.1.2:80": false, "nonsense": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q): got %v, want %v", addr, got, want)
		}
	}
}

func TestParseLiteral(t *testing.T) {
	for in, want := range map[string]string{"Germany": "Germany", "5": "5", "true": "true", `"s"`: "s", "5 6": "5 6"} {
		got := parseLiteral(in)
		if s, ok := got.(string); ok && s != want {
			t.Errorf("parseLiteral(%q): got %q, want %q", in, s, want)
		}
	}
	if _, ok := parseLiteral("5").(string); ok {
		t.Error("parseLiteral(5) is a string, want a number")
	}
}

func TestUsageExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"version"}, exitOK},
		{[]string{"nope"}, exitUsage},
		{[]string{"get", "onlydb"}, exitUsage},
		{[]string{"dbs", "--no-such-flag"}, exitUsage},
		{[]string{"--api", "ftp://x", "dbs"}, exitUsage},
		{[]string{"--api", "http://127.0.0.1:1", "dbs"}, exitFailed},
	}
	for _, tt := range tests {
		var out, errb strings.Builder
		if got := runMain(t.Context(), tt.args, strings.NewReader(""), &out, &errb); got != tt.code {
			t.Errorf("%v: got exit %d, want %d (stderr %q)", tt.args, got, tt.code, errb.String())
		}
	}
}
