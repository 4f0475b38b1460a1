package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "barrel.yaml")
	if err := os.WriteFile(file, []byte("data_dir: /from/file\nhttp:\n  addr: 127.0.0.1:9999\n  token: tok\nwrite_queue: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p2pFile := filepath.Join(dir, "p2p.yaml")
	if err := os.WriteFile(p2pFile, []byte("p2p:\n  listen: [/ip4/127.0.0.1/tcp/4101]\n  bootstrap:\n    - /ip4/10.0.0.1/tcp/4001/p2p/12D3KooWx\n  no_mdns: true\n  anti_entropy: 2s\n  heartbeat: 1m30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badDur := filepath.Join(dir, "baddur.yaml")
	if err := os.WriteFile(badDur, []byte("p2p:\n  heartbeat: often\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	retFile := filepath.Join(dir, "retention.yaml")
	if err := os.WriteFile(retFile, []byte("retention:\n  keep_revisions: 3\n  interval: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRet := filepath.Join(dir, "badret.yaml")
	if err := os.WriteFile(badRet, []byte("retention:\n  keep_for: -1h\n"), 0o600); err != nil {
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
		{"p2p from file", p2pFile, nil, fileConfig{DataDir: "/xdg/barrel", HTTP: httpConfig{Addr: "127.0.0.1:7080"}, Durability: "sync", LogLevel: "info",
			P2P: p2pConfig{Listen: []string{"/ip4/127.0.0.1/tcp/4101"}, Bootstrap: []string{"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWx"}, NoMDNS: true, AntiEntropy: 2 * time.Second, Heartbeat: 90 * time.Second}}, ""},
		{"p2p flags over file", p2pFile, []string{"--listen", "/ip4/0.0.0.0/tcp/1", "--listen", "/ip4/0.0.0.0/udp/1/quic-v1", "--no-dht", "--heartbeat", "500ms", "--allow-private-addrs", "--nat-portmap", "--hole-punching", "--relay-client"},
			fileConfig{DataDir: "/xdg/barrel", HTTP: httpConfig{Addr: "127.0.0.1:7080"}, Durability: "sync", LogLevel: "info",
				P2P: p2pConfig{Listen: []string{"/ip4/0.0.0.0/tcp/1", "/ip4/0.0.0.0/udp/1/quic-v1"}, Bootstrap: []string{"/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWx"}, NoMDNS: true, NoDHT: true,
					AllowPrivateAddrs: true, NATPortMap: true, HolePunching: true, RelayClient: true, AntiEntropy: 2 * time.Second, Heartbeat: 500 * time.Millisecond}}, ""},
		{"no network", "", []string{"--no-network", "--bootstrap", "/ip4/10.0.0.1/tcp/1/p2p/x"}, fileConfig{DataDir: "/xdg/barrel", HTTP: httpConfig{Addr: "127.0.0.1:7080"}, Durability: "sync", LogLevel: "info",
			P2P: p2pConfig{Off: true, Bootstrap: []string{"/ip4/10.0.0.1/tcp/1/p2p/x"}}}, ""},
		{"retention over its defaults", retFile, nil, fileConfig{DataDir: "/xdg/barrel", HTTP: httpConfig{Addr: "127.0.0.1:7080"}, Durability: "sync", LogLevel: "info",
			Retention: node.Retention{KeepRevisions: 3, KeepFor: node.DefaultRetention.KeepFor}}, ""},
		{"negative retention", badRet, nil, fileConfig{}, "retention"},
		{"bad duration in file", badDur, nil, fileConfig{}, "heartbeat"},
		{"negative anti-entropy", "", []string{"--anti-entropy", "-1s"}, fileConfig{}, "anti_entropy"},
		{"unknown key", bad, nil, fileConfig{}, "data_dri"},
		{"missing file", filepath.Join(dir, "none.yaml"), nil, fileConfig{}, "none.yaml"},
		{"bad durability and level", "", []string{"--durability", "maybe", "--log-level", "loud"}, fileConfig{}, "durability"},
		{"body larger than a change may be", "", []string{"--max-body-bytes", "20000000"}, fileConfig{}, "max_body_bytes"},
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
			if tt.want.Retention == (node.Retention{}) {
				tt.want.Retention = node.DefaultRetention // the cases that leave it alone
			}
			if !reflect.DeepEqual(got, tt.want) {
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
	if !reflect.DeepEqual(cfg.P2P.Listen, node.DefaultListen) || cfg.P2P.Off || cfg.P2P.AntiEntropy != 30*time.Second || cfg.P2P.Heartbeat != 10*time.Second {
		t.Fatalf("p2p section: got %+v, want the node's defaults", cfg.P2P)
	}
	if cfg.Retention != node.DefaultRetention {
		t.Fatalf("retention section: got %+v, want the node's defaults %+v", cfg.Retention, node.DefaultRetention)
	}
	// Every key the daemon reads is documented in the example.
	raw, err := os.ReadFile("../../configs/barrel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var keys func(prefix string, typ reflect.Type)
	keys = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			k := f.Tag.Get("koanf")
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				keys(prefix+k+".", f.Type)
				continue
			}
			if !strings.Contains(string(raw), "\n"+strings.Repeat("  ", strings.Count(prefix, "."))+k+":") {
				t.Errorf("configs/barrel.yaml does not document %s%s", prefix, k)
			}
		}
	}
	keys("", reflect.TypeFor[fileConfig]())
}

func TestP2PConfigNode(t *testing.T) {
	if got := (p2pConfig{Off: true, Listen: []string{"/ip4/127.0.0.1/tcp/1"}}).node(); got != nil {
		t.Fatalf("off: got %+v, want nil (no networking)", got)
	}
	got := (p2pConfig{Listen: []string{"/ip4/127.0.0.1/tcp/1"}, NoDHT: true, AntiEntropy: time.Second}).node()
	want := &node.P2PConfig{Listen: []string{"/ip4/127.0.0.1/tcp/1"}, NoDHT: true, AntiEntropy: time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestP2PAddrLines(t *testing.T) {
	in := []string{"/ip4/10.0.0.2/tcp/1/p2p/X", "/ip4/127.0.0.1/tcp/1/p2p/X", "/ip4/127.0.0.1/udp/1/quic-v1/p2p/X", "/ip6/::1/tcp/1/p2p/X"}
	want := "/ip4/127.0.0.1/tcp/1/p2p/X\n/ip4/127.0.0.1/udp/1/quic-v1/p2p/X\n/ip4/10.0.0.2/tcp/1/p2p/X\n/ip6/::1/tcp/1/p2p/X\n"
	if got := p2pAddrLines(in); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseCond(t *testing.T) {
	tests := []struct {
		in   string
		want httpapi.Cond
		err  bool
	}{
		{"/type == note", httpapi.Cond{Path: "/type", Op: "==", Value: "note"}, false},
		{"type == note", httpapi.Cond{Path: "/type", Op: "==", Value: "note"}, false},
		{"/n >= 3", httpapi.Cond{Path: "/n", Op: ">=", Value: json.Number("3")}, false},
		{"/title == hello  world", httpapi.Cond{Path: "/title", Op: "==", Value: "hello  world"}, false},
		{"/tag exists", httpapi.Cond{Path: "/tag", Op: "exists"}, false},
		{"/type ==", httpapi.Cond{}, true},
		{"/type", httpapi.Cond{}, true},
		{"/tag exists false", httpapi.Cond{}, true},
		{"/tag missing", httpapi.Cond{}, true},
	}
	for _, tt := range tests {
		got, err := parseCond(tt.in)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCond(%q): got %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
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
