//go:build race

package node

// raceEnabled says the tests run with the race detector, which makes
// the largest scenarios too slow to run at full size.
const raceEnabled = true
