package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/rs/zerolog"
)

// Options configure a Gateway. The zero value of each field is documented;
// cmd/lampgw fills these from flags, env and the config file.
type Options struct {
	// MQTTAddr is the plain MQTT listener (e.g. ":1883"); "" disables it.
	MQTTAddr string
	// WSAddr is the MQTT-over-WebSocket listener, path /mqtt; "" disables it.
	WSAddr string
	// HTTPAddr serves /healthz; "" disables it.
	HTTPAddr string
	// BridgeAddr is the legacy lamp listener; "" disables it.
	BridgeAddr string
	// DataDir is created if missing; "" means no data dir.
	DataDir string
	// TopicPrefix is the lamp topic prefix; "" means "lamp".
	TopicPrefix string
	// MaxFrame is the longest lamp frame in bytes; 0 means 1024.
	MaxFrame int
	// Logger receives every log line, the broker's included.
	Logger zerolog.Logger
}

// Addrs are the real addresses a started Gateway listens on; a disabled
// listener's address is nil.
type Addrs struct {
	MQTT, WS, HTTP, Bridge net.Addr
}

// SettingError is a startup failure that one setting caused, such as a
// port in use or an invalid prefix. Setting is the flag name without
// dashes ("mqtt-addr").
type SettingError struct {
	Setting string
	Value   string
	Err     error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Setting, e.Value, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// Gateway is the embedded broker, the lamp bridge and the HTTP server,
// wired together.
type Gateway struct {
	opts Options
}

// New checks opts and returns a Gateway that is not yet listening. An
// invalid option gives a *SettingError.
func New(opts Options) (*Gateway, error) {
	return nil, errors.New("gateway: not implemented yet")
}

// Start binds every enabled listener and starts serving. When a listener
// cannot be bound it releases the others and returns a *SettingError.
func (g *Gateway) Start() error { return errors.New("gateway: not implemented yet") }

// Addrs returns the addresses bound by Start.
func (g *Gateway) Addrs() Addrs { return Addrs{} }

// Shutdown stops accepting, publishes offline for every connected lamp and
// the gateway, closes the sockets and stops the broker. It returns
// ctx.Err() if ctx ends first.
func (g *Gateway) Shutdown(ctx context.Context) error { return nil }
