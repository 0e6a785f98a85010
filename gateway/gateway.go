package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/api"
	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/cluster"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/hadiscovery"
	"github.com/lampgw/lampgw/internal/tlsconf"
	"github.com/lampgw/lampgw/metrics"
	"github.com/lampgw/lampgw/mqttbus"
	"github.com/lampgw/lampgw/store"
	"github.com/lampgw/lampgw/topics"
)

// Options configure a Gateway. The zero value of each field is documented;
// cmd/lampgw fills these from flags, env and the config file.
type Options struct {
	// MQTTAddr is the plain MQTT listener (e.g. ":1883"); "" disables it.
	MQTTAddr string
	// WSAddr is the MQTT-over-WebSocket listener, path /mqtt; "" disables it.
	WSAddr string
	// HTTPAddr serves /healthz, the HTTP API and the dashboard (package
	// api); "" disables it.
	HTTPAddr string
	// BridgeAddr is the legacy lamp listener; "" disables it.
	BridgeAddr string
	// MQTTSAddr, WSSAddr, HTTPSAddr and BridgeTLSAddr are the TLS
	// listeners beside the plain ones: MQTT, MQTT over WebSocket (path
	// /mqtt), HTTP (the same handler as HTTPAddr) and the lamp bridge.
	// "" disables each; any of them needs TLSCertFile and TLSKeyFile.
	MQTTSAddr, WSSAddr, HTTPSAddr, BridgeTLSAddr string
	// TLSCertFile and TLSKeyFile are the server certificate (chain) and
	// its key, PEM. New reads them when a TLS listener is enabled, and
	// Reload again.
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile, if not "", holds the PEM CA certificates that must
	// sign a client certificate on every TLS listener (mutual TLS).
	TLSClientCAFile string
	// DataDir holds retained messages, MQTT sessions and pending
	// commands across restarts (package store); it is created if
	// missing. "" keeps everything in memory.
	DataDir string
	// DataReset moves a DataDir that does not open (corrupt, unreadable)
	// aside to <DataDir>.broken-<time> and starts with an empty one. A
	// dir that opens is kept.
	DataReset bool
	// TopicPrefix is the lamp topic prefix; "" means "lamp".
	TopicPrefix string
	// MaxFrame is the longest lamp frame in bytes; 0 means 1024.
	MaxFrame int
	// DevicesFile is the YAML devices file (see devices.ParseFile); ""
	// means none. It is read at Start, again by Reload, and whenever it
	// changes on disk.
	DevicesFile string
	// UsersFile is the YAML file of MQTT users, their bcrypt hashes, roles
	// and lamps (see package auth); "" means none. New reads it, Reload
	// again: clients whose rights narrowed are disconnected. With it,
	// clients must log in (anonymous ones only with AllowAnonymous, as
	// viewers). With or without it, no MQTT client may publish lamp state
	// or lampgw/... topics.
	UsersFile string
	// AllowAnonymous accepts anonymous MQTT, WebSocket and HTTP API
	// clients from any address; false accepts them from loopback only.
	AllowAnonymous bool
	// Lamp limits, passed to the bridge (see bridge.Options): zero values
	// mean the bridge's defaults; LampFrameRate < 0 means no limit.
	RequireKnownDevices  bool
	LampHandshakeTimeout time.Duration
	LampIdleTimeout      time.Duration
	MaxLamps             int
	MaxLampsPerAddr      int
	LampFrameRate        float64
	LampAdmitRate        float64
	// StateInterval is the least time between two publishes of one
	// lamp's lamp/<id>/state (see bridge.Options.StateInterval): 0 means
	// 100ms, negative every report.
	StateInterval time.Duration
	// Command acknowledgement and pacing (see devices.Options): zero
	// values mean 5s, 24h and 20 frames/s; LampMaxRate < 0 means no limit.
	ConfirmTimeout time.Duration
	CommandTTL     time.Duration
	LampMaxRate    float64
	// DebugMirror publishes every lamp frame on lampgw/debug/<id>/rx|tx.
	DebugMirror bool
	// MaxPacketSize is the largest MQTT packet a client may send; 0 means
	// broker.DefaultMaxPacketSize.
	MaxPacketSize int
	// RedialMin is the first wait before dialing a dialed lamp again; 0
	// means 1s. The wait doubles up to 30s.
	RedialMin time.Duration
	// HADiscovery publishes Home Assistant MQTT discovery configs for
	// every lamp (package hadiscovery); false publishes nothing under
	// HAPrefix. cmd/lampgw turns it on by default.
	HADiscovery bool
	// HAPrefix is Home Assistant's discovery prefix; "" means
	// "homeassistant". It may not overlap TopicPrefix or lampgw/.
	HAPrefix string
	// BrokerURL, if not "", runs the gateway as one instance of a
	// cluster on that external MQTT broker (package cluster):
	// mqtt://host:1883, mqtts://, ws:// or wss://. There is no embedded
	// broker then, so MQTTAddr, WSAddr, MQTTSAddr, WSSAddr and DataDir
	// must be "" (apps use the external broker, which keeps the state).
	BrokerURL string
	// BrokerUsername and BrokerPassword log in to BrokerURL; "" means
	// anonymous. BrokerCAFile, if not "", holds the PEM CA certificates
	// that sign the broker's certificate (mqtts://, wss://); "" means the
	// system's.
	BrokerUsername, BrokerPassword, BrokerCAFile string
	// InstanceID names this instance in the cluster (its MQTT client id
	// is lampgw-<InstanceID>, its status lampgw/<InstanceID>/status);
	// required with BrokerURL, see cluster.CheckInstance.
	InstanceID string
	// BrokerKeepAlive is the MQTT keep alive to BrokerURL; 0 means 30s.
	// Lamps of a dead instance go offline within 1.5 times it.
	BrokerKeepAlive time.Duration
	// BrokerBuffer is how many publishes are kept while BrokerURL is
	// unreachable; 0 means 10000, see mqttbus.Options.Buffer.
	BrokerBuffer int
	// Logger receives every log line, the broker's included.
	Logger zerolog.Logger
}

// Addrs are the real addresses a started Gateway listens on; a disabled
// listener's address is nil.
type Addrs struct {
	MQTT, WS, HTTP, Bridge       net.Addr
	MQTTS, WSS, HTTPS, BridgeTLS net.Addr
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
	if e.Value == "" {
		// The error names the value itself, as a devices file's does.
		return fmt.Sprintf("%s: %v", e.Setting, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", e.Setting, e.Value, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// ErrStarted is returned by a second call to Start.
var ErrStarted = errors.New("gateway: already started")

// Gateway is the embedded broker, the lamp bridge and the HTTP server,
// wired together.
type Gateway struct {
	opts Options
	log  zerolog.Logger

	mu      sync.Mutex
	started bool
	broker  *broker.Broker
	bridge  *bridge.Server
	// bus is the broker's: the embedded one's InlineBus, or in cluster
	// mode (Options.BrokerURL) the connection to the external broker,
	// with coord its part in the cluster.
	bus      bridge.Bus
	coord    *cluster.Coordinator
	ext      *mqttbus.Bus
	bridgeLn net.Listener
	httpSrv  *http.Server
	httpLn   net.Listener
	// httpsLn and bridgeTLSLn are TLS listeners, bound by Start.
	httpsLn     net.Listener
	bridgeTLSLn net.Listener
	// certs is what every TLS listener serves; nil without TLS.
	certs    *tlsconf.Certs
	serving  sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
	// store is the open data dir (persist.go); nil without one.
	store       *store.DB
	storeErrLog zerolog.Logger

	metrics *metrics.Metrics
	// stopping is set when Shutdown begins; /readyz then says so.
	stopping bool
	// devices is the devices file read by New, applied by Start.
	devices *devices.File
	// devs is the devices file in force, for disc's lookups; disc is
	// nil unless Options.HADiscovery.
	devs atomic.Pointer[devices.File]
	disc *hadiscovery.Discovery
	// api is the HTTP API and dashboard; nil without an HTTP listener.
	api *api.Server
	// users is the users file read by New (or Reload before Start),
	// given to the broker by Start; nil without one.
	users *auth.Users
	// stopWatch ends the devices file watch.
	stopWatch context.CancelFunc
	// reloadMu serialises reloads; devicesSeen is the devices file's
	// content last read, applied or refused.
	reloadMu    sync.Mutex
	devicesSeen []byte
}

// New checks opts and returns a Gateway that is not yet listening. An
// invalid option gives a *SettingError.
func New(opts Options) (*Gateway, error) {
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = topics.DefaultPrefix
	}
	if err := topics.CheckPrefix(opts.TopicPrefix); err != nil {
		return nil, &SettingError{Setting: "topic-prefix", Value: opts.TopicPrefix, Err: errors.New("must be topic levels without wildcards, empty levels or a leading '$'")}
	}
	if opts.MaxFrame == 0 {
		opts.MaxFrame = 1024
	}
	if opts.MaxFrame < 16 || opts.MaxFrame > 65536 {
		return nil, &SettingError{Setting: "max-frame", Value: fmt.Sprint(opts.MaxFrame), Err: errors.New("must be between 16 and 65536")}
	}
	if err := checkHADiscovery(&opts); err != nil {
		return nil, err
	}
	if err := checkDataDir(opts.DataDir); err != nil {
		return nil, err
	}
	if err := checkCluster(&opts); err != nil {
		return nil, err
	}
	g := &Gateway{opts: opts, log: opts.Logger}
	if opts.DevicesFile != "" {
		// Read here, not in Start: a broken file is a bad setting, found
		// before anything listens.
		var err error
		if g.devices, g.devicesSeen, err = g.readDevices(); err != nil {
			return nil, &SettingError{Setting: "devices", Err: err}
		}
	}
	if err := g.loadCerts(); err != nil {
		return nil, err
	}
	if opts.UsersFile != "" {
		// Read here, as the devices file is: a broken file is a bad
		// setting, found before anything listens.
		var err error
		if g.users, err = g.readUsers(); err != nil {
			return nil, &SettingError{Setting: "users", Err: err}
		}
		g.log.Info().Str("file", opts.UsersFile).Int("users", g.users.Len()).Msg("users file loaded")
	}
	return g, nil
}

// isCommandTopic tells the broker which publishes are commands, whose
// retain flag it drops (see broker.Options.IsCommandTopic).
func (g *Gateway) isCommandTopic(topic string) bool {
	t, err := topics.Parse(g.opts.TopicPrefix, topic)
	return err == nil && t.Kind.IsCommand()
}

// Start binds every enabled listener and starts serving. When a listener
// cannot be bound it releases the others and returns a *SettingError.
func (g *Gateway) Start() (err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return ErrStarted
	}
	g.started = true
	defer func() {
		if err != nil {
			g.closeLocked()
		}
	}()

	// First: the data dir's lock keeps a second lampgw on it out before
	// it binds anything, and the broker loads it before it accepts.
	if err := g.openStoreLocked(); err != nil {
		return err
	}
	if g.bridgeLn, err = listen("bridge-addr", g.opts.BridgeAddr); err != nil {
		return err
	}
	if g.httpLn, err = listen("http-addr", g.opts.HTTPAddr); err != nil {
		return err
	}
	if err := g.listenTLSLocked(); err != nil {
		return err
	}
	var (
		bus     bridge.Bus
		store   devices.Store
		custody bridge.Custody
	)
	if g.opts.BrokerURL != "" {
		if bus, err = g.connectClusterLocked(); err != nil {
			return err
		}
		store, custody = g.coord.Store(), g.coord
	} else {
		if err := g.startBrokerLocked(); err != nil {
			return err
		}
		bus, store = g.broker.Bus(), g.pendingStore()
	}
	g.bus = bus
	g.metrics = g.newMetrics()
	g.bridge, err = bridge.NewServer(bridge.Options{
		ObserveReport: g.metrics.ObserveReport,
		DebugMirror:   g.opts.DebugMirror,
		Bus:           bus,
		Devices: devices.Options{
			ConfirmTimeout: g.opts.ConfirmTimeout,
			CommandTTL:     g.opts.CommandTTL,
			MaxRate:        g.opts.LampMaxRate,
			Store:          store,
			OnStoreError:   g.onStoreError,
		},
		Prefix:              g.opts.TopicPrefix,
		MaxFrame:            g.opts.MaxFrame,
		RedialMin:           g.opts.RedialMin,
		RequireKnownDevices: g.opts.RequireKnownDevices,
		HandshakeTimeout:    g.opts.LampHandshakeTimeout,
		IdleTimeout:         g.opts.LampIdleTimeout,
		MaxConns:            g.opts.MaxLamps,
		MaxConnsPerAddr:     g.opts.MaxLampsPerAddr,
		FrameRate:           g.opts.LampFrameRate,
		AdmitRate:           g.opts.LampAdmitRate,
		StateInterval:       g.opts.StateInterval,
		Custody:             custody,
		Logger:              g.log.With().Str("component", "bridge").Logger(),
	})
	if err != nil {
		return err
	}
	if g.coord != nil {
		// Its own status topic, lampgw/<instance>/status, is the one
		// its will covers; lampgw/status belongs to a single gateway.
		if err := g.coord.Start(g.bridge); err != nil {
			return err
		}
	} else if err := bus.Publish(topics.GatewayStatus, []byte(topics.Online), 0, true); err != nil {
		return err
	}
	if err := g.startDiscoveryLocked(bus); err != nil {
		return err
	}
	if devs := g.devices; devs != nil {
		g.bridge.SetDevices(devs)
		g.log.Info().Str("file", g.opts.DevicesFile).Int("devices", len(devs.Devices)).Msg("devices file loaded")
		var ctx context.Context
		ctx, g.stopWatch = context.WithCancel(context.Background())
		g.startWatch(ctx, g.log)
	}
	for _, ln := range []net.Listener{g.bridgeLn, g.bridgeTLSLn} {
		if ln == nil {
			continue
		}
		g.serving.Add(1)
		go func() {
			defer g.serving.Done()
			if err := g.bridge.Serve(ln); !errors.Is(err, bridge.ErrServerClosed) {
				g.log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("bridge listener stopped")
			}
		}()
	}
	if g.httpLn != nil || g.httpsLn != nil {
		g.httpSrv = &http.Server{
			Handler:           g.routes(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          g.httpErrorLog(),
		}
		g.httpSrv.RegisterOnShutdown(g.closeAPI)
	}
	for _, ln := range []net.Listener{g.httpLn, g.httpsLn} {
		if ln == nil {
			continue
		}
		g.serving.Add(1)
		go func() {
			defer g.serving.Done()
			if err := g.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				g.log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("http listener stopped")
			}
		}()
	}
	return nil
}

// startBrokerLocked starts the embedded broker and its MQTT listeners.
func (g *Gateway) startBrokerLocked() error {
	acl, err := auth.NewACL(g.opts.TopicPrefix)
	if err != nil {
		return err
	}
	g.broker, err = broker.New(broker.Options{
		ACL:            acl,
		Users:          g.users,
		MQTTAddr:       g.opts.MQTTAddr,
		WSAddr:         g.opts.WSAddr,
		MQTTSAddr:      g.opts.MQTTSAddr,
		WSSAddr:        g.opts.WSSAddr,
		TLSConfig:      g.tlsConfig(),
		Logger:         g.log.With().Str("component", "broker").Logger(),
		IsCommandTopic: g.isCommandTopic,
		AllowAnonymous: g.opts.AllowAnonymous,
		MaxPacketSize:  g.opts.MaxPacketSize,
		// Loaded in broker.Start, with every stale online rewritten,
		// before the MQTT listeners accept.
		Storage:         g.brokerStorage(),
		RestoreRetained: g.restoreRetained,
	})
	if err != nil {
		return err
	}
	if err := g.broker.Start(); err != nil {
		var le *broker.ListenError
		if errors.As(err, &le) {
			setting, value := "mqtt-addr", g.opts.MQTTAddr
			switch le.Listener {
			case "ws":
				setting, value = "ws-addr", g.opts.WSAddr
			case "mqtts":
				setting, value = "mqtts-addr", g.opts.MQTTSAddr
			case "wss":
				setting, value = "wss-addr", g.opts.WSSAddr
			}
			return &SettingError{Setting: setting, Value: value, Err: le.Err}
		}
		return err
	}
	return nil
}

func listen(setting, addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &SettingError{Setting: setting, Value: addr, Err: err}
	}
	return ln, nil
}

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.serveReadyz)
	mux.Handle("GET /metrics", g.metrics.Handler())
	g.mountAPILocked(mux)
	return mux
}

// Registry returns the device registry, for the HTTP API and tests; nil
// before Start.
func (g *Gateway) Registry() *devices.Registry {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.bridge == nil {
		return nil
	}
	return g.bridge.Registry()
}

// Addrs returns the addresses bound by Start.
func (g *Gateway) Addrs() Addrs {
	g.mu.Lock()
	defer g.mu.Unlock()
	var a Addrs
	if g.broker != nil {
		a.MQTT, a.WS = g.broker.MQTTAddr(), g.broker.WSAddr()
	}
	if g.bridgeLn != nil {
		a.Bridge = g.bridgeLn.Addr()
	}
	if g.httpLn != nil {
		a.HTTP = g.httpLn.Addr()
	}
	if g.broker != nil {
		a.MQTTS, a.WSS = g.broker.MQTTSAddr(), g.broker.WSSAddr()
	}
	a.HTTPS, a.BridgeTLS = addrOf(g.httpsLn), addrOf(g.bridgeTLSLn)
	return a
}

// Shutdown stops accepting, publishes offline for every connected lamp and
// the gateway, closes the sockets and stops the broker. It returns
// ctx.Err() if ctx ends first; the broker is stopped either way.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutOnce.Do(func() {
		// Not under g.mu while waiting: HTTP handlers being drained
		// (/readyz, /metrics) read the gateway's parts under it.
		g.mu.Lock()
		g.stopping = true
		br, httpSrv, bk, coord, ext := g.bridge, g.httpSrv, g.broker, g.coord, g.ext
		g.mu.Unlock()
		if br != nil {
			g.shutErr = br.Shutdown(ctx)
		}
		if httpSrv != nil {
			if err := httpSrv.Shutdown(ctx); err != nil && g.shutErr == nil {
				g.shutErr = err
			}
		}
		leaveCluster(coord, ext)
		if bk != nil {
			bk.Bus().Publish(topics.GatewayStatus, []byte(topics.Offline), 0, true)
			// Let connected apps read the offlines before the broker
			// drops them.
			if err := bk.Drain(ctx); err != nil && g.shutErr == nil {
				g.shutErr = err
			}
		}
		g.mu.Lock()
		g.closeLocked()
		g.mu.Unlock()
	})
	g.serving.Wait()
	return g.shutErr
}

// closeLocked releases everything Start acquired.
func (g *Gateway) closeLocked() {
	if g.disc != nil {
		g.disc.Close()
	}
	if g.stopWatch != nil {
		g.stopWatch()
	}
	if g.bridgeLn != nil {
		g.bridgeLn.Close()
	}
	if g.httpLn != nil {
		g.httpLn.Close()
	}
	for _, ln := range []net.Listener{g.httpsLn, g.bridgeTLSLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if g.broker != nil {
		g.broker.Close()
	}
	leaveCluster(g.coord, g.ext)
	g.closeStoreLocked()
}

// BridgeStats returns the lamp bridge's counters; zero before Start.
func (g *Gateway) BridgeStats() bridge.Stats {
	g.mu.Lock()
	b := g.bridge
	g.mu.Unlock()
	if b == nil {
		return bridge.Stats{}
	}
	return b.Stats()
}
