package node

import (
	"runtime/debug"
	"sync"
)

// BuildVersion is the one version string this build reports: in
// `barrel-peer version`, in GET / and as the libp2p agent version (after
// "barrel/"). It is Version, followed, when the binary was built from a git
// checkout, by semver build metadata: "+" and the first 12 hex digits of the
// commit, and ".dirty" when the work tree had uncommitted changes
// ("0.1.0+e27f0b9a9f8b.dirty"). Go stamps the commit only when it builds in
// the repository's own directory with -buildvcs on (the default for go
// build, not for go run or go test, and not inside a git worktree).
func BuildVersion() string { return buildVersion() }

var buildVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Version
	}
	return versionFrom(bi.Settings)
})

// versionFrom is BuildVersion for the build settings of a binary.
func versionFrom(settings []debug.BuildSetting) string {
	var rev string
	var dirty bool
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return Version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := Version + "+" + rev
	if dirty {
		v += ".dirty"
	}
	return v
}

// agentVersion is what the libp2p identify protocol tells other peers this
// host runs.
func agentVersion() string { return "barrel/" + BuildVersion() }
