package lampsim

import "errors"

// Errors of the simulator. Callers test them with errors.Is.
var (
	// ErrInvalidOptions means an Options field is out of range; it is
	// wrapped with the field and the value.
	ErrInvalidOptions = errors.New("lampsim: invalid options")
	// ErrLineTooLong means a peer sent a line longer than Options.MaxLine;
	// like firmware with a fixed buffer, the lamp drops that connection.
	ErrLineTooLong = errors.New("lampsim: line too long")
	// ErrSlowPeer means a peer did not read the lamp's reports and its
	// queue filled up; the connection is dropped rather than stalling the
	// lamp.
	ErrSlowPeer = errors.New("lampsim: peer too slow to read reports")
	// ErrServerClosed is returned by Serve on a Server that was closed
	// or already served.
	ErrServerClosed = errors.New("lampsim: server closed")
)
