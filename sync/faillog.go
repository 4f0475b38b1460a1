package sync

import (
	"sync"
	"time"
)

// failLog decides when a failure that repeats is logged: the first at
// once, then at most once per interval, each time with the count of
// failures since the first; ok reports the recovery. It tracks at most max
// keys: failures of further keys are logged every time they happen, which
// takes as many distinct failing keys as the table holds. Safe for
// concurrent use.
type failLog struct {
	every time.Duration
	max   int
	now   func() time.Time

	mu struct { // guards keys
		sync.Mutex
		keys map[string]*failing
	}
}

// failing is the state of one key that failed and has not recovered.
type failing struct {
	count  int       // failures since the first
	logged time.Time // when a failure was last logged
}

func newFailLog(every time.Duration, max int) *failLog {
	f := &failLog{every: every, max: max, now: time.Now}
	f.mu.keys = map[string]*failing{}
	return f
}

// failed records a failure of key. It returns the failures since the
// first (this one included) and whether this one should be logged.
func (f *failLog) failed(key string) (int, bool) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.mu.keys[key]
	if st == nil {
		if len(f.mu.keys) >= f.max {
			return 1, true
		}
		f.mu.keys[key] = &failing{count: 1, logged: now}
		return 1, true
	}
	st.count++
	if now.Sub(st.logged) < f.every {
		return st.count, false
	}
	st.logged = now
	return st.count, true
}

// ok records a success of key. It returns how many failures came before
// it since the last success (0: the key was not failing).
func (f *failLog) ok(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.mu.keys[key]
	if st == nil {
		return 0
	}
	delete(f.mu.keys, key)
	return st.count
}
