package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/lampgw/lampgw/internal/testwait"
)

const ns = "test/"

func open(t *testing.T, dir string) (*DB, Stats) {
	t.Helper()
	db, stats, err := Open(Options{Dir: dir}, ns)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, stats
}

type record struct{ key, value string }

func scan(t *testing.T, n *Namespace, prefix string) []record {
	t.Helper()
	var got []record
	if err := n.Scan([]byte(prefix), func(k, v []byte) error {
		got = append(got, record{string(k), string(v)})
		return nil
	}); err != nil {
		t.Fatalf("Scan(%q): %v", prefix, err)
	}
	return got
}

func TestRoundTripAcrossReopen(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := filepath.Join(t.TempDir(), "a", "data") // parents are made
	db, stats := open(t, dir)
	if len(stats.Keys) != 0 {
		t.Errorf("new dir: got keys %v, want none", stats.Keys)
	}
	n := db.Namespace(ns)
	other := db.Namespace("tesu/") // sorts right after "test/"
	for _, r := range []record{{"a", "1"}, {"ab", "2"}, {"b", "3"}} {
		if err := n.Set([]byte(r.key), []byte(r.value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Put("x", []byte("9")); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	testwait.Goroutines(t, before)

	db, stats = open(t, dir)
	if got, want := stats.Keys, map[string]int{ns: 2, "": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Stats.Keys: got %v, want %v", got, want)
	}
	n = db.Namespace(ns)
	if got, want := scan(t, n, ""), []record{{"a", "1"}, {"ab", "2"}}; !slices.Equal(got, want) {
		t.Errorf("after reopen: got %v, want %v", got, want)
	}
	if got, want := scan(t, n, "a"), []record{{"a", "1"}, {"ab", "2"}}; !slices.Equal(got, want) {
		t.Errorf("Scan(a): got %v, want %v", got, want)
	}
	if err := n.DeletePrefix([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := scan(t, n, ""); len(got) != 0 {
		t.Errorf("after DeletePrefix(a): got %v, want nothing", got)
	}
	var ids []string
	if err := db.Namespace("tesu/").All(func(id string, data []byte) error {
		ids = append(ids, id+"="+string(data))
		return nil
	}); err != nil || !slices.Equal(ids, []string{"x=9"}) {
		t.Errorf("All: got %v (%v), want [x=9]: DeletePrefix must stay in its namespace", ids, err)
	}
}

// TestPutEmptyDeletes is the devices.Store contract: empty data deletes.
func TestPutEmptyDeletes(t *testing.T) {
	db, _ := open(t, t.TempDir())
	n := db.Namespace(ns)
	n.Put("lamp1", []byte("pending"))
	if err := n.Put("lamp1", nil); err != nil {
		t.Fatal(err)
	}
	if got := scan(t, n, ""); len(got) != 0 {
		t.Errorf("after Put(id, nil): got %v, want nothing", got)
	}
	stop := errors.New("stop")
	n.Put("a", []byte("1"))
	n.Put("b", []byte("2"))
	calls := 0
	if err := n.All(func(string, []byte) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("All with a failing fn: got %v after %d calls, want stop after 1", err, calls)
	}
}

// TestSyncLoop waits for the loop's observable effect: the dirty mark a
// write sets is cleared by a sync within SyncInterval.
func TestSyncLoop(t *testing.T) {
	db, _, err := Open(Options{Dir: t.TempDir(), SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Namespace(ns).Set([]byte("k"), []byte("v"))
	if !db.dirty.Load() {
		t.Fatal("a write did not mark the DB dirty")
	}
	testwait.Until(t, "the sync loop to sync the write", func() bool { return !db.dirty.Load() })
	if err := db.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

func TestClosed(t *testing.T) {
	db, _, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n := db.Namespace(ns)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	for name, err := range map[string]error{
		"Set":          n.Set([]byte("k"), []byte("v")),
		"Delete":       n.Delete([]byte("k")),
		"DeletePrefix": n.DeletePrefix([]byte("k")),
		"Put":          n.Put("k", []byte("v")),
		"Scan":         n.Scan(nil, func(k, v []byte) error { return nil }),
		"All":          n.All(func(string, []byte) error { return nil }),
		"Sync":         db.Sync(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	db, _ := open(t, dir)
	_, _, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second Open: got %v, want ErrLocked naming %s and our pid", err, dir)
	}
	if _, err := MoveAside(dir, time.Now()); !errors.Is(err, ErrLocked) {
		t.Errorf("MoveAside of an open dir: got %v, want ErrLocked", err)
	}
	db.Close()
	db2, _, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	db2.Close()
}

func TestNotDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, dir := range []string{file, filepath.Join(file, "data")} {
		if _, _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrNotDir) || !strings.Contains(err.Error(), dir) {
			t.Errorf("Open(%s): got %v, want ErrNotDir naming it", dir, err)
		}
		if _, err := MoveAside(dir, time.Now()); !errors.Is(err, ErrNotDir) {
			t.Errorf("MoveAside(%s): got %v, want ErrNotDir", dir, err)
		}
	}
}

// populated makes a data dir with records both in tables (flushed) and
// in the log only, and returns it.
func populated(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, _, err := Open(Options{Dir: dir}, ns)
	if err != nil {
		t.Fatal(err)
	}
	n := db.Namespace(ns)
	for i := range 2000 {
		n.Set(fmt.Appendf(nil, "lamp/l%d/brightness", i), []byte("512"))
	}
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		n.Set(fmt.Appendf(nil, "lamp/m%d/brightness", i), []byte("512"))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// eachFile applies f to every file in the database whose name contains
// part.
func eachFile(t *testing.T, dir, part string, f func(path string, data []byte) []byte) {
	t.Helper()
	db := filepath.Join(dir, DBDir)
	ents, err := os.ReadDir(db)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !strings.Contains(e.Name(), part) || e.Name() == "LOCK" {
			continue
		}
		path := filepath.Join(db, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f(path, data), 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no file with %q in %s", part, db)
	}
}

// garble flips bits all through data, keeping its length.
func garble(_ string, data []byte) []byte {
	for i := 0; i < len(data); i += 97 {
		data[i] ^= 0x5a
	}
	return data
}

func half(_ string, data []byte) []byte { return data[:len(data)/2] }

func TestDamageIsErrCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"garbage in every file", func(t *testing.T, dir string) { eachFile(t, dir, "", garble) }},
		{"every file empty", func(t *testing.T, dir string) {
			eachFile(t, dir, "", func(string, []byte) []byte { return nil })
		}},
		{"truncated MANIFEST", func(t *testing.T, dir string) { eachFile(t, dir, "MANIFEST", half) }},
		{"truncated tables", func(t *testing.T, dir string) { eachFile(t, dir, ".sst", half) }},
		{"garbage in the tables", func(t *testing.T, dir string) { eachFile(t, dir, ".sst", garble) }},
		{"garbage in the MANIFEST", func(t *testing.T, dir string) { eachFile(t, dir, "MANIFEST", garble) }},
		{"markers deleted", func(t *testing.T, dir string) {
			eachFile(t, dir, "marker.", func(path string, data []byte) []byte { os.Remove(path); return data })
			// eachFile wrote them back; remove them for good.
			ents, _ := os.ReadDir(filepath.Join(dir, DBDir))
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), "marker.") {
					os.Remove(filepath.Join(dir, DBDir, e.Name()))
				}
			}
		}},
		{"random files, no database", func(t *testing.T, dir string) {
			db := filepath.Join(dir, DBDir)
			os.RemoveAll(db)
			os.Mkdir(db, 0o755)
			for _, name := range []string{"000001.log", "000002.sst", "MANIFEST-000003", "CURRENT", "notes.txt"} {
				os.WriteFile(filepath.Join(db, name), garble("", make([]byte, 4096)), 0o644)
			}
		}},
		{"pebble is a file", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, DBDir))
			os.WriteFile(filepath.Join(dir, DBDir), []byte("x"), 0o644)
		}},
		{"a database that is not ours", func(t *testing.T, dir string) {
			db := filepath.Join(dir, DBDir)
			os.RemoveAll(db)
			p, err := pebble.Open(db, &pebble.Options{Logger: pebbleLogger{db: &DB{}}})
			if err != nil {
				t.Fatal(err)
			}
			p.Set([]byte("k"), []byte("v"), pebble.Sync)
			p.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := populated(t)
			tc.damage(t, dir)
			before := listing(t, dir)
			_, _, err := Open(Options{Dir: dir}, ns)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Open: got %v, want one line of ErrCorrupt naming %s", err, dir)
			}
			// Open reads before it writes: a refused dir is as it was
			// found, for a post-mortem.
			if after := listing(t, dir); !slices.Equal(after, before) {
				t.Errorf("files after a refused Open:\ngot  %v\nwant %v", after, before)
			}
			moved, err := MoveAside(dir, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
			if err != nil || moved != dir+".broken-20260102T030405Z" {
				t.Fatalf("MoveAside: got %q, %v; want %s.broken-20260102T030405Z", moved, err, dir)
			}
			db, stats := open(t, dir)
			if len(stats.Keys) != 0 {
				t.Errorf("after MoveAside: got keys %v, want an empty store", stats.Keys)
			}
			db.Close()
		})
	}
}

// listing is the names and sizes of the files of the database (but the
// lock files, which Open may create).
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, DBDir), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return nil
		}
		fi, _ := d.Info()
		out = append(out, fmt.Sprintf("%s:%d", d.Name(), fi.Size()))
		return nil
	})
	return out
}

// TestTornLogTail is a crash in the middle of a log write: the records
// before the tear are back, and Open does not call it damage.
func TestTornLogTail(t *testing.T) {
	dir := populated(t)
	eachFile(t, dir, ".log", func(_ string, data []byte) []byte { return data[:len(data)*3/4] })
	db, stats := open(t, dir)
	// The 2000 flushed records are in tables; of the 100 in the log,
	// those before the tear.
	if got := stats.Keys[ns]; got < 2000 || got >= 2100 {
		t.Errorf("after a torn log: got %d records, want the 2000 flushed and some of the 100 logged", got)
	}
	db.Close()
}

func TestNewerFormat(t *testing.T) {
	dir := populated(t)
	db, _ := open(t, dir)
	db.pdb.Set(formatKey, []byte("2"), pebble.Sync)
	db.Close()
	if _, _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrNewerFormat) {
		t.Errorf("Open: got %v, want ErrNewerFormat", err)
	}
}

// TestCrashDuringCreate is a first start that died before its database
// was renamed into place: the leftover is removed and a fresh one made.
func TestCrashDuringCreate(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, newDBDir), 0o755)
	os.WriteFile(filepath.Join(dir, newDBDir, "000001.log"), []byte("half"), 0o644)
	db, _ := open(t, dir)
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, newDBDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: got %v, want it gone", newDBDir, err)
	}
}

func TestMoveAside(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if moved, err := MoveAside(dir, time.Now()); moved != "" || err != nil {
		t.Errorf("MoveAside of a missing dir: got %q, %v; want \"\", nil", moved, err)
	}
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))
	want := []string{"data.broken-20260506T050809Z", "data.broken-20260506T050809Z-2", "data.broken-20260506T050809Z-3"}
	for i, w := range want {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "mark"), []byte(strconv.Itoa(i)), 0o644)
		moved, err := MoveAside(dir, at)
		if err != nil || moved != filepath.Join(parent, w) {
			t.Fatalf("MoveAside #%d: got %q, %v; want %s", i+1, moved, err, w)
		}
		if b, _ := os.ReadFile(filepath.Join(moved, "mark")); string(b) != strconv.Itoa(i) {
			t.Errorf("%s holds mark %q, want %d", w, b, i)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after MoveAside: got %v, want it gone", dir, err)
	}
}

func TestNamespacePrefixRules(t *testing.T) {
	db, _ := open(t, t.TempDir())
	for _, p := range []string{"", "\x00x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Namespace(%q): got no panic, want one", p)
				}
			}()
			db.Namespace(p)
		}()
	}
}

func TestUpperBound(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a/", "a0"},
		{"a\xff", "b"},
		{"\xff\xff", ""},
	}
	for _, tc := range tests {
		if got := string(upperBound([]byte(tc.in))); got != tc.want {
			t.Errorf("upperBound(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkSet(b *testing.B) {
	db, _, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n := db.Namespace(ns)
	key := []byte("retained/lamp/lamp1/brightness")
	value := []byte(`{"payload":"NTEy","topic_name":"lamp/lamp1/brightness"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := n.Set(key, value); err != nil {
			b.Fatal(err)
		}
	}
}
