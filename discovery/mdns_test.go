package discovery

import (
	"os"
	"testing"
	"time"
)

// TestMDNS runs only inside a network namespace (BARREL_NETNS_TEST=1, set
// by the namespace script): mDNS multicasts on every interface, which a
// plain test run must not do on a real LAN.
func TestMDNS(t *testing.T) {
	if os.Getenv("BARREL_NETNS_TEST") != "1" {
		t.Skip("mDNS multicasts on the LAN; set BARREL_NETNS_TEST=1 inside a network namespace")
	}
	ha, hb := newHost(t), newHost(t)
	service := "barrel-test-" + ha.ID().String()[:8]
	da := newDiscovery(t, ha, Config{MDNS: true, MDNSService: service})
	db := newDiscovery(t, hb, Config{MDNS: true, MDNSService: service})
	run(t, da)
	run(t, db)
	waitFor(t, 30*time.Second, "A and B to find each other by mDNS", func() bool {
		return connected(ha, hb.ID())() && (isKnown(da, hb.ID()) || isKnown(db, ha.ID()))
	})
}
