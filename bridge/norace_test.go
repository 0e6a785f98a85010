package bridge

// raceEnabled is set when the tests run under -race (race_test.go), where
// sync.Pool drops items at random, so allocation counts through a pool
// are not deterministic.
var raceEnabled bool

// RaceEnabled is raceEnabled for the external tests (package bridge_test).
func RaceEnabled() bool { return raceEnabled }
