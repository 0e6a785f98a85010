//go:build unix

package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDir takes an exclusive flock on dir/lock and writes our pid in it.
// flock, unlike pebble's fcntl lock, also refuses a second descriptor in
// the same process, and the kernel drops it when the process dies, so a
// lock file left by a killed lampgw never blocks the next one.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readPid(f)
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: lock %s: %w", path, err)
		}
		if holder != "" {
			return nil, fmt.Errorf("%w: %s is locked by pid %s", ErrLocked, dir, holder)
		}
		return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	// The pid is for the message above and for operators; a failure to
	// write it changes nothing about the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockDir releases the lock: closing the descriptor drops the flock.
// The file stays, holding a stale pid that no one reads without the lock.
func unlockDir(f *os.File) { f.Close() }

func readPid(f *os.File) string {
	b, _ := io.ReadAll(io.LimitReader(f, 32))
	pid := strings.TrimSpace(string(b))
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	return pid
}
