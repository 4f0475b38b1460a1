package commit

import "github.com/barrel-db/barrel/node/internal/layout"

// setCheckpoint writes a sync checkpoint into the group, unless the
// checkpoints were reset (reconsider, an exclusive job of this writer)
// after the pull read its own: it must not put back the position the
// reset undid.
func (g *Group) setCheckpoint(w *Checkpoint) {
	if w.Epoch != g.env.CheckpointEpoch() {
		return
	}
	g.batch.Set(g.env.Keys().Checkpoint([]byte(w.Peer)), layout.Uint64(w.Seq))
	g.others++
}
