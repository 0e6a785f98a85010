package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MoveAside renames dir to dir.broken-<UTC time, to the second> (with
// -2, -3... when that exists) and returns the new path, so Open starts
// afresh while the old data stays for a post-mortem or a restore. It
// refuses with ErrLocked a dir that is in use, and with ErrNotDir a path
// that is a file. A dir that does not exist is left alone: "" and nil.
func MoveAside(dir string, now time.Time) (string, error) {
	dir = filepath.Clean(dir)
	if err := CheckDir(dir); err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	// Moving a dir that another lampgw has open would leave it writing
	// into the moved one. A dir we cannot even make a lock file in is
	// moved all the same: no lampgw can be using it either.
	lock, err := lockDir(dir)
	switch {
	case errors.Is(err, ErrLocked):
		return "", err
	case err == nil:
		defer unlockDir(lock)
	}
	base := dir + ".broken-" + now.UTC().Format("20060102T150405Z")
	to := base
	for i := 2; ; i++ {
		// rename(2) would replace an empty directory at to: look first.
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if i > 100 {
			return "", fmt.Errorf("store: move %s aside: %s-2..%d all exist", dir, base, i-1)
		}
		to = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(dir, to); err != nil {
		return "", fmt.Errorf("store: move aside: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return to, fmt.Errorf("store: moved %s to %s, but syncing their parent: %w", dir, to, err)
	}
	return to, nil
}
