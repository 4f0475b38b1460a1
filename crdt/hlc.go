package crdt

// HLC is a hybrid logical clock stamp: wall time in Unix nanoseconds and a
// logical counter that orders stamps sharing a wall time.
type HLC struct {
	_       struct{} `cbor:",toarray"`
	Wall    int64
	Logical uint32
}

// Compare orders two stamps: -1, 0 or +1.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Wall < o.Wall:
		return -1
	case h.Wall > o.Wall:
		return 1
	case h.Logical < o.Logical:
		return -1
	case h.Logical > o.Logical:
		return 1
	}
	return 0
}

// Clock issues HLC stamps. It reads no clock itself: callers pass the wall
// time. A Clock is not safe for concurrent use; its owner serializes calls.
type Clock struct {
	last HLC
}

// Now returns a stamp greater than every stamp issued or observed so far and
// not below wall.
func (c *Clock) Now(wall int64) HLC {
	if wall > c.last.Wall {
		c.last = HLC{Wall: wall}
	} else {
		c.last.Logical++
		if c.last.Logical == 0 { // counter wrapped: move time forward instead
			c.last.Wall++
		}
	}
	return c.last
}

// Observe makes later stamps greater than h (a stamp seen on a parent or a
// received change).
func (c *Clock) Observe(h HLC) {
	if h.Compare(c.last) > 0 {
		c.last = HLC{Wall: h.Wall, Logical: h.Logical}
	}
}

// Last returns the greatest stamp issued or observed.
func (c *Clock) Last() HLC { return c.last }
