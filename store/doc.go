// Package store is lampgw's data dir: one pebble database whose writes
// never wait for the disk, synced on a timer, and read whole before it
// is opened for writing.
//
// A data dir holds:
//
//	lock        flock held while a lampgw has the dir open; holds its pid
//	pebble/     the database (github.com/cockroachdb/pebble/v2)
//	pebble.new/ a database being made; left only by a crash during the
//	            very first start, and then removed
//
// Callers keep their records apart, each in a Namespace: the broker's
// retained messages and sessions under "mqtt/" and the registry's pending
// commands under "devices/pending/" (see package gateway). The store's
// own record, the format mark "\x00format" = "1", is written when the
// database is made.
//
// # Durability
//
// A write goes into pebble's write-ahead log without Sync: it returns
// once pebble has queued it, and pebble's log writer hands it to the
// kernel at once, in the background. A background loop fsyncs the log
// every SyncInterval (DefaultSyncInterval, 250 ms) when something was
// written since the last time, and Close syncs too. So:
//
//   - A killed process (kill -9, a panic, the OOM killer) loses nothing
//     the kernel already had: everything written more than a few
//     milliseconds before is back after a restart. lampgw promises one
//     second.
//   - A power loss or kernel crash loses at most the writes of the last
//     SyncInterval plus the fsync in progress.
//   - A clean stop (Close) loses nothing.
//
// Writes do not sync themselves because the broker writes on the
// publisher's goroutine (mochi calls its storage hook there): a Sync
// write would put an fsync, milliseconds on an SD card, into the read
// loop of every lamp report.
//
// # Damage
//
// Open locks the dir, opens the database read-only, checks the format
// mark and reads every record, which makes pebble check every block's
// checksum, and only then opens it for writing: pebble opened for
// writing deletes the files its MANIFEST does not name, so a damaged
// MANIFEST would otherwise cost data before anyone saw the damage. What
// fails is ErrCorrupt naming the path, pebble's panics on garbage files
// included; MoveAside sets such a dir aside. A damaged tail of the log is
// what a crash in the middle of a write leaves, and pebble drops the
// records from the damage on, as it should after a crash.
//
// Once open, a failure pebble cannot go on from (its Logger.Fatalf: a
// failed MANIFEST sync, a broken invariant) logs one line and ends the
// process with exit code 1, as pebble's own logger would.
//
// # Why pebble
//
// pebble is CockroachDB's storage engine, maintained by Cockroach Labs:
// a write-ahead log with group commit, checksummed blocks, compactions
// that bring a key overwritten a million times (a lamp's brightness)
// back to one copy on disk, and a sync that we can time ourselves
// (LogData(nil, Sync)). It is Go; with cgo it compresses with the C zstd
// library, without cgo (the static Docker build) with a Go one. v2 is
// the maintained line; mochi's own pebble hook pins v1.1, and we do not
// use that hook (see broker/storage.go). badger needs its value log
// garbage-collected by its user and wants far more memory; bolt commits
// with an fsync per transaction and its file does not shrink.
package store
