package discovery

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/multiformats/go-multiaddr"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// When mDNS cannot start (here: a host with no listen address, which
// mDNS has nothing to announce for, as on a host without a multicast
// interface), Run logs it at once (Warn), reports it failed, and keeps
// the rest running: the bootstrap peer is still dialed (issue 17, item 5).
// No multicast is sent: the service fails before it opens a socket.
func TestMDNSStartFailureKeepsRunning(t *testing.T) {
	ha, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ha.Close() })
	hb := newHost(t)
	var logs syncBuffer
	d := newDiscovery(t, ha, Config{MDNS: true, MDNSService: "barrel-test-nomcast", Bootstrap: []multiaddr.Multiaddr{p2pAddr(t, hb)}})
	d.log = slog.New(slog.NewTextHandler(&logs, nil))
	stop := run(t, d)
	waitFor(t, 10*time.Second, "mdns reported failed", func() bool {
		m := d.Mechanisms()
		return m[0].Name == MechMDNS && m[0].State == StateFailed && m[0].Error != ""
	})
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "mdns discovery not started") {
		t.Errorf("want a Warn line saying mDNS did not start, got:\n%s", out)
	}
	waitFor(t, 10*time.Second, "the bootstrap peer dialed", connected(ha, hb.ID()))
	if m := d.Mechanisms()[1]; m.State != StateOff {
		t.Errorf("dht: got %+v, want off", m)
	}
	stop()
	if m := d.Mechanisms()[0]; m.State != StateFailed {
		t.Errorf("after stop, mdns: got %+v, want failed kept", m)
	}
}
