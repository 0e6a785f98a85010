package deploytest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Root returns the repository root: the nearest directory above the
// working directory that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// CopyRepo copies what the checks read from the repository at root into
// a new directory and returns it: the deployment files, deploy/, go.mod,
// go.sum and every Go source. Tests edit the copy to prove that a check
// fails.
func CopyRepo(t testing.TB, root string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if n := d.Name(); rel != "." && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(rel, ".go"), strings.HasPrefix(rel, "deploy/"):
		case rel == "go.mod", rel == "go.sum", rel == ComposeFile, rel == DockerfileName, rel == ".dockerignore":
		default:
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// Edit replaces old by new in the file dir/name, failing t unless old
// occurs exactly once: an edit that silently does nothing would make a
// "the check fails" test pass for the wrong reason.
func Edit(t testing.TB, dir, name, old, new string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("edit %s: %q occurs %d times, want once", name, old, n)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Change is one edit of a file of the deployment: Old, which must occur
// once, becomes New.
type Change struct{ File, Old, New string }

// Replace is the Change of old to new in file, named by its path in the
// repository.
func Replace(file, old, new string) Change { return Change{File: file, Old: old, New: new} }

// Break is one way to break the deployment files, and what the check
// must then say.
type Break struct {
	Name    string
	Changes []Change
	WantErr string // a part of the check's error
}

// CheckFails proves that check can fail: on an unedited copy of the
// repository at root it must pass, so that each failure after is its
// edit's, and on a copy broken by each of breaks it must return an error
// containing WantErr.
func CheckFails(t *testing.T, root string, check func(dir string) error, breaks []Break) {
	t.Helper()
	t.Run("unedited", func(t *testing.T) {
		t.Parallel()
		if err := check(CopyRepo(t, root)); err != nil {
			t.Errorf("unedited copy: %v", err)
		}
	})
	for _, b := range breaks {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			dir := CopyRepo(t, root)
			for _, c := range b.Changes {
				Edit(t, dir, c.File, c.Old, c.New)
			}
			err := check(dir)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", b.WantErr)
			}
			if !strings.Contains(err.Error(), b.WantErr) {
				t.Errorf("got %v\nwant an error containing %q", err, b.WantErr)
			}
			t.Log(err) // what an operator would read, for -v
		})
	}
}
