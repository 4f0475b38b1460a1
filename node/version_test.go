package node

import (
	"runtime/debug"
	"testing"
	"time"
)

func TestVersionFrom(t *testing.T) {
	rev := "e27f0b9a9f8bad5dac1954760de59805fbd2cfeb"
	tests := []struct {
		name     string
		release  string
		mod      string
		settings []debug.BuildSetting
		want     string
	}{
		{"no vcs", "", "(devel)", nil, Version},
		{"go install", "", "v0.3.1", nil, "0.3.1"},
		{"release at link time", "0.4.0", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}}, "0.4.0+e27f0b9a9f8b"},
		{"clean", "", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, Version + "+e27f0b9a9f8b"},
		{"dirty", "", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}, Version + "+e27f0b9a9f8b.dirty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionFrom(tt.release, tt.mod, tt.settings); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAgentVersion checks what a connected peer learns by identify: the
// same version as Info and `barrel-peer version`, not the module path.
func TestAgentVersion(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.connect(0, 1)
	if got := tn.nodes[0].Info().Version; got != BuildVersion() {
		t.Fatalf("Info().Version: got %q, want %q", got, BuildVersion())
	}
	want := "barrel/" + BuildVersion()
	var got any
	waitFor(t, "identify", 10*time.Second, func() bool {
		v, err := tn.nodes[1].net.Load().host.Peerstore().Get(tn.nodes[0].PeerID(), "AgentVersion")
		got = v
		return err == nil
	})
	if got != want {
		t.Fatalf("agent version: got %q, want %q", got, want)
	}
}
