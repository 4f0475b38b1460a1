package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/barrel-db/barrel/couch"
	"github.com/barrel-db/barrel/httpapi"
)

// writeStatus prints st as lines for a person: the node, then each
// database with its peers, attachments in flight and CouchDB connectors
// indented under it. now is the reader's clock, for "synced 3s ago".
func writeStatus(w io.Writer, st status, now time.Time) error {
	var b strings.Builder
	network := "off"
	if st.Network {
		network = "on"
	}
	fmt.Fprintf(&b, "node %s  version %s  network %s  peers %d\n", st.PeerID, st.Version, network, st.Peers)
	for _, c := range st.Components {
		if c.State == "failed" {
			fmt.Fprintf(&b, "  component %s failed: %s\n", c.Name, c.Error)
		}
	}
	for _, d := range st.DBs {
		repl := "replication on"
		switch set := d.Replication.Setting; {
		case set.Off:
			repl = "replication off"
		case set.IDPrefix != "" || len(set.Where) > 0:
			repl = "replication partial"
		}
		fmt.Fprintf(&b, "db %s  docs %s  seq %s  %s\n", d.Name, grouped(d.DocCount), grouped(d.UpdateSeq), repl)
		for _, p := range d.Replication.Peers {
			fmt.Fprintf(&b, "  peer %s  %s\n", p.Peer, peerSyncLine(p, now))
		}
		if bl := d.Replication.Blobs; bl.Wanted > 0 {
			fmt.Fprintf(&b, "  attachments  %s wanted (%s)  %d fetching\n", grouped(bl.Wanted), byteSize(bl.WantedBytes), bl.Fetching)
		}
		for _, c := range connectorStates(d.Replication.Connectors) {
			fmt.Fprintf(&b, "  couch %s  %s\n", c.Name, connectorLine(c, now))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// peerSyncLine is one peer's sync state with a database, e.g.
// "connected  synced 3s ago  lag 0" or, during a pull,
// "connected  pulling 3,000/10,000 docs  1,200 docs/s  ~6s left".
func peerSyncLine(p httpapi.PeerReplStatus, now time.Time) string {
	parts := []string{"disconnected"}
	if p.Connected {
		parts[0] = "connected"
	}
	if pr := p.Progress; pr != nil {
		if pr.Expected > 0 {
			parts = append(parts, fmt.Sprintf("pulling %s/%s docs", grouped(pr.Done), grouped(pr.Expected)))
		} else {
			parts = append(parts, fmt.Sprintf("pulling %s docs", grouped(pr.Done)))
		}
		if pr.Rate > 0 {
			parts = append(parts, grouped(int64(math.Round(pr.Rate)))+" docs/s")
		}
		if pr.Remaining > 0 {
			parts = append(parts, "~"+ago(time.Duration(pr.Remaining*float64(time.Second)))+" left")
		}
	}
	if p.SyncedOnce {
		parts = append(parts, "synced "+ago(now.Sub(p.LastSynced))+" ago")
	} else if p.Progress == nil {
		parts = append(parts, "never synced")
	}
	parts = append(parts, "lag "+grouped(p.Lag), "checkpoint "+grouped(p.Checkpoint))
	if p.LastError != "" {
		parts = append(parts, "error "+strconv.Quote(p.LastError))
	}
	return strings.Join(parts, "  ")
}

// connectorStates decodes the connectors of a replication state (the
// couch endpoint's states, decoded by the client as plain JSON values).
func connectorStates(v any) []couch.ConnectorState {
	if v == nil {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out []couch.ConnectorState
	if json.Unmarshal(raw, &out) != nil {
		return nil
	}
	return out
}

// connectorLine is one CouchDB connector's state, e.g.
// "pull  waiting  pulled 120  pushed 0  synced 3s ago".
func connectorLine(c couch.ConnectorState, now time.Time) string {
	parts := []string{c.Direction, c.State, "pulled " + grouped(c.DocsPulled), "pushed " + grouped(c.DocsPushed)}
	if c.LastSync.IsZero() {
		parts = append(parts, "never synced")
	} else {
		parts = append(parts, "synced "+ago(now.Sub(c.LastSync))+" ago")
	}
	if c.Failures > 0 {
		parts = append(parts, grouped(c.Failures)+" write failures")
	}
	if c.LastError != "" {
		parts = append(parts, "error "+strconv.Quote(c.LastError))
	}
	return strings.Join(parts, "  ")
}

// ago rounds a duration for a person: 3s, 5m, 2h, 3d.
func ago(d time.Duration) string {
	switch d = max(d, 0); {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// grouped writes an integer with thousands separators: 10,000.
func grouped[I int | int64 | uint64](n I) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	if s[0] == '-' {
		b.WriteByte('-')
		s = s[1:]
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// byteSize writes a byte count in binary units: 512 B, 1.5 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
