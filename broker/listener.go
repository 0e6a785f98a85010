package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/rs/zerolog"
)

// Accept backoff, as net/http's Server.Serve: a temporary error such as
// EMFILE is retried after 5 ms, doubling up to 1 s.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

func nextDelay(d time.Duration) time.Duration {
	if d == 0 {
		return minAcceptDelay
	}
	return min(2*d, maxAcceptDelay)
}

// conns tracks a listener's client connections so Close can end the ones
// mochi does not know yet (no CONNECT read) and wait for all of them.
type conns struct {
	mu     sync.Mutex
	closed bool
	set    map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// add registers c and reports true, or reports false once closeAll ran;
// then the caller must close c itself.
func (s *conns) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.set == nil {
		s.set = map[net.Conn]struct{}{}
	}
	s.set[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *conns) done(c net.Conn) {
	s.mu.Lock()
	delete(s.set, c)
	s.mu.Unlock()
	s.wg.Done()
}

// closeAll refuses new connections, closes the tracked ones and waits for
// their goroutines to return.
func (s *conns) closeAll() {
	s.mu.Lock()
	s.closed = true
	for c := range s.set {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// closeGrace is how long a listener's Close lets mochi disconnect its
// clients politely before closing their connections under it.
const closeGrace = 500 * time.Millisecond

// closeClients runs disconnect (see Broker.disconnectListener), then
// closes every connection and waits for them. mochi's DisconnectClient
// writes a DISCONNECT under the client's lock (clients.go WritePacket),
// which the client's WriteLoop holds while blocked writing to a peer that
// stopped reading; only the keepalive deadline (1.5 x keepalive) would
// free it. Closing the connections after closeGrace fails that write at
// once.
func (s *conns) closeClients(disconnect func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		disconnect()
	}()
	select {
	case <-done:
	case <-time.After(closeGrace):
		s.mu.Lock()
		for c := range s.set {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.closeAll()
}

// serveConn runs mochi's establish for one connection. The deadline bounds
// the wait for CONNECT: mochi v2.7.9 reads the first packet with no
// deadline (server.go attachClient, readConnectionPacket) and only sets
// the keepalive deadline afterwards (refreshDeadline), which replaces ours.
// Over TLS the deadline bounds the handshake too, which crypto/tls runs
// on mochi's first read. It returns establish's error.
func serveConn(id string, c net.Conn, handshake time.Duration, establish listeners.EstablishFn, log zerolog.Logger) error {
	_ = c.SetDeadline(time.Now().Add(handshake))
	err := establish(id, &writeBoundConn{Conn: c, timeout: clientWriteTimeout})

	// mochi closes c itself (Client.Stop); errors here are how a client
	// left, normal for an MQTT server and not worth a warning each.
	log.Debug().Err(err).Str("remote", c.RemoteAddr().String()).Msg("client connection ended")
	return err
}

// clientWriteTimeout bounds one write to an MQTT client. mochi v2.7.9
// holds a client's lock while it writes to the socket (clients.go
// WritePacket), and every QoS 1 or 2 message to that client takes the
// same lock first (NextPacketID). So a client that stops reading would
// stall every publisher, the lamp bridge included, until its keepalive
// ran out, or forever with keepalive 0. Bounded, a stuck client's write
// fails and mochi drops it.
const clientWriteTimeout = 2 * time.Second

// writeBoundConn sets a write deadline before every write.
type writeBoundConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeBoundConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Write(b)
	if err != nil {
		// mochi does not end a client whose write failed; closing makes
		// its read loop end it, and its next writes fail at once instead
		// of each waiting out the timeout again.
		c.Conn.Close()
	}
	return n, err
}

// tcpListener is a mochi listeners.Listener over a net.Listener bound by
// Start. It replaces mochi's listeners.Net, whose Serve returns on the
// first accept error of any kind (listeners/net.go), silently ending the
// listener on a transient EMFILE.
type tcpListener struct {
	id         string
	ln         net.Listener
	handshake  time.Duration
	log        zerolog.Logger
	disconnect func(listenerID string)
	// warn is log sampled, for failed TLS handshakes, which anyone who
	// can reach the port can cause at will.
	warn zerolog.Logger

	conns conns
	quit  chan struct{}
	done  chan struct{} // closed when Serve returns

	mu      sync.Mutex
	serving bool
	closed  bool
}

// newTCPListener serves ln. disconnect ends the listener's mochi clients
// on Close.
func newTCPListener(id string, ln net.Listener, handshake time.Duration, disconnect func(string), log zerolog.Logger) *tcpListener {
	l := &tcpListener{
		id:         id,
		ln:         ln,
		handshake:  handshake,
		disconnect: disconnect,
		log:        log.With().Str("listener", id).Logger(),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	l.warn = l.log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second})
	return l
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Address() string  { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string { return "tcp" }

// Init ignores mochi's slog logger: ours was injected by New.
func (l *tcpListener) Init(*slog.Logger) error { return nil }

// Serve accepts until Close. mochi calls it on its own goroutine
// (listeners.Listeners.Serve).
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.serving = true
	l.mu.Unlock()
	defer close(l.done)

	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Not only Temporary() errors: any other accept error is as
			// likely to pass, and giving up would leave a live process
			// that silently accepts nothing.
			delay = nextDelay(delay)
			l.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			select {
			case <-time.After(delay):
				continue
			case <-l.quit:
				return
			}
		}
		delay = 0
		if !l.conns.add(c) {
			_ = c.Close()
			return
		}
		go func() {
			defer l.conns.done(c)
			err := serveConn(l.id, c, l.handshake, establish, l.log)
			l.logHandshakeFailure(c, err)
		}()
	}
}

// logHandshakeFailure logs a TLS connection that ended before its
// handshake completed: a client that does not trust the certificate, has
// no client certificate under mutual TLS, speaks plain MQTT to the TLS
// port, or said nothing in time. One that closed without sending a byte
// (a port probe) gets only serveConn's debug line.
func (l *tcpListener) logHandshakeFailure(c net.Conn, err error) {
	tc, ok := c.(*tls.Conn)
	if !ok || tc.ConnectionState().HandshakeComplete || errors.Is(err, io.EOF) {
		return
	}
	l.warn.Warn().Str("remote", c.RemoteAddr().String()).AnErr("reason", err).Msg("TLS handshake failed")
}

// Close stops accepting, disconnects this listener's clients, closes
// connections still in the handshake and waits for all of them. It
// ignores mochi's CloseFn for l.disconnect; see Broker.disconnectListener.
func (l *tcpListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	serving := l.serving
	l.mu.Unlock()

	close(l.quit)
	_ = l.ln.Close()
	if serving {
		<-l.done
	}
	l.conns.closeClients(func() { l.disconnect(l.id) })
}
