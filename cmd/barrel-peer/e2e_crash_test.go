package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2ECrash kills the daemon with SIGKILL under write load three times
// on one data dir and checks that every acknowledged write survives
// (DESIGN.md invariant 2), the changes feed has no gaps and doc_count
// agrees with it.
func TestE2ECrash(t *testing.T) {
	const (
		writers      = 8
		maxPerWriter = 3000
		rounds       = 3
	)
	dataDir := t.TempDir()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))

	acked := map[string]string{} // doc id -> last acknowledged rev
	for round := range rounds {
		p := startPeer(t, dataDir)
		if round == 0 {
			mustStatus(t, 201, "PUT", p.url+"/dbs/crash", "")
		}
		verifyCrashState(t, p.url, acked)

		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		var wg sync.WaitGroup
		writes := 0
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < maxPerWriter && ctx.Err() == nil; i++ {
					// Mostly new documents, some overwrites of this writer's
					// earlier ones (a writer owns its ids, so per id the
					// acknowledged revs are ordered).
					id := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					if i > 0 && i%4 == 0 {
						id = fmt.Sprintf("r%d-w%d-%d", round, w, i/2)
					}
					body := fmt.Sprintf(`{"w":%d,"i":%d,"pad":"%s"}`, w, i, strings.Repeat("x", i%200))
					req, _ := http.NewRequestWithContext(ctx, "PUT", p.url+"/dbs/crash/docs/"+id, strings.NewReader(body))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return // killed
					}
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						continue
					}
					var res struct{ ID, Rev string }
					if json.Unmarshal(raw, &res) != nil || res.Rev == "" {
						continue // cut off mid-answer: not acknowledged
					}
					mu.Lock()
					acked[id] = res.Rev
					writes++
					mu.Unlock()
				}
			}()
		}
		// Kill at a random point of a ~2s load, once some writes landed.
		killAfter := 500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
		timer := time.NewTimer(killAfter)
		<-timer.C
		poll(t, 30*time.Second, "some acknowledged writes", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return writes > 0
		})
		p.kill()
		cancel()
		wg.Wait()
		t.Logf("round %d: killed after %v with %d acknowledged writes (%d ids so far)", round, killAfter, writes, len(acked))
	}
	p := startPeer(t, dataDir)
	verifyCrashState(t, p.url, acked)
	p.stop(t)
}

// verifyCrashState checks every acknowledged write, the feed and doc_count.
func verifyCrashState(t *testing.T, base string, acked map[string]string) {
	t.Helper()
	db := base + "/dbs/crash"
	for id, rev := range acked {
		doc := mustStatus(t, 200, "GET", db+"/docs/"+id+"?revs=true", "").obj(t)
		if doc["_rev"] == rev {
			continue
		}
		found := false
		for _, r := range doc["_revs"].([]any) {
			found = found || r == rev
		}
		if !found {
			t.Fatalf("doc %s: acknowledged rev %s lost; now at %v with history %v", id, rev, doc["_rev"], doc["_revs"])
		}
	}
	var seq float64
	ids := map[string]bool{}
	for {
		ch := mustStatus(t, 200, "GET", db+"/changes?limit=10000&since="+itoa(int(seq)), "").obj(t)
		rs := ch["results"].([]any)
		for _, c := range rs {
			cm := c.(map[string]any)
			if cm["seq"] != seq+1 {
				t.Fatalf("changes feed gap: got seq %v after %v", cm["seq"], seq)
			}
			seq++
			ids[cm["id"].(string)] = true
		}
		if len(rs) == 0 {
			break
		}
	}
	info := mustStatus(t, 200, "GET", db, "").obj(t)
	if info["update_seq"] != seq {
		t.Fatalf("got update_seq %v, want the feed's last seq %v", info["update_seq"], seq)
	}
	if info["doc_count"] != float64(len(ids)) {
		t.Fatalf("got doc_count %v, want %d distinct ids in the feed", info["doc_count"], len(ids))
	}
	for id := range acked {
		if !ids[id] {
			t.Fatalf("acknowledged doc %s missing from the changes feed", id)
		}
	}
}
