package broker

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/auth"
)

// Defaults for zero Options fields.
const (
	// DefaultMaxClientWritesPending is the outbound queue length per client.
	// mochi's default of 8192 was measured at 130-160 KB RSS per client
	// after reconnect churn. 64 was too few: an app that pressed "all on"
	// for 125 lamps lost a quarter of its acks, and one watching every
	// lamp lost 20-60% of availability in a reconnect storm (measured by
	// internal/soaktest TestAckBurst and BenchmarkReconnectStorm); at 256
	// and 1024 nothing was lost. The queue holds pointers, so 1024 costs
	// about 8 KB per client. Past it, messages are dropped for that client
	// (Dropped counts them) rather than buffered.
	DefaultMaxClientWritesPending = 1024
	// DefaultMaxPacketSize is the largest packet a client may send: far
	// above any lamp command or state, far below what could hurt.
	DefaultMaxPacketSize = 256 << 10
	// DefaultHandshakeTimeout bounds the wait for a client's CONNECT.
	DefaultHandshakeTimeout = 10 * time.Second
)

// Options configure a Broker. The zero value of each field is documented;
// cmd/lampgw fills these in.
type Options struct {
	// MQTTAddr is the plain MQTT TCP listener, e.g. ":1883"; "" disables it.
	MQTTAddr string
	// WSAddr is the MQTT-over-WebSocket listener, served on path /mqtt
	// only; "" disables it.
	WSAddr string
	// MQTTSAddr is the MQTT over TLS listener, e.g. ":8883"; "" disables
	// it. It needs TLSConfig.
	MQTTSAddr string
	// WSSAddr is the MQTT over WebSocket over TLS listener, path /mqtt;
	// "" disables it. It needs TLSConfig.
	WSSAddr string
	// TLSConfig serves MQTTSAddr and WSSAddr. HandshakeTimeout bounds the
	// TLS handshake too: it runs within the wait for CONNECT (or, for
	// WebSocket, within http.Server's handshake timeout).
	TLSConfig *tls.Config
	// Logger receives the broker's lines, mochi's included (through
	// zerolog.NewSlogHandler). The zero Logger discards them.
	Logger zerolog.Logger
	// MaxClientWritesPending is how many outbound messages may wait for a
	// network client before new ones are dropped; 0 means
	// DefaultMaxClientWritesPending.
	MaxClientWritesPending int
	// IsCommandTopic reports whether a topic carries commands to a lamp;
	// a retained PUBLISH to such a topic is delivered but not retained.
	// nil means no topic is a command topic. It is called on every
	// PUBLISH, from many goroutines, and must be fast and pure.
	IsCommandTopic func(topic string) bool
	// HandshakeTimeout is how long a new connection may take to send
	// CONNECT (and, for WebSocket, the HTTP upgrade) before it is closed;
	// 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// AllowAnonymous accepts clients from any address. false accepts them
	// from loopback only and refuses others with "not authorized".
	// With Users set, it lets clients without a user name in, as viewers;
	// false refuses them from everywhere.
	AllowAnonymous bool
	// ACL, when set, decides what each network client may publish,
	// subscribe to and receive (see package auth); the InlineBus is never
	// checked. nil lets every client do everything.
	ACL *auth.ACL
	// Users, when set, is the users file in force (SetUsers replaces
	// it): clients log in as one of them. nil means no users file. It
	// needs ACL.
	Users *auth.Users
	// MaxPacketSize is the largest packet a client may send (mochi closes
	// the connection on a larger one); 0 means DefaultMaxPacketSize.
	MaxPacketSize int
	// BusQueueSize is the hand-off queue length of each InlineBus
	// subscription; 0 means dispatch.DefaultSize.
	BusQueueSize int
	// Storage, when set, keeps retained messages and the sessions of
	// clients that asked for one (see storageHook in storage.go), and
	// Start loads them before any listener accepts. nil keeps them in
	// memory only.
	Storage Storage
	// RestoreRetained, when set, is called by Start for each retained
	// message loaded from Storage, before any listener accepts, and
	// returns the payload to restore: payload itself keeps it, another
	// replaces it, an empty one drops it, in Storage too.
	RestoreRetained func(topic string, payload []byte) []byte
	// MaxSessionExpiry caps how long a disconnected client's session is
	// kept; 0 means DefaultMaxSessionExpiry.
	MaxSessionExpiry time.Duration
}

// Broker is the embedded MQTT broker. Its methods are safe for concurrent
// use.
type Broker struct {
	opts   Options
	log    zerolog.Logger
	srv    *mqtt.Server
	policy *policyHook
	auth   *authHook
	bus    *InlineBus

	mu      sync.Mutex
	started bool
	closed  bool
	mqttLn  *tcpListener
	wsLn    *wsListener
	mqttsLn *tcpListener
	wssLn   *wsListener
	// addrs holds the bound address of each listener by id, once Start
	// has succeeded.
	addrs map[string]net.Addr

	closeOnce sync.Once
}

// New checks opts and returns a Broker that is not yet listening; its Bus
// works at once.
func New(opts Options) (*Broker, error) {
	switch {
	case opts.MaxClientWritesPending < 0 || opts.MaxClientWritesPending > math.MaxInt32:
		return nil, fmt.Errorf("%w: MaxClientWritesPending %d out of range", ErrInvalidOptions, opts.MaxClientWritesPending)
	case opts.HandshakeTimeout < 0:
		return nil, fmt.Errorf("%w: negative HandshakeTimeout", ErrInvalidOptions)
	case opts.MaxSessionExpiry < 0 || opts.MaxSessionExpiry > math.MaxUint32*time.Second:
		return nil, fmt.Errorf("%w: MaxSessionExpiry %v out of range", ErrInvalidOptions, opts.MaxSessionExpiry)
	case opts.BusQueueSize < 0:
		return nil, fmt.Errorf("%w: negative BusQueueSize", ErrInvalidOptions)
	case opts.Users != nil && opts.ACL == nil:
		return nil, fmt.Errorf("%w: Users without ACL", ErrInvalidOptions)
	case (opts.MQTTSAddr != "" || opts.WSSAddr != "") && opts.TLSConfig == nil:
		return nil, fmt.Errorf("%w: MQTTSAddr or WSSAddr without TLSConfig", ErrInvalidOptions)
	}
	if opts.MaxClientWritesPending == 0 {
		opts.MaxClientWritesPending = DefaultMaxClientWritesPending
	}
	if opts.MaxPacketSize <= 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.MaxSessionExpiry == 0 {
		opts.MaxSessionExpiry = DefaultMaxSessionExpiry
	}

	caps := mqtt.NewDefaultServerCapabilities()
	// 0 disables mochi's forced expiry of retained messages: with the
	// default 86400, server.go clearExpiredRetainedMessages deletes every
	// retained message a day after it was published, so lamp state and
	// availability would vanish from a gateway that runs for days. A v5
	// client's own message expiry still applies (server.go minimum
	// returns the non-zero one).
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumClientWritesPending = int32(opts.MaxClientWritesPending)
	// mochi's default is no limit: one client could make it allocate a
	// 256 MB packet (clients.go ReadPacket allocates the declared length).
	caps.MaximumPacketSize = uint32(opts.MaxPacketSize)
	// mochi's default is no limit (see DefaultMaxSessionExpiry). It caps
	// a v5 client's Session Expiry Interval and is the expiry of a v3
	// client's clean session 0.
	caps.MaximumSessionExpiryInterval = uint32(opts.MaxSessionExpiry / time.Second)

	b := &Broker{opts: opts, log: opts.Logger}
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		// InlineClient enables Server.Publish, which InlineBus uses.
		InlineClient: true,
		Logger:       slog.New(redactHandler{zerolog.NewSlogHandler(opts.Logger.With().Str("lib", "mochi").Logger())}),
		// SysTopicResendInterval stays at mochi's default.
	})
	b.policy = newPolicyHook(opts.IsCommandTopic, opts.Logger)
	b.auth = newAuthHook(b.srv, opts)
	hooks := []mqtt.Hook{b.auth, b.policy, newPacketIDHook(), &expiryHook{srv: b.srv}}
	if opts.Storage != nil {
		hooks = append(hooks, newStorageHook(b.srv, opts.Storage, opts.RestoreRetained, opts.Logger.With().Str("storage", "broker").Logger()))
	}
	for _, h := range hooks {
		if err := b.srv.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
	}
	b.bus = newInlineBus(b.srv, opts.BusQueueSize, opts.Logger.With().Str("bus", "inline").Logger())
	// Replies go only where a request's sender may read (reply.go).
	b.bus.replies.mayRead = b.auth.mayRead
	return b, nil
}

// Start binds the enabled listeners and starts serving. If a listener
// cannot be bound it releases the ones already bound and returns a
// *ListenError naming it; Start may then be called again.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.started:
		return ErrStarted
	}

	var bound []net.Listener
	listen := func(name, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range bound {
				_ = l.Close()
			}
			return nil, &ListenError{Listener: name, Addr: addr, Err: err}
		}
		bound = append(bound, ln)
		return ln, nil
	}
	// The listeners in binding order; each one's wrapper is stored in its
	// field only once all are bound.
	specs := []struct {
		id, addr string
		// secure wraps the listener in TLS. Each connection handshakes
		// on mochi's first read (crypto/tls is lazy), so in its own
		// goroutine, under serveConn's deadline; for WebSocket,
		// http.Server bounds the handshake by its ReadHeaderTimeout.
		secure bool
		tcp    **tcpListener // exactly one of tcp and ws is set
		ws     **wsListener
		ln     net.Listener // bound; nil when disabled
	}{
		{id: "mqtt", addr: b.opts.MQTTAddr, tcp: &b.mqttLn},
		{id: "ws", addr: b.opts.WSAddr, ws: &b.wsLn},
		{id: "mqtts", addr: b.opts.MQTTSAddr, secure: true, tcp: &b.mqttsLn},
		{id: "wss", addr: b.opts.WSSAddr, secure: true, ws: &b.wssLn},
	}
	for i := range specs {
		s := &specs[i]
		if s.addr == "" {
			continue
		}
		ln, err := listen(s.id, s.addr)
		if err != nil {
			return err
		}
		if s.secure {
			ln = tls.NewListener(ln, b.opts.TLSConfig)
		}
		s.ln = ln
	}

	var added []listeners.Listener
	addrs := make(map[string]net.Addr)
	started := b.log.Info()
	for _, s := range specs {
		started = started.Str(s.id, addrString(s.ln))
		var l listeners.Listener
		switch {
		case s.ln == nil:
			continue
		case s.tcp != nil:
			*s.tcp = newTCPListener(s.id, s.ln, b.opts.HandshakeTimeout, b.disconnectListener, b.log)
			l = *s.tcp
		default:
			*s.ws = newWSListener(s.id, s.ln, b.opts.HandshakeTimeout, b.disconnectListener, b.log)
			l = *s.ws
		}
		// AddListener fails only for a duplicate id, impossible here.
		_ = b.srv.AddListener(l)
		added = append(added, l)
		addrs[s.id] = s.ln.Addr()
	}
	// Serve loads Options.Storage (storage.go) before it lets the
	// listeners accept; it fails when that fails, or when it loads
	// listeners or hooks from mochi's own config, which we do not use.
	if err := b.srv.Serve(); err != nil {
		for _, l := range added {
			l.Close(nil)
		}
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.started = true
	b.addrs = addrs
	started.Msg("broker started")
	return nil
}

// disconnectListener sends each network client of listener id a
// DISCONNECT (server shutting down, for v5 clients) and stops it. It is
// mochi's closeListenerClients (server.go) without Clients.GetByListener,
// which takes the clients read lock and then again inside Clients.Len
// (clients.go): a client leaving at that moment queues Clients.Delete's
// write lock between the two and the three deadlock. GetAll locks once.
func (b *Broker) disconnectListener(id string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == id && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// MQTTAddr returns the address the MQTT listener is bound to, or nil if it
// is disabled or Start has not succeeded.
func (b *Broker) MQTTAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mqttLn == nil {
		return nil
	}
	return b.mqttLn.ln.Addr()
}

// WSAddr returns the address the WebSocket listener is bound to, or nil if
// it is disabled or Start has not succeeded.
func (b *Broker) WSAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wsLn == nil {
		return nil
	}
	return b.wsLn.ln.Addr()
}

// MQTTSAddr returns the address the MQTT over TLS listener is bound to,
// or nil if it is disabled or Start has not succeeded.
func (b *Broker) MQTTSAddr() net.Addr { return b.boundAddr("mqtts") }

// WSSAddr returns the address the WebSocket over TLS listener is bound
// to, or nil if it is disabled or Start has not succeeded.
func (b *Broker) WSSAddr() net.Addr { return b.boundAddr("wss") }

// boundAddr returns the address of listener id, nil if it has none.
func (b *Broker) boundAddr(id string) net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addrs[id]
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return "disabled"
	}
	return ln.Addr().String()
}

// Bus returns the in-process bus. It stays valid until Close.
func (b *Broker) Bus() *InlineBus { return b.bus }

// Dropped returns how many messages were dropped because a network
// client's outbound queue was full. InlineBus drops are counted apart, by
// InlineBus.Dropped.
func (b *Broker) Dropped() int64 { return b.policy.dropped.Load() }

// Close stops the listeners, disconnects every client, stops the bus and
// waits for the bus handlers to return, so it must not be called from a
// bus handler. It is idempotent: mochi's Server.Close closes a channel and
// panics when called twice (server.go, close(s.done)), so it runs once.
// Close always returns nil; the error is for io.Closer.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		// mochi first: once its listeners and clients are gone, only the
		// bus itself could still publish, and the bus is closed next.
		_ = b.srv.Close()
		b.bus.close()
		b.log.Info().Msg("broker stopped")
	})
	return nil
}
