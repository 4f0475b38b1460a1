package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barrel-db/barrel/httpapi"
	"github.com/barrel-db/barrel/node"
)

// loopbackNS creates a network namespace holding only a loopback
// interface (no multicast-capable interface: mDNS cannot start there) and
// deletes it, and whatever still runs in it, when the test ends. It skips
// the test unless run as root with iproute2.
func loopbackNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip) to create a network namespace")
	}
	ns := fmt.Sprintf("bnet%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("loopback up in %s: %v: %s", ns, err, out)
	}
	return ns
}

// nsPeer is a daemon running inside a namespace; the test reaches it only
// through the CLI run in the same namespace.
type nsPeer struct {
	*peer
	ns, name, addr string
}

// startNSPeer runs `barrel-peer run` in ns with mDNS on (the default), the
// DHT off, listening on the namespace's loopback.
func startNSPeer(t *testing.T, ns, name string) *nsPeer {
	t.Helper()
	dir := t.TempDir()
	httpFile, p2pFile := filepath.Join(dir, "http"), filepath.Join(dir, "p2p")
	args := []string{"netns", "exec", ns, binPath, "run", "--data", filepath.Join(dir, "data"),
		"--http", "127.0.0.1:0", "--http-addr-file", httpFile, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--p2p-addr-file", p2pFile, "--no-dht", "--anti-entropy", "1s", "--heartbeat", "500ms"}
	// ip netns exec execs the binary: the process is the peer itself.
	p := &peer{t: t, cmd: exec.Command("ip", args...), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	np := &nsPeer{peer: p, ns: ns, name: name}
	poll(t, 60*time.Second, name+"'s address files", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("%s exited early: %v\n%s", name, p.err, p.stderr.String())
		default:
		}
		h, err1 := os.ReadFile(httpFile)
		a, err2 := os.ReadFile(p2pFile)
		if err1 != nil || err2 != nil || len(bytes.TrimSpace(h)) == 0 || len(strings.Fields(string(a))) == 0 {
			return false
		}
		p.url = "http://" + strings.TrimSpace(string(h))
		np.addr = strings.Fields(string(a))[0]
		return true
	})
	poll(t, 30*time.Second, name+" answering", func() bool { _, err := np.cli("dbs"); return err == nil })
	return np
}

// cli runs a client command against the peer inside its namespace.
func (p *nsPeer) cli(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.ns, binPath, "--api", p.url}, args...)...)
	cmd.Env = append(os.Environ(), "BARREL_API=", "BARREL_TOKEN=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *nsPeer) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.cli(args...)
	if err != nil {
		t.Fatalf("%s: %v: %v\n%s", p.name, args, err, out)
	}
	return out
}

// TestNoMulticastKeepsSync (issue 17, item 5): in a network namespace with
// only loopback, mDNS (on by default) cannot start. The peer says so at
// once (a Warn naming what to do), status and /peers report mdns failed
// and sync running, and a second peer in the namespace dials it by its
// loopback address and replicates a document both ways.
func TestNoMulticastKeepsSync(t *testing.T) {
	ns := loopbackNS(t)
	a := startNSPeer(t, ns, "a")
	b := startNSPeer(t, ns, "b")
	poll(t, 10*time.Second, "the mDNS warning", func() bool {
		return strings.Contains(a.stderr.String(), "level=WARN") && strings.Contains(a.stderr.String(), "mdns discovery not started")
	})

	var st struct {
		httpapi.Info
		Network bool `json:"network"`
	}
	if err := json.Unmarshal([]byte(a.mustCLI(t, "status", "--json")), &st); err != nil {
		t.Fatalf("decode status: %v", err)
	}
	states := map[string]httpapi.Component{}
	for _, c := range st.Components {
		states[c.Name] = c
	}
	if !st.Network || states["mdns"].State != node.StateFailed || states["mdns"].Error == "" || states["sync"].State != node.StateRunning {
		t.Errorf("status: network %v, components %+v; want network, mdns failed with its error, sync running", st.Network, st.Components)
	}

	for _, p := range []*nsPeer{a, b} {
		p.mustCLI(t, "create-db", "ns")
	}
	a.mustCLI(t, "put", "ns", "from-a", `{"v":"a"}`)
	b.mustCLI(t, "put", "ns", "from-b", `{"v":"b"}`)
	b.mustCLI(t, "connect", a.addr)
	for _, tc := range []struct {
		p   *nsPeer
		doc string
	}{{b, "from-a"}, {a, "from-b"}} {
		poll(t, replWait, tc.p.name+" to get "+tc.doc, func() bool {
			_, err := tc.p.cli("get", "ns", tc.doc)
			return err == nil
		})
	}
	if strings.Contains(a.stderr.String()+b.stderr.String(), "protocols not supported") {
		t.Error("a peer answered protocols not supported")
	}
}

// GET /peers says which network parts run: here sync and gossip run, mDNS
// and the DHT are off.
func TestPeersComponents(t *testing.T) {
	p := startNetPeer(t, "a", t.TempDir(), "/ip4/127.0.0.1/tcp/0")
	var got struct {
		Components []httpapi.Component `json:"components"`
	}
	r := mustStatus(t, http.StatusOK, http.MethodGet, p.url+"/peers", "")
	if err := json.Unmarshal(r.raw, &got); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, c := range got.Components {
		states[c.Name] = c.State
	}
	for name, want := range map[string]string{"sync": "running", "gossip": "running", "discovery": "running", "mdns": "off", "dht": "off"} {
		if states[name] != want {
			t.Errorf("component %s: got %q, want %q (all: %+v)", name, states[name], want, got.Components)
		}
	}
}
