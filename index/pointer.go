package index

import (
	"fmt"
	"strings"
)

// ParsePointer splits an RFC 6901 JSON pointer into its unescaped reference
// tokens ("~1" is "/", "~0" is "~"). The empty pointer "" is the root and
// returns no tokens. A pointer without a leading "/", or with a "~" not
// followed by "0" or "1", returns an error wrapping ErrBadPointer.
func ParsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, fmt.Errorf("parse pointer %q: missing leading \"/\": %w", p, ErrBadPointer)
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		if !strings.Contains(t, "~") {
			continue
		}
		var b strings.Builder
		for j := 0; j < len(t); j++ {
			if t[j] != '~' {
				b.WriteByte(t[j])
				continue
			}
			if j+1 >= len(t) || (t[j+1] != '0' && t[j+1] != '1') {
				return nil, fmt.Errorf("parse pointer %q: bad escape in token %q: %w", p, t, ErrBadPointer)
			}
			if t[j+1] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
			j++
		}
		toks[i] = b.String()
	}
	return toks, nil
}

var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// appendToken returns the pointer to the member named key of the value at
// pointer p.
func appendToken(p, key string) string {
	return p + "/" + tokenEscaper.Replace(key)
}
