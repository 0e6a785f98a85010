//go:build !unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir/lock without locking it: pebble's own LOCK file in
// dir/pebble still keeps a second process out, with a less clear error.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return f, nil
}

func unlockDir(f *os.File) { f.Close() }
