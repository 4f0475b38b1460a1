package node

import (
	"runtime/debug"
	"strings"
	"sync"
)

// BuildVersion is the one version string this build reports: in
// `barrel-peer version`, in GET / and as the libp2p agent version (after
// "barrel/"). It is the module version when the binary was built by go
// install module@version; otherwise Version (or the release set at link
// time), followed, when the binary was built from a git
// checkout, by semver build metadata: "+" and the first 12 hex digits of the
// commit, and ".dirty" when the work tree had uncommitted changes
// ("0.1.0+e27f0b9a9f8b.dirty"). Go stamps the commit only when it builds in
// the repository's own directory with -buildvcs on (the default for go
// build, not for go run or go test, and not inside a git worktree).
func BuildVersion() string { return buildVersion() }

// release, when set at link time (-ldflags "-X
// github.com/barrel-db/barrel/node.release=1.2.3"), replaces Version in
// BuildVersion.
var release string

var buildVersion = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionFrom(release, "", nil)
	}
	return versionFrom(release, bi.Main.Version, bi.Settings)
})

// versionFrom is BuildVersion for a binary linked with release, whose main
// module has version mod ("(devel)" unless built by go install
// module@version, which then names the release) and the build settings
// given.
func versionFrom(release, mod string, settings []debug.BuildSetting) string {
	base := Version
	switch {
	case release != "":
		base = release
	case mod != "" && mod != "(devel)":
		return strings.TrimPrefix(mod, "v") // a module version already carries its commit if it is a pseudo-version
	}
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
		return base
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := base + "+" + rev
	if dirty {
		v += ".dirty"
	}
	return v
}

// agentVersion is what the libp2p identify protocol tells other peers this
// host runs.
func agentVersion() string { return "barrel/" + BuildVersion() }
