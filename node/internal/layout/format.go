package layout

import (
	"encoding/binary"
	"fmt"
)

// Format is the version of what this binary stores: the key layout (keys.go)
// and the encodings of the values (crdt's canonical CBOR and the records of
// records.go). A data dir records it when first opened; node refuses a data
// dir of another format instead of misreading it.
//
// Format 2 (issue 13) added signing-group records: the changes of a group
// stored in one batch keep their signature and leaves once, in the group's
// record, instead of a copy of the signature and the Merkle proof in each
// (ChangeRecord); and history entries carry no value, the feed entry at
// their seq naming the change. A format-1 data dir is a valid format-2 one
// (its change records are all whole, its history entries name their
// change themselves, and both are still read), so its migration is the
// format record alone.
const Format = 2

// FormatKey holds the store format of a data dir (8 bytes, big endian).
var FormatKey = []byte("\x00nformat")

// FormatValue is the value of FormatKey for format f.
func FormatValue(f uint64) []byte { return binary.BigEndian.AppendUint64(nil, f) }

// ParseFormat reads the value of FormatKey.
func ParseFormat(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("unreadable format record (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
