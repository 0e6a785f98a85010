package store

import (
	"bytes"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Namespace is the part of a DB whose keys start with one prefix. Its
// methods take and return keys without the prefix. Writes return once
// the operating system has them queued, without waiting for the disk
// (see DefaultSyncInterval).
type Namespace struct {
	db     *DB
	prefix []byte
}

// Namespace returns the records under prefix. prefix must not be empty
// nor start with a 0 byte, which the store keeps for itself, and no
// namespace's prefix may start with another's.
func (db *DB) Namespace(prefix string) *Namespace {
	if prefix == "" || prefix[0] == 0 {
		panic("store: Namespace prefix must be non-empty and not start with a 0 byte")
	}
	return &Namespace{db: db, prefix: []byte(prefix)}
}

func (n *Namespace) key(k []byte) []byte {
	return append(bytes.Clone(n.prefix), k...)
}

// Set stores value under key, replacing what was there.
func (n *Namespace) Set(key, value []byte) error {
	return n.db.write(func(p *pebble.DB) error { return p.Set(n.key(key), value, pebble.NoSync) })
}

// Delete removes key; a missing key is no error.
func (n *Namespace) Delete(key []byte) error {
	return n.db.write(func(p *pebble.DB) error { return p.Delete(n.key(key), pebble.NoSync) })
}

// DeletePrefix removes every key that starts with prefix.
func (n *Namespace) DeletePrefix(prefix []byte) error {
	start := n.key(prefix)
	end := upperBound(start)
	if end == nil {
		return errors.New("store: DeletePrefix: a prefix of only 0xff bytes has no end")
	}
	return n.db.write(func(p *pebble.DB) error { return p.DeleteRange(start, end, pebble.NoSync) })
}

// Scan calls fn with every record whose key starts with prefix, in key
// order, until fn returns an error, which Scan returns. key and value
// are valid only during the call; fn may not write to the DB.
func (n *Namespace) Scan(prefix []byte, fn func(key, value []byte) error) error {
	skip := len(n.prefix)
	return n.db.scan(n.key(prefix), func(k, v []byte) error { return fn(k[skip:], v) })
}

// Put stores data as id's record, or deletes the record when data is
// empty. With All it makes a Namespace a devices.Store.
func (n *Namespace) Put(id string, data []byte) error {
	if len(data) == 0 {
		return n.Delete([]byte(id))
	}
	return n.Set([]byte(id), data)
}

// All calls fn with every record's id and a copy of its data, until fn
// returns an error, which All returns.
func (n *Namespace) All(fn func(id string, data []byte) error) error {
	return n.Scan(nil, func(k, v []byte) error { return fn(string(k), bytes.Clone(v)) })
}
