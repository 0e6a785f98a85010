package broker

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by Start, Publish and Subscribe after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("broker: already started")
	// ErrInvalidOptions wraps a description of an Options field New refused.
	ErrInvalidOptions = errors.New("broker: invalid options")
	// ErrInvalidTopic means a topic is empty, too long, not UTF-8, holds a
	// wildcard or NUL, or starts with '$' (reserved for the broker).
	ErrInvalidTopic = errors.New("broker: invalid topic")
	// ErrInvalidFilter means a topic filter breaks the MQTT rules for
	// wildcards or is a shared subscription, which InlineBus cannot route.
	ErrInvalidFilter = errors.New("broker: invalid topic filter")
	// ErrInvalidQoS means a QoS above 2.
	ErrInvalidQoS = errors.New("broker: invalid QoS")
	// ErrNilHandler means Subscribe was given a nil handler.
	ErrNilHandler = errors.New("broker: nil handler")
)

// ListenError is returned by Start when a listener cannot be bound, such
// as a port in use. Listener is "mqtt" or "ws"; Err is the net error, so
// errors.Is(err, syscall.EADDRINUSE) works through it.
type ListenError struct {
	Listener string
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("broker: %s listener on %q: %v", e.Listener, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }
