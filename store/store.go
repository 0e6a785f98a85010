package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"
)

// DefaultSyncInterval is how often, at most, written data is fsynced.
// Writes reach the operating system at once (a killed process loses
// nothing); the sync bounds what a power loss or kernel crash can take
// to the last quarter second, at a cost of at most four fsyncs a second
// while something changes and none while nothing does.
const DefaultSyncInterval = 250 * time.Millisecond

// Names inside the data dir.
const (
	// DBDir is the pebble database.
	DBDir = "pebble"
	// newDBDir is where a fresh database is made before it is renamed to
	// DBDir, so a DBDir that exists is always a whole database.
	newDBDir = "pebble.new"
	// lockName is the file whose lock says the dir is in use; it holds
	// the pid of the process that has it.
	lockName = "lock"
)

// Keys of the store's own records. Every Namespace prefix is non-empty
// and does not start with a 0 byte, so these cannot collide with them.
var formatKey = []byte("\x00format")

// format is the version of the key layout, written when a database is
// made and checked on every Open.
const format = "1"

// Options configure Open.
type Options struct {
	// Dir is the data dir, created (with its parents) if missing. The
	// database is Dir/pebble; Dir/lock marks the dir in use.
	Dir string
	// SyncInterval is how often, at most, writes are fsynced; 0 means
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// Logger receives pebble's lines (info at debug level) and the
	// store's own. The zero Logger discards them.
	Logger zerolog.Logger
}

// DB is an open data dir. Its methods are safe for concurrent use; after
// Close they return ErrClosed.
type DB struct {
	dir  string
	log  zerolog.Logger
	lock *os.File

	// mu orders every use of pdb (read lock) before Close (write lock):
	// pebble panics on a closed database.
	mu     sync.RWMutex
	pdb    *pebble.DB
	closed bool

	running atomic.Bool // Open has succeeded (see pebbleLogger.Fatalf)
	dirty   atomic.Bool // written since the last sync
	quit    chan struct{}
	syncers sync.WaitGroup
	syncLog zerolog.Logger // sampled: a failing disk fails every tick
}

// Stats is what Open found in the data dir.
type Stats struct {
	// Keys counts the records of each namespace, by the prefix given to
	// Namespace; records of no namespace are under "".
	Keys map[string]int
	// Bytes is the size of every key and value read.
	Bytes int64
	// Took is how long Open took, the full read included.
	Took time.Duration
}

// Open locks dir, opens its database (making one if dir holds none) and
// reads every record once, so damage shows here rather than later. It
// fails with ErrNotDir, ErrLocked, ErrCorrupt, ErrNewerFormat or the
// file system's error, each naming the path. The prefixes are those the
// caller will give Namespace, for Stats.
func Open(opts Options, prefixes ...string) (*DB, Stats, error) {
	start := time.Now()
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	dir := filepath.Clean(opts.Dir)
	if err := CheckDir(dir); err != nil {
		return nil, Stats{}, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, Stats{}, fmt.Errorf("store: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, Stats{}, err
	}
	db := &DB{dir: dir, log: opts.Logger, lock: lock, quit: make(chan struct{})}
	db.syncLog = db.log.Sample(&zerolog.BurstSampler{Burst: 1, Period: time.Minute})
	stats, err := db.open(prefixes)
	if err != nil {
		unlockDir(lock)
		return nil, Stats{}, err
	}
	stats.Took = time.Since(start)
	db.running.Store(true)
	db.syncers.Add(1)
	go db.syncLoop(opts.SyncInterval)
	return db, stats, nil
}

// CheckDir returns ErrNotDir, naming the path, if dir or a directory
// above it is not a directory. A dir that does not exist yet, or cannot
// be looked at, passes: Open creates the first and reports the second.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%w: %s is a file", ErrNotDir, dir)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: a parent of %s is a file", ErrNotDir, dir)
	}
	return nil
}

// open opens dir/pebble, first making it in dir/pebble.new if it does
// not exist. It opens it read-only first and reads it all (verify):
// pebble opened for writing deletes the files its MANIFEST does not
// name, so a damaged MANIFEST would cost the tables it lost track of
// before anyone could look at them.
func (db *DB) open(prefixes []string) (Stats, error) {
	path := filepath.Join(db.dir, DBDir)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := db.create(path); err != nil {
			return Stats{}, err
		}
	case err != nil:
		return Stats{}, fmt.Errorf("store: %w", err)
	case !fi.IsDir():
		return Stats{}, fmt.Errorf("%w: %s is a file, want pebble's directory", ErrCorrupt, path)
	}
	// A dir/pebble without a database was damaged (a new one is renamed
	// into place whole), so it must exist; read-only refuses to make one.
	ro := db.pebbleOptions()
	ro.ReadOnly = true
	pdb, err := openPebble(path, ro)
	if err != nil {
		return Stats{}, err
	}
	stats, err := verify(pdb, path, prefixes)
	if cerr := closePebble(pdb); err == nil && cerr != nil {
		err = corrupt(path, cerr)
	}
	if err != nil {
		return Stats{}, err
	}
	rw := db.pebbleOptions()
	rw.ErrorIfNotExists = true
	rw.FormatMajorVersion = pebble.FormatNewest
	if db.pdb, err = openPebble(path, rw); err != nil {
		return Stats{}, err
	}
	return stats, nil
}

// create makes an empty database in dir/pebble.new, marks it with the
// format and renames it to path, so a crash leaves either no database
// or a whole one, never a half-made one that a later Open would take for
// damage.
func (db *DB) create(path string) error {
	tmp := filepath.Join(db.dir, newDBDir)
	// A leftover is a creation that crashed: nothing was stored in it.
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	opts := db.pebbleOptions()
	opts.FormatMajorVersion = pebble.FormatNewest
	pdb, err := openPebble(tmp, opts)
	if err != nil {
		return err
	}
	if err := pdb.Set(formatKey, []byte(format), pebble.Sync); err != nil {
		pdb.Close()
		return fmt.Errorf("store: %s: %w", tmp, err)
	}
	if err := pdb.Close(); err != nil {
		return fmt.Errorf("store: %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := syncDir(db.dir); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	db.log.Info().Str("path", path).Msg("data dir: new database")
	return nil
}

func (db *DB) pebbleOptions() *pebble.Options {
	return &pebble.Options{
		Logger: pebbleLogger{db: db},
		EventListener: &pebble.EventListener{
			// pebble's default is Logger.Fatalf: the read that met the
			// damage fails with a corruption error, which is the one
			// to report.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				db.log.Error().Str("path", info.Path).Err(info.Details).Msg("data dir: corruption found")
			},
		},
	}
}

// openPebble is pebble.Open that turns a panic into ErrCorrupt: pebble
// checks its files with assertions, and a garbage file can trip one.
func openPebble(path string, opts *pebble.Options) (pdb *pebble.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			pdb, err = nil, fmt.Errorf("%w: %s: pebble panicked: %v", ErrCorrupt, path, r)
		}
	}()
	pdb, err = pebble.Open(path, opts)
	if err != nil {
		if errors.Is(err, pebble.ErrDBDoesNotExist) {
			return nil, fmt.Errorf("%w: %s holds no database", ErrCorrupt, path)
		}
		return nil, corrupt(path, err)
	}
	return pdb, nil
}

// corrupt wraps a pebble error: its own corruption errors and anything
// that is not the file system's (permission denied, disk full) mean the
// files are damaged.
func corrupt(path string, err error) error {
	var pe *fs.PathError
	if !pebble.IsCorruptionError(err) && errors.As(err, &pe) {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	// pebble's errors may span lines; lampgw reports one.
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, path, strings.Join(strings.Fields(err.Error()), " "))
}

// verify checks the format mark and reads every record once: pebble
// checks each block's checksum as it reads it, so a damaged file fails
// here, at start, with the data dir named, rather than on some later
// read.
func verify(pdb *pebble.DB, path string, prefixes []string) (stats Stats, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: pebble panicked: %v", ErrCorrupt, path, r)
		}
	}()
	v, closer, err := pdb.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		// A database we made has it from the start: without it, the
		// MANIFEST lost track of files, or the database is not ours.
		return Stats{}, fmt.Errorf("%w: %s: the database has no lampgw format mark (a damaged MANIFEST, or not lampgw's database)", ErrCorrupt, path)
	case err != nil:
		return Stats{}, corrupt(path, err)
	}
	ok := string(v) == format
	got := string(v)
	closer.Close()
	if !ok {
		return Stats{}, fmt.Errorf("%w: format %q in %s, this lampgw knows %q", ErrNewerFormat, got, path, format)
	}

	stats.Keys = make(map[string]int)
	it, err := pdb.NewIter(nil)
	if err != nil {
		return Stats{}, corrupt(path, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		v, err := it.ValueAndErr()
		if err != nil {
			break // it.Error reports it
		}
		stats.Bytes += int64(len(k) + len(v))
		if bytes.Equal(k, formatKey) {
			continue
		}
		ns := ""
		for _, p := range prefixes {
			if bytes.HasPrefix(k, []byte(p)) {
				ns = p
				break
			}
		}
		stats.Keys[ns]++
	}
	err = it.Error()
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Stats{}, corrupt(path, err)
	}
	return stats, nil
}

// Dir returns the data dir.
func (db *DB) Dir() string { return db.dir }

// Sync makes every write so far durable: it returns once the database's
// log is fsynced up to them. The store also syncs on its own, every
// SyncInterval after a write, and in Close.
func (db *DB) Sync() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	// A log record with no data, written with Sync, syncs the log up to
	// it, with every write before it (pebble's commit pipeline keeps
	// them in order).
	if err := db.pdb.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

func (db *DB) syncLoop(interval time.Duration) {
	defer db.syncers.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-db.quit:
			return
		case <-tick.C:
			if !db.dirty.Swap(false) {
				continue
			}
			if err := db.Sync(); err != nil && !errors.Is(err, ErrClosed) {
				db.dirty.Store(true) // try again next tick
				db.syncLog.Error().Err(err).Str("dir", db.dir).Msg("data dir: sync failed")
			}
		}
	}
}

// Close syncs and closes the database and unlocks the data dir. It is
// idempotent; calls after the first return nil.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	close(db.quit)
	db.syncers.Wait()
	// pebble's Close syncs the log (Options.NoSyncOnClose is false).
	err := closePebble(db.pdb)
	unlockDir(db.lock)
	if err != nil {
		return fmt.Errorf("store: close %s: %w", db.dir, err)
	}
	return nil
}

// closePebble closes pdb, turning a panic (a leaked iterator, a second
// close) into an error.
func closePebble(pdb *pebble.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble panicked on close: %v", r)
		}
	}()
	return pdb.Close()
}

// write runs a write under the read lock, so that it cannot meet Close.
func (db *DB) write(f func(*pebble.DB) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	if err := f(db.pdb); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	db.dirty.Store(true)
	return nil
}

// scan calls fn with every record whose key starts with prefix, in key
// order, stopping at fn's first error. key and value are valid only
// during the call.
func (db *DB) scan(prefix []byte, fn func(key, value []byte) error) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			break
		}
		if err = fn(it.Key(), v); err != nil {
			break
		}
	}
	if ierr := it.Error(); ierr != nil && err == nil {
		err = fmt.Errorf("store: %w", ierr)
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("store: %w", cerr)
	}
	return err
}

// upperBound is the first key after every key that starts with prefix,
// or nil (no bound) when there is none: prefix is all 0xff bytes.
func upperBound(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
