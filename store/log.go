package store

import (
	"fmt"
	"os"
)

// pebbleLogger is pebble's Logger over the DB's zerolog.Logger. Without
// it pebble writes to the standard library's log, that is, plain lines
// on stderr beside lampgw's JSON.
type pebbleLogger struct{ db *DB }

// Infof is debug for us: pebble reports every WAL and compaction.
func (l pebbleLogger) Infof(format string, args ...any) {
	l.db.log.Debug().Str("lib", "pebble").Msgf(format, args...)
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.db.log.Error().Str("lib", "pebble").Msgf(format, args...)
}

// Fatalf is pebble's word that it cannot go on: a failed MANIFEST sync,
// a broken invariant. pebble expects it not to return. While Open runs
// it panics, and Open turns the panic into ErrCorrupt; once the DB is
// open it logs one line and ends the process with exit code 1, as
// pebble's own logger would, because going on could lose writes without
// a word.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !l.db.running.Load() {
		panic("fatal: " + msg)
	}
	l.db.log.Error().Str("lib", "pebble").Str("dir", l.db.dir).Str("error", msg).Msg("data dir: storage failed; lampgw exits")
	os.Exit(1)
}
