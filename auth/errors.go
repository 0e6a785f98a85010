package auth

import (
	"errors"
	"strconv"
)

var (
	// ErrBadFile is matched (errors.Is) by every *FileError.
	ErrBadFile = errors.New("auth: bad users file")
	// ErrBadCredentials is Verifier's answer to an unknown user name or a
	// wrong password; it does not say which.
	ErrBadCredentials = errors.New("auth: bad user name or password")
	// ErrTooManyFailures is Verifier's answer, without checking the
	// password, to an address that failed too often lately.
	ErrTooManyFailures = errors.New("auth: too many failed logins from this address")
	// ErrBadPrefix is returned by NewACL for a prefix that
	// topics.CheckPrefix refuses.
	ErrBadPrefix = errors.New("auth: invalid topic prefix")
)

// FileError is a problem in a users file. Its text names the file, the
// line and the key: `users.yaml:4: role: want admin, app or viewer, got
// "root"`.
type FileError struct {
	// File is the path the file was read from.
	File string
	// Line is where in the file; 0 when the problem is not at one line.
	Line int
	// Key is the key the problem is about; "" when it is not about one.
	Key string
	// Err says what is wrong.
	Err error
}

func (e *FileError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	return s + ": " + e.Err.Error()
}

func (e *FileError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBadFile) true for every FileError.
func (e *FileError) Is(target error) bool { return target == ErrBadFile }
