package datastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Pebble reports through a Logger and an EventListener. Left to their
// defaults (go-ds-pebble's go-log logger), a corrupted sstable block makes
// the process exit (DataCorruption calls Logger.Fatalf), and a full disk
// makes the background flush retry at once, forever, logging an ERROR line
// per attempt: hundreds of thousands of lines a minute. The store gives
// Pebble a logger that writes through the node's slog logger at a bounded
// rate, counts corruption instead of exiting, and backs off background
// work that fails.

// logBurst and logEvery bound Pebble's log lines: logBurst lines at once,
// then one per logEvery; the lines dropped are counted in the next one.
const (
	logBurst = 20
	logEvery = time.Second
)

// Background-error backoff: after a failed flush or compaction Pebble
// retries at once; the listener delays the retry, doubling from
// backoffMin to backoffMax, and resets after a flush that succeeds.
const (
	backoffMin = 10 * time.Millisecond
	backoffMax = 2 * time.Second
)

// limiter lets n events through per interval, after a burst.
type limiter struct {
	mu struct {
		sync.Mutex
		tokens  float64
		last    time.Time
		dropped int
	}
}

// allow reports whether an event may pass and how many were dropped since
// the last one that passed.
func (l *limiter) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.last.IsZero() {
		l.mu.tokens = logBurst
	} else {
		l.mu.tokens = min(logBurst, l.mu.tokens+float64(now.Sub(l.mu.last))/float64(logEvery))
	}
	l.mu.last = now
	if l.mu.tokens < 1 {
		l.mu.dropped++
		return false, 0
	}
	l.mu.tokens--
	dropped, l.mu.dropped = l.mu.dropped, 0
	return true, dropped
}

// pebbleLogger is a pebble.Logger writing through slog at a bounded rate.
type pebbleLogger struct {
	log *slog.Logger
	lim limiter
}

func (l *pebbleLogger) emit(level slog.Level, format string, args ...any) {
	ok, dropped := l.lim.allow(time.Now())
	if !ok {
		return
	}
	attrs := []any{"event", strings.TrimSpace(fmt.Sprintf(format, args...))}
	if dropped > 0 {
		attrs = append(attrs, "dropped", dropped)
	}
	l.log.Log(context.Background(), level, "pebble", attrs...) // Pebble gives no context
}

// Infof implements pebble.Logger.
func (l *pebbleLogger) Infof(format string, args ...any) { l.emit(slog.LevelDebug, format, args...) }

// Errorf implements pebble.Logger.
func (l *pebbleLogger) Errorf(format string, args ...any) { l.emit(slog.LevelWarn, format, args...) }

// Fatalf implements pebble.Logger. Pebble calls it when it cannot go on
// and does not expect it to return (after a failed commit, returning would
// acknowledge a write that was not made). It logs, without the rate limit,
// and panics with a *fatalError: Batch.Commit recovers it and fails the
// write; in a background goroutine it ends the process, as before.
func (l *pebbleLogger) Fatalf(format string, args ...any) {
	fe := &fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			fe.err = err
			break
		}
	}
	l.log.Error("pebble fatal error", "err", fe.msg)
	panic(fe)
}

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError struct {
	msg string
	err error // the first error among Fatalf's arguments, if any
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.err }

// health is what the store has seen go wrong since it opened.
type health struct {
	corruptions atomic.Uint64
	lastCorrupt atomic.Pointer[string] // the last damage reported, for status
	noSpace     atomic.Bool            // the last write was refused for space
	backoff     atomic.Int64           // current background backoff, ns
	closing     chan struct{}          // closed by Close: ends a backoff wait
}

// Health is a summary of the store's troubles, for status and metrics.
type Health struct {
	// Corruptions counts damaged blocks or files Pebble reported since
	// Open (every read of a damaged block counts once).
	Corruptions uint64
	// LastCorruption describes the last damage reported ("" if none).
	LastCorruption string
	// NoSpace says the last write was refused for lack of disk space.
	NoSpace bool
}

// Health returns the store's troubles since Open. It is safe to call at
// any time, also after Close.
func (s *Store) Health() Health {
	h := Health{Corruptions: s.health.corruptions.Load(), NoSpace: s.health.noSpace.Load()}
	if p := s.health.lastCorrupt.Load(); p != nil {
		h.LastCorruption = *p
	}
	return h
}

// noteCorruption records damage that a read or Pebble reported.
func (h *health) noteCorruption(what string) {
	h.corruptions.Add(1)
	h.lastCorrupt.Store(&what)
}

// listener returns the EventListener the store gives Pebble.
func (h *health) listener(log *pebbleLogger) *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			what := fmt.Sprintf("%s: %v", info.Path, info.Details)
			h.noteCorruption(what)
			if ok, dropped := log.lim.allow(time.Now()); ok {
				log.log.Error("store damaged: a read hit a corrupted block; re-sync the affected database from a peer or restore the data dir",
					"path", info.Path, "err", fmt.Sprint(info.Details), "dropped", dropped)
			}
		},
		BackgroundError: func(err error) {
			log.Errorf("background error: %v", err)
			h.wait()
		},
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err == nil {
				h.backoff.Store(0)
			}
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			if info.Err == nil {
				h.backoff.Store(0)
			}
		},
	}
}

// wait delays the caller (a Pebble background goroutine that just failed,
// about to retry) by the current backoff, doubling it for next time. Close
// ends the wait. Pebble holds its mutex here; writes are refused by the
// free-space check meanwhile, reads do not need the mutex, and the wait is
// bounded by backoffMax.
func (h *health) wait() {
	d := time.Duration(h.backoff.Load())
	switch {
	case d == 0:
		d = backoffMin
	case d < backoffMax:
		d = min(2*d, backoffMax)
	}
	h.backoff.Store(int64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.closing:
	}
}

// isNoSpace reports whether err is the disk being full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// markNoSpace returns err marked with ErrNoSpace when it is the disk being
// full, else err.
func markNoSpace(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return err
}
