package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// identityFile is the name of the node's private key inside the data dir.
const identityFile = "identity.key"

// loadIdentity reads the node's libp2p key from dir, creating it (0600) on
// first start. A key file that others may read is refused: it is the node's
// authority to sign changes.
func loadIdentity(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, identityFile)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return nil, fmt.Errorf("generate identity: %w", err)
		}
		data, err := crypto.MarshalPrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("marshal identity: %w", err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return nil, fmt.Errorf("write identity: %w", err)
		}
		if err := syncFile(tmp); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("write identity: %w", err)
		}
		return key, nil
	case err != nil:
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse identity %s: %w", path, err)
	}
	return key, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// verifyChange checks a signature made by the author's key. The author is a
// libp2p peer id that embeds its ed25519 public key.
func verifyChange(author, data, sig []byte) error {
	id, err := peer.IDFromBytes(author)
	if err != nil {
		return fmt.Errorf("author: %w", err)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("author %s: %w", id, err)
	}
	ok, err := pub.Verify(data, sig)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("signature does not match the author's key")
	}
	return nil
}
