package tlsconf

import (
	"errors"
	"fmt"
	"os"
)

var (
	// ErrNoCertificate means a certificate or CA file holds no PEM
	// CERTIFICATE block.
	ErrNoCertificate = errors.New("tlsconf: no PEM CERTIFICATE block")
	// ErrFileTooLarge means a file is larger than MaxFileSize.
	ErrFileTooLarge = fmt.Errorf("tlsconf: file larger than %d bytes", MaxFileSize)
	// ErrHandshakeTimeout ends a connection from NewListener whose peer
	// did not complete the TLS handshake in time. It is a net.Error whose
	// Timeout reports true, and errors.Is(err, os.ErrDeadlineExceeded)
	// holds, as for an expired read deadline, so servers count it as
	// their own handshake timeout.
	ErrHandshakeTimeout error = handshakeTimeoutError{}
)

type handshakeTimeoutError struct{}

func (handshakeTimeoutError) Error() string        { return "tlsconf: TLS handshake timed out" }
func (handshakeTimeoutError) Timeout() bool        { return true }
func (handshakeTimeoutError) Temporary() bool      { return true }
func (handshakeTimeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// Role says which of the three files a FileError is about.
type Role string

// The files Options names.
const (
	RoleCert     Role = "certificate"
	RoleKey      Role = "key"
	RoleClientCA Role = "client CA"
)

// FileError is returned by New and Reload when a file cannot be read or
// does not hold what it should. A key that does not match the
// certificate is the key file's error.
type FileError struct {
	Role Role
	File string
	Err  error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("tlsconf: %s file %q: %v", e.Role, e.File, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }
