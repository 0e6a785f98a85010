package store

import "errors"

var (
	// ErrClosed is returned by every method of a DB after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLocked means another process (or another DB in this one) has
	// the data dir open. Open names the holder's pid when it can.
	ErrLocked = errors.New("store: data dir in use by another process")
	// ErrCorrupt means the database in the data dir cannot be read: a
	// damaged or truncated file, files that are not a database, or a
	// database without lampgw's format mark. The wrapped text says what
	// pebble found. MoveAside sets such a dir aside.
	ErrCorrupt = errors.New("store: data dir corrupt")
	// ErrNotDir means the data dir, or a directory above it, is a file:
	// a setting to fix, not data to repair.
	ErrNotDir = errors.New("store: not a directory")
	// ErrNewerFormat means the data dir was written by a newer lampgw,
	// whose format this one does not know.
	ErrNewerFormat = errors.New("store: data dir written by a newer lampgw")
)
