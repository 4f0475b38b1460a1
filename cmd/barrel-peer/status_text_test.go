package main

import (
	"testing"
	"time"

	"github.com/barrel-db/barrel/httpapi"
)

// TestPeerSyncLine pins the status line of a peer in each state.
func TestPeerSyncLine(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		p    httpapi.PeerReplStatus
		want string
	}{
		{"synced", httpapi.PeerReplStatus{Connected: true, SyncedOnce: true, LastSynced: now.Add(-3 * time.Second), Checkpoint: 12000},
			"connected  synced 3s ago  lag 0  checkpoint 12,000"},
		{"never", httpapi.PeerReplStatus{Lag: 5}, "disconnected  never synced  lag 5  checkpoint 0"},
		{"pulling", httpapi.PeerReplStatus{Connected: true, Running: true, Lag: 7000, Checkpoint: 3000,
			Progress: &httpapi.PullProgress{Done: 3000, Expected: 10000, Rate: 1200.4, Remaining: 5.8}},
			"connected  pulling 3,000/10,000 docs  1,200 docs/s  ~6s left  lag 7,000  checkpoint 3,000"},
		{"pulling, end unknown", httpapi.PeerReplStatus{Connected: true, Running: true, SyncedOnce: true, LastSynced: now.Add(-90 * time.Minute),
			Progress: &httpapi.PullProgress{Done: 40}},
			"connected  pulling 40 docs  synced 1h ago  lag 0  checkpoint 0"},
		{"failing", httpapi.PeerReplStatus{Connected: true, LastError: "stream reset", SyncedOnce: true, LastSynced: now.Add(-72 * time.Hour)},
			`connected  synced 3d ago  lag 0  checkpoint 0  error "stream reset"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := peerSyncLine(tc.p, now); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestGroupedAndByteSize(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{grouped(0), "0"}, {grouped(999), "999"}, {grouped(1000), "1,000"}, {grouped(int64(-1234567)), "-1,234,567"},
		{grouped(uint64(10_000_000)), "10,000,000"},
		{byteSize(512), "512 B"}, {byteSize(1536), "1.5 KiB"}, {byteSize(3 << 20), "3.0 MiB"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
