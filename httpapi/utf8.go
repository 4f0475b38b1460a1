package httpapi

import (
	"io"
	"unicode/utf8"
)

// textReader passes a JSON body through and fails, with an error matching
// errBadJSON, at the first byte that is not UTF-8 and at the first \u
// escape naming half of a UTF-16 surrogate pair without its other half.
// encoding/json accepts both and stores U+FFFD instead, which would change
// what the client sent without telling it; refusing them is the rule for
// any other malformed JSON.
//
// It holds at most the UTFMax-1 bytes of a sequence split across reads.
type textReader struct {
	r   io.Reader
	off int64 // bytes checked before the current read

	pend [utf8.UTFMax]byte // start of a sequence the last read cut
	np   int

	inString bool
	esc      int // 0: none; 1: after '\'; 2..5: hex digits of \u read so far + 2
	hex      rune
	high     bool // the last escape was a high surrogate: a low one must follow
}

func (t *textReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if cerr := t.check(p[:n]); cerr != nil {
		return 0, cerr
	}
	if err == io.EOF && t.np > 0 {
		return 0, badJSON("body is not UTF-8: truncated sequence at byte %d", t.off-int64(t.np))
	}
	return n, err
}

// check validates b, the next bytes of the body.
func (t *textReader) check(b []byte) error {
	base := t.off
	t.off += int64(len(b))
	// Finish a sequence cut by the last read.
	i := 0
	for t.np > 0 && i < len(b) {
		t.pend[t.np] = b[i]
		t.np++
		i++
		if utf8.FullRune(t.pend[:t.np]) {
			if r, size := utf8.DecodeRune(t.pend[:t.np]); r == utf8.RuneError && size == 1 {
				return badJSON("body is not UTF-8 at byte %d", base+int64(i-t.np))
			}
			t.np = 0
		}
	}
	if t.np > 0 { // b ended inside the sequence
		return nil
	}
	b, base = b[i:], base+int64(i)
	// Hold a sequence this read cuts.
	tail := 0
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		if c := b[len(b)-k]; utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-k:]) {
				tail = k
			}
			break
		}
	}
	body := b[:len(b)-tail]
	if !utf8.Valid(body) {
		for j := 0; j < len(body); {
			r, size := utf8.DecodeRune(body[j:])
			if r == utf8.RuneError && size == 1 {
				return badJSON("body is not UTF-8 at byte %d", base+int64(j))
			}
			j += size
		}
	}
	t.np = copy(t.pend[:], b[len(b)-tail:])
	return t.escapes(b, base)
}

// escapes follows the strings of the JSON text in b for \u escapes of
// surrogates. A malformed escape is left to the decoder to report.
func (t *textReader) escapes(b []byte, base int64) error {
	for j, c := range b {
		switch {
		case !t.inString:
			t.inString = c == '"'
		case t.esc == 1:
			if c == 'u' {
				t.esc, t.hex = 2, 0
				continue
			}
			t.esc = 0
			if t.high {
				return t.unpaired(base + int64(j))
			}
		case t.esc >= 2:
			d := hexDigit(c)
			if d < 0 {
				t.esc = 0 // a syntax error the decoder reports
				continue
			}
			t.hex = t.hex<<4 | d
			if t.esc++; t.esc < 6 {
				continue
			}
			t.esc = 0
			switch {
			case t.hex >= 0xD800 && t.hex < 0xDC00:
				if t.high {
					return t.unpaired(base + int64(j))
				}
				t.high = true
			case t.hex >= 0xDC00 && t.hex < 0xE000:
				if !t.high {
					return t.unpaired(base + int64(j))
				}
				t.high = false
			case t.high:
				return t.unpaired(base + int64(j))
			}
		case c == '\\':
			t.esc = 1
		case t.high:
			return t.unpaired(base + int64(j))
		case c == '"':
			t.inString = false
		}
	}
	return nil
}

func (t *textReader) unpaired(off int64) error {
	return badJSON("unpaired UTF-16 surrogate escape in a string, before byte %d", off+1)
}

func hexDigit(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}
