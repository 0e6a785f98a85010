//go:build race

package bridge

func init() { raceEnabled = true }
