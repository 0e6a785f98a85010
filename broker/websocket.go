package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/rs/zerolog"
)

// wsPath is the only path that upgrades to MQTT over WebSocket.
const wsPath = "/mqtt"

// errNotBinary means a client sent a text frame; MQTT over WebSocket uses
// binary frames only [MQTT-6.0.0-1].
var errNotBinary = errors.New("broker: websocket message is not binary")

// wsListener is a mochi listeners.Listener serving MQTT over WebSocket on
// a net.Listener bound by Start. It replaces mochi's listeners.Websocket,
// which binds inside http.Server.ListenAndServe (listeners/websocket.go)
// so the real port of ":0" is never known and a bind error surfaces only
// in a log line from a goroutine.
type wsListener struct {
	id         string
	ln         net.Listener
	handshake  time.Duration
	disconnect func(listenerID string)
	log        zerolog.Logger
	srv        *http.Server
	upgrader   websocket.Upgrader

	establish listeners.EstablishFn // set by Serve before srv.Serve starts handlers
	conns     conns
	done      chan struct{} // closed when Serve returns

	mu      sync.Mutex
	serving bool
	closed  bool
}

// newWSListener serves ln. disconnect ends the listener's mochi clients
// on Close.
func newWSListener(id string, ln net.Listener, handshake time.Duration, disconnect func(string), log zerolog.Logger) *wsListener {
	l := &wsListener{
		id:         id,
		ln:         ln,
		handshake:  handshake,
		disconnect: disconnect,
		log:        log.With().Str("listener", id).Logger(),
		done:       make(chan struct{}),
		upgrader: websocket.Upgrader{
			Subprotocols: []string{"mqtt"}, // [MQTT-6.0.0-3]
			// CheckOrigin is left nil: gorilla then accepts requests
			// without an Origin header (every non-browser client) and
			// browsers only from the same host, so a web page elsewhere
			// cannot drive lamps through a visitor's browser. mochi
			// accepts every origin.
			HandshakeTimeout: handshake,
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(wsPath, l.handle)
	l.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: handshake,
		// net/http would otherwise write to the standard logger. Sampled:
		// a failed TLS handshake (wss) is logged here, and anyone who can
		// reach the port can cause those at will.
		ErrorLog: slog.NewLogLogger(zerolog.NewSlogHandler(l.log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second})), slog.LevelWarn),
	}
	return l
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

// Init ignores mochi's slog logger: ours was injected by New.
func (l *wsListener) Init(*slog.Logger) error { return nil }

// Serve serves HTTP on the bound listener until Close. http.Server's own
// accept loop backs off on temporary errors.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.serving = true
	l.establish = establish
	l.mu.Unlock()
	defer close(l.done)

	if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
		l.log.Error().Err(err).Msg("websocket listener stopped")
	}
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered with an HTTP error.
		l.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("websocket upgrade refused")
		return
	}
	nc := &wsConn{Conn: c.NetConn(), c: c}
	if !l.conns.add(nc) {
		_ = nc.Close()
		return
	}
	defer l.conns.done(nc)
	serveConn(l.id, nc, l.handshake, l.establish, l.log)
}

// Close stops the HTTP server, disconnects this listener's clients,
// closes connections still in the handshake and waits for them.
// http.Server.Close does not track hijacked (upgraded) connections, hence
// our own set. It ignores mochi's CloseFn for l.disconnect; see
// Broker.disconnectListener.
func (l *wsListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	serving := l.serving
	l.mu.Unlock()

	_ = l.srv.Close()
	_ = l.ln.Close() // srv.Close only closes listeners Serve has seen
	if serving {
		<-l.done
	}
	l.conns.closeClients(func() { l.disconnect(l.id) })
}

// wsConn is a WebSocket connection as the byte stream mochi reads MQTT
// packets from. Adapted from mochi v2.7.9 listeners/websocket.go (wsConn,
// MIT licence): one binary message may hold part of a packet or several,
// so Read drains the current message before taking the next. The embedded
// net.Conn is the underlying TCP connection, which gives mochi working
// deadlines and addresses; writes go through c so each packet becomes one
// binary message. mochi serialises writes per client (Client.WritePacket
// holds the client lock), as gorilla requires.
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader // the message being read; nil between messages
}

func (ws *wsConn) Read(p []byte) (int, error) {
	if ws.r == nil {
		op, r, err := ws.c.NextReader()
		if err != nil {
			return 0, err
		}
		if op != websocket.BinaryMessage {
			return 0, errNotBinary
		}
		ws.r = r
	}
	n := 0
	for n < len(p) {
		m, err := ws.r.Read(p[n:])
		n += m
		if err != nil {
			// Any error ends the current message: io.EOF because it is
			// complete, others because the rest cannot be trusted.
			ws.r = nil
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
	}
	return n, nil
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.Conn.Close() }
