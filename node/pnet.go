package node

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/multiformats/go-multiaddr"
)

// SwarmKeyBytes is the length of a private network's pre-shared key.
const SwarmKeyBytes = 32

// maxSwarmKeyFileBytes bounds what ReadSwarmKey reads: the IPFS format is
// a two-line header and 64 hex digits, well under this.
const maxSwarmKeyFileBytes = 4 << 10

// ReadSwarmKey reads a private network's pre-shared key from the file at
// path, in the IPFS swarm key format:
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits>
//
// /base64/ and /bin/ encodings are accepted too, as go-libp2p's
// pnet.DecodeV1PSK reads them. Like the identity key, a key file that
// others may read is refused: whoever holds the key may join the network.
// The returned slice is the caller's.
func ReadSwarmKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("swarm key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("swarm key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("swarm key %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("swarm key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSwarmKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("swarm key %s: %w", path, err)
	}
	if len(data) > maxSwarmKeyFileBytes {
		return nil, fmt.Errorf("swarm key %s: larger than %d bytes, not a swarm key", path, maxSwarmKeyFileBytes)
	}
	key, err := DecodeSwarmKey(data)
	if err != nil {
		return nil, fmt.Errorf("swarm key %s: %w", path, err)
	}
	return key, nil
}

// DecodeSwarmKey decodes a swarm key in the IPFS format (see ReadSwarmKey).
// Trailing white space is allowed; with the text encodings, anything else
// after the key is an error (pnet.DecodeV1PSK alone reads the first 32
// bytes and ignores the rest, so a key pasted twice would pass unnoticed).
func DecodeSwarmKey(data []byte) ([]byte, error) {
	// White space around a text-encoded key (a final newline, CRLF) is
	// removed first: DecodeV1PSK would take it for a bad hex or base64
	// digit.
	lines := bytes.SplitN(data, []byte("\n"), 3)
	enc, body := "", ""
	if len(lines) == 3 {
		enc = string(bytes.TrimRight(lines[1], "\r"))
		body = string(bytes.TrimSpace(lines[2]))
		if enc == "/base16/" || enc == "/base64/" {
			data = slices.Concat(lines[0], []byte("\n"), lines[1], []byte("\n"), []byte(body))
		}
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("truncated: want the line /key/swarm/psk/1.0.0/, an encoding line (/base16/, /base64/ or /bin/) and a %d-byte key", SwarmKeyBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("malformed: %w", err)
	}
	switch enc {
	case "/base16/":
		if !strings.EqualFold(body, hex.EncodeToString(psk)) {
			return nil, fmt.Errorf("malformed: want exactly %d hex digits after /base16/", 2*SwarmKeyBytes)
		}
	case "/base64/":
		if body != base64.StdEncoding.EncodeToString(psk) {
			return nil, fmt.Errorf("malformed: want exactly %d bytes in base64 after /base64/", SwarmKeyBytes)
		}
	}
	return psk, nil
}

// validateSwarmKey loads the key file if one is named, checks the key's
// length and refuses addresses a private network cannot use.
//
// Private networks protect the raw connection before the security
// handshake; the UDP transports (QUIC, WebTransport, WebRTC) carry their
// own TLS or DTLS and libp2p has no PSK for them. An explicit UDP address
// with a swarm key is therefore an error rather than a dropped address with
// a warning: a user who wrote it down expects to be reachable there, and
// the error says what to remove. The default listen set, when no address is
// configured, is TCP only.
func (c *P2PConfig) validateSwarmKey() []error {
	var errs []error
	switch {
	case c.SwarmKeyFile != "":
		key, err := ReadSwarmKey(c.SwarmKeyFile)
		if err != nil {
			return []error{err}
		}
		// A config validated before holds the file's key already.
		if c.SwarmKey != nil && !bytes.Equal(c.SwarmKey, key) {
			return []error{errors.New("swarm key given both as bytes and as a file: set one")}
		}
		c.SwarmKey = key
	case c.SwarmKey == nil:
		return nil
	}
	if len(c.SwarmKey) != SwarmKeyBytes {
		errs = append(errs, fmt.Errorf("swarm key is %d bytes, want %d", len(c.SwarmKey), SwarmKeyBytes))
	}
	for _, list := range []struct {
		name  string
		addrs []string
	}{{"listen", c.Listen}, {"bootstrap", c.Bootstrap}} {
		for _, a := range list.addrs {
			m, err := multiaddr.NewMultiaddr(a)
			if err != nil {
				continue // reported by validate
			}
			if _, err := m.ValueForProtocol(multiaddr.P_UDP); err == nil {
				errs = append(errs, fmt.Errorf("%s %q: a private network (swarm key) works over TCP only, not QUIC, WebTransport or WebRTC: remove the address", list.name, a))
			}
		}
	}
	return errs
}
