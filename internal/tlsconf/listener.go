package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultHandshakeTimeout is NewListener's timeout when given 0: the same
// 10 s the broker gives a client to send CONNECT.
const DefaultHandshakeTimeout = 10 * time.Second

// NewListener returns a listener whose Accept wraps each connection of
// inner in a TLS server connection configured by config, as
// tls.NewListener does, but with the handshake bounded: it runs on the
// connection's first Read, Write or Handshake, in the goroutine that
// serves the connection (never in Accept, so one silent peer cannot
// stall the others), and a peer that has not completed it within timeout
// (0 means DefaultHandshakeTimeout) is disconnected; the call returns
// ErrHandshakeTimeout. The bound holds whatever deadlines the caller
// sets, including none, and does not change them.
//
// log gets one warning per failed handshake, except from a peer that
// closed without sending a byte (a port probe) or one the server closed
// meanwhile. Anyone who can reach the port can cause these, so pass a
// sampled logger.
func NewListener(inner net.Listener, config *tls.Config, timeout time.Duration, log zerolog.Logger) net.Listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	return &listener{Listener: inner, config: config, timeout: timeout, log: log}
}

type listener struct {
	net.Listener
	config  *tls.Config
	timeout time.Duration
	log     zerolog.Logger
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: tls.Server(c, l.config), timeout: l.timeout, log: &l.log}, nil
}

// conn is a TLS server connection whose first use handshakes with a
// timeout. The embedded *tls.Conn gives ConnectionState, NetConn and the
// deadline setters.
type conn struct {
	*tls.Conn
	timeout time.Duration
	log     *zerolog.Logger
	done    atomic.Bool // the handshake succeeded
	logged  atomic.Bool // its failure was logged
}

// Handshake runs the TLS handshake if it has not run, bounded by the
// listener's timeout. The reader and writer goroutines of one connection
// may both get here first; crypto/tls runs the handshake once and makes
// the other wait for its result.
func (c *conn) Handshake() error {
	if c.done.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	// On expiry HandshakeContext closes the connection, which unblocks
	// the handshake, and returns ctx.Err().
	err := c.Conn.HandshakeContext(ctx)
	switch {
	case err == nil:
		c.done.Store(true)
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		err = ErrHandshakeTimeout
	}
	// Both goroutines of a connection may see the failure; log it once.
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.logged.CompareAndSwap(false, true) {
		c.log.Warn().Str("remote", c.RemoteAddr().String()).AnErr("reason", err).Msg("TLS handshake failed")
	}
	return err
}

func (c *conn) Read(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
