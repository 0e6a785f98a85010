package broker

import (
	"errors"
	"fmt"

	"github.com/lampgw/lampgw/internal/dispatch"
)

var (
	// ErrClosed is returned by Start, Publish and Subscribe after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("broker: already started")
	// ErrInvalidOptions wraps a description of an Options field New refused.
	ErrInvalidOptions = errors.New("broker: invalid options")
	// ErrInvalidTopic, ErrInvalidFilter, ErrInvalidQoS and ErrNilHandler
	// refuse bad Publish and Subscribe arguments; they are the same values
	// in both bus adapters (see package internal/dispatch).
	ErrInvalidTopic  = dispatch.ErrInvalidTopic
	ErrInvalidFilter = dispatch.ErrInvalidFilter
	ErrInvalidQoS    = dispatch.ErrInvalidQoS
	ErrNilHandler    = dispatch.ErrNilHandler
)

// ListenError is returned by Start when a listener cannot be bound, such
// as a port in use. Listener is "mqtt", "ws", "mqtts" or "wss"; Err is
// the net error, so errors.Is(err, syscall.EADDRINUSE) works through it.
type ListenError struct {
	Listener string
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("broker: %s listener on %q: %v", e.Listener, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }
