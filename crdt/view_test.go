package crdt

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// TestViewIsDecodeView: State.View equals what DecodeView reads back from
// the state's encoding, and stays equal to it while the document is merged
// further (it shares nothing the merge rules change in place).
func TestViewIsDecodeView(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		reps := []*replica{newReplica(0), newReplica(1)}
		type taken struct {
			view *State
			enc  []byte
		}
		var views []taken
		var all []*Change
		for range rapid.IntRange(1, 30).Draw(t, "steps") {
			r := reps[rapid.IntRange(0, 1).Draw(t, "who")]
			if len(all) > 0 && rapid.Bool().Draw(t, "deliver") {
				r.receive(t, all[rapid.IntRange(0, len(all)-1).Draw(t, "which")])
			} else {
				all = append(all, r.write(t, int64(rapid.IntRange(0, 100).Draw(t, "wall")), nil, []Op{genOp(t)}))
			}
			views = append(views, taken{r.state.View(), r.encoded(t)})
		}
		for i, v := range views {
			want, err := DecodeView(v.enc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, v.view, cmp.AllowUnexported(State{}, Conflict{}), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("view %d differs from DecodeView (-decoded +view):\n%s", i, diff)
			}
		}
	})
}
