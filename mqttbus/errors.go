package mqttbus

import (
	"errors"

	"github.com/lampgw/lampgw/internal/dispatch"
)

var (
	// ErrInvalidOptions wraps a description of an Options field New refused.
	ErrInvalidOptions = errors.New("mqttbus: invalid options")
	// ErrConnect is returned by New when the first connection fails; the
	// error names the broker URL (password removed) and wraps paho's.
	ErrConnect = errors.New("mqttbus: cannot connect")
	// ErrClosed is returned by Publish and Subscribe after Close.
	ErrClosed = errors.New("mqttbus: closed")
	// ErrTimeout means the broker did not acknowledge within
	// Options.AckTimeout. A publish may still be delivered later.
	ErrTimeout = errors.New("mqttbus: no acknowledgement from broker in time")
	// ErrNotConnected means the connection is down (paho is reconnecting).
	ErrNotConnected = errors.New("mqttbus: not connected")
	// ErrRefused means the broker refused a subscription: SUBACK 0x80,
	// typically an ACL, or a code MQTT 3.1.1 does not define.
	ErrRefused = errors.New("mqttbus: subscription refused by broker")
	// ErrInvalidTopic, ErrInvalidFilter, ErrInvalidQoS and ErrNilHandler
	// refuse bad Publish and Subscribe arguments; they are the same values
	// in both bus adapters (see package internal/dispatch).
	ErrInvalidTopic  = dispatch.ErrInvalidTopic
	ErrInvalidFilter = dispatch.ErrInvalidFilter
	ErrInvalidQoS    = dispatch.ErrInvalidQoS
	ErrNilHandler    = dispatch.ErrNilHandler
)
