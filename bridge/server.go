package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Options configure a Server. Every zero value means the documented
// default.
type Options struct {
	// Bus carries publishes and command subscriptions; required. If it
	// is a ReplyBus, MQTT 5 commands get their acks on their response
	// topic too.
	Bus Bus
	// Registry holds device state; nil means a new one made from Devices,
	// whose acks the server publishes. A Registry given here publishes
	// acks only if its creator's OnAck calls PublishAck.
	Registry *devices.Registry
	// Devices configures the registry the server makes when Registry is
	// nil; its OnAck is replaced by the server's.
	Devices devices.Options
	// Prefix is the lamp topic prefix; "" means topics.DefaultPrefix.
	Prefix string
	// Schema validates every lamp's values; the zero Schema is the
	// default lamp (brightness 0..1023).
	Schema devices.Schema
	// MaxFrame is the longest frame in bytes, terminator excluded, and
	// the longest command payload; 0 means 1024.
	MaxFrame int
	// MaxBadFrames bad frames in a row close a connection; 0 means 20.
	MaxBadFrames int
	// HandshakeTimeout closes connections that have not identified in
	// time; 0 means 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes identified connections that send nothing for
	// this long; 0 means never, since a lamp may only speak on change.
	// TCP keepalive still finds dead peers.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a lamp; 0 means 10s.
	WriteTimeout time.Duration
	// WriteQueue is how many frames may wait for a lamp before it is
	// dropped as too slow; 0 means 64.
	WriteQueue int
	// KeepAlive is the idle time before TCP keepalive probes on every
	// lamp socket, accepted or dialed; three unanswered probes KeepAlive/3
	// apart close it. 0 means 30s. A lamp that lost power sends no FIN, and
	// only probes (or IdleTimeout) find it.
	KeepAlive time.Duration
	// DialTimeout bounds one connection attempt to a dialed lamp; 0 means
	// 10s.
	DialTimeout time.Duration
	// RedialMin and RedialMax bound the wait between attempts to connect
	// to a dialed lamp: it starts at RedialMin and doubles up to RedialMax,
	// with jitter. 0 means 1s and 30s.
	RedialMin, RedialMax time.Duration
	// RequireKnownDevices refuses a HELLO for an id that is not in the
	// devices file.
	RequireKnownDevices bool
	// MaxConns bounds the lamp connections open at once; more are answered
	// "ERR too many connections" and closed. 0 means 10000, the registry's
	// default size.
	MaxConns int
	// MaxConnsPerAddr bounds the connections from one remote IP address
	// (dialed lamps aside); 0 means 256, enough for a simulator or a NAT
	// in front of a fleet, few enough that one host cannot take them all.
	MaxConnsPerAddr int
	// FrameRate is how many frames per second one connection may send on
	// average, FrameBurst how many at once; past it the reader slows down.
	// 0 means 100 and twice FrameRate; a negative FrameRate means no limit.
	FrameRate  float64
	FrameBurst int
	// AdmitRate is how many lamps per second may identify, across all
	// connections; more wait their turn (their connection stays open), so
	// a fleet reconnecting at once after a power cut is admitted at a
	// steady pace while MQTT apps keep receiving. 0 means 5000 (a fleet of
	// 10,000 back within about 2 s); bursts are a quarter of a second's
	// worth, at most 500; negative means no limit.
	AdmitRate float64
	// DebugMirror publishes every frame to and from an identified lamp on
	// lampgw/debug/<id>/rx and /tx, not retained, tokens replaced by ***.
	DebugMirror bool
	// ObserveReport, if set, hears how long each report that changed
	// something took from the frame's arrival to its last publish, for the
	// latency histogram of package metrics. It must be fast.
	ObserveReport func(time.Duration)
	// StateInterval is the least time between two publishes of a lamp's
	// lamp/<id>/state: a change after a quiet spell goes out at once,
	// later ones within the interval are held and the latest goes out
	// when it ends (values on lamp/<id>/<key> always go at once). 0 means
	// DefaultStateInterval, 100ms; negative publishes the state with
	// every report.
	StateInterval time.Duration
	// QoS of every publish and subscription; the zero value is QoS 0.
	QoS byte
	// Custody, if set, runs the server as one of several bridges on one
	// broker (package cluster): no subscription to every lamp's commands,
	// only to those of the lamps Custody subscribes with SubscribeLamp.
	// nil means this is the only bridge, holding commands for all lamps.
	Custody Custody
	// Logger receives lifecycle events at info and rejected input at a
	// rate-limited warn.
	Logger zerolog.Logger
}

func (o *Options) ensureDefaults() {
	if o.StateInterval == 0 {
		o.StateInterval = DefaultStateInterval
	}
	if o.Prefix == "" {
		o.Prefix = topics.DefaultPrefix
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = 1024
	}
	if o.MaxBadFrames <= 0 {
		o.MaxBadFrames = 20
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.WriteQueue <= 0 {
		o.WriteQueue = 64
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.RedialMin <= 0 {
		o.RedialMin = time.Second
	}
	if o.RedialMax <= 0 {
		o.RedialMax = 30 * time.Second
	}
	o.RedialMax = max(o.RedialMax, o.RedialMin)
	if o.MaxConns <= 0 {
		o.MaxConns = 10000
	}
	if o.MaxConnsPerAddr <= 0 {
		o.MaxConnsPerAddr = 256
	}
	if o.AdmitRate == 0 {
		o.AdmitRate = 5000
	}
	if o.FrameRate == 0 {
		o.FrameRate = 100
	}
	if o.FrameBurst <= 0 {
		o.FrameBurst = max(1, int(2*o.FrameRate))
	}
}

// Server translates lamp connections to and from the Bus.
type Server struct {
	opts Options
	log  zerolog.Logger
	// warn is log sampled, for input that a hostile or broken peer can
	// repeat at will.
	warn zerolog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	unsubs []func()
	wg     sync.WaitGroup

	// devs is the devices file in force; nil means none.
	devs atomic.Pointer[devices.File]
	// devMu serialises SetDevices and guards dialers. Lock order: devMu
	// before mu.
	devMu   sync.Mutex
	dialers map[string]*dialer

	stats stats
	// admit paces identifications (Options.AdmitRate); nil: no limit.
	admit *rate.Limiter
	// ownRegistry is set when NewServer made the registry; Shutdown
	// closes it.
	ownRegistry bool

	mu        sync.Mutex
	closed    bool
	perAddr   map[netip.Addr]int
	failed    map[netip.Addr]*rate.Limiter
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
}

// NewServer returns a Server subscribed to the command topics on
// opts.Bus. Connections are given to it by Serve or ServeConn.
func NewServer(opts Options) (*Server, error) {
	if opts.Bus == nil {
		return nil, errors.New("bridge: Options.Bus is required")
	}
	if err := topics.CheckPrefix(opts.Prefix); opts.Prefix != "" && err != nil {
		return nil, err
	}
	opts.ensureDefaults()
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		warn:      opts.Logger.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		dialers:   make(map[string]*dialer),
		perAddr:   make(map[netip.Addr]int),
		failed:    make(map[netip.Addr]*rate.Limiter),
	}
	if s.opts.AdmitRate > 0 {
		s.admit = rate.NewLimiter(rate.Limit(s.opts.AdmitRate), min(500, max(1, int(s.opts.AdmitRate/4))))
	}
	if s.opts.Registry == nil {
		dopts := opts.Devices
		dopts.OnAck = s.PublishAck
		if dopts.OnStoreError == nil {
			dopts.OnStoreError = func(id string, err error) {
				s.warn.Error().Err(err).Str("device", id).Msg("pending commands not stored")
			}
		}
		reg, err := devices.Open(dopts)
		if err != nil {
			return nil, err
		}
		s.opts.Registry = reg
		s.ownRegistry = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	filters := []string{topics.SetFilter(opts.Prefix), topics.SetKeyFilter(opts.Prefix)}
	if opts.Custody != nil {
		filters = nil // per lamp, see SubscribeLamp
	}
	for _, filter := range filters {
		unsub, err := s.subscribeCommands(filter)
		if err != nil {
			s.unsubscribe()
			return nil, err
		}
		s.unsubs = append(s.unsubs, unsub)
	}
	return s, nil
}

// Registry returns the registry the server reports into.
func (s *Server) Registry() *devices.Registry { return s.opts.Registry }

func (s *Server) unsubscribe() {
	for _, u := range s.unsubs {
		u()
	}
	s.unsubs = nil
}

// Serve accepts lamp connections on ln until Shutdown, serving each with
// ServeConn. It backs off on accept errors other than a closed listener
// (running out of file descriptors must not spin the CPU) and always
// returns a non-nil error: ErrServerClosed after Shutdown. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	defer ln.Close()
	if !s.trackListener(ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.warn.Warn().Err(err).Dur("retry_in", backoff).Msg("bridge accept failed")
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ServeConn(s.ctx, conn)
		}()
	}
}

func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ServeConn speaks the lamp protocol on conn until the peer leaves, the
// connection fails, ctx ends or the server shuts down. A connection from
// an address that a device's match holds is that device from the start;
// others must identify. ServeConn closes conn.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	s.serve(ctx, conn, s.matchedConfig(conn.RemoteAddr()))
}

// serve is ServeConn for a connection whose device, if preset is not nil,
// is known without a HELLO: matched by address or dialed by us.
//
// The frames of this goroutine below run stay on its stack while an idle
// lamp waits in Read, so they are kept small: at about 2 KB in all, the
// runtime halves an idle lamp's 8 KB stack at the next collection, and
// 4 KB per lamp is a third of what an idle lamp costs (see
// BenchmarkIdleLamps).
func (s *Server) serve(ctx context.Context, conn net.Conn, preset *devices.Config) {
	sess, release := s.admitConn(conn, preset)
	if sess == nil {
		return
	}
	defer release()
	sess.run(ctx, preset)
}

// admitConn counts conn against the connection limits and returns its
// session and the function that uncounts it, or a nil session when conn
// is refused (it is answered and closed then).
func (s *Server) admitConn(conn net.Conn, preset *devices.Config) (*session, func()) {
	s.setKeepAlive(conn)
	sess := newSession(s, conn)
	sess.preset = preset != nil
	addr, hasAddr := remoteIP(conn)
	// A dialed lamp is one we chose to call; it counts in the total only.
	perAddr := hasAddr && (preset == nil || preset.Dial == "")
	s.mu.Lock()
	var refused error
	switch {
	case s.closed:
		s.mu.Unlock()
		conn.Close()
		return nil, nil
	case len(s.sessions) >= s.opts.MaxConns:
		refused = ErrTooManyConnections
		s.stats.refusedTotal.Add(1)
	case perAddr && s.perAddr[addr] >= s.opts.MaxConnsPerAddr:
		refused = fmt.Errorf("%w from %s", ErrTooManyConnections, addr)
		s.stats.refusedPerAddr.Add(1)
	}
	if refused != nil {
		s.mu.Unlock()
		s.warn.Warn().Str("remote", conn.RemoteAddr().String()).Str("reason", refused.Error()).Msg("lamp connection refused")
		// One short try to say why; a peer that doesn't read is not
		// waited for.
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write(AppendError(nil, ErrTooManyConnections))
		conn.Close()
		return nil, nil
	}
	if perAddr {
		s.perAddr[addr]++
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	return sess, func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		if perAddr {
			if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
				delete(s.perAddr, addr)
			}
		}
		s.mu.Unlock()
		s.wg.Done()
	}
}

// Shutdown stops accepting, closes every lamp connection (each publishes
// its lamp's "offline" as it ends), unsubscribes from commands and waits
// for the connections' goroutines, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	// devMu first, so that no SetDevices is between its closed check and
	// starting a dialer (wg.Add) while we wait.
	s.devMu.Lock()
	s.mu.Lock()
	s.devMu.Unlock()
	if s.closed {
		s.mu.Unlock()
		return s.wait(ctx)
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	s.unsubscribe()
	s.cancel()
	for _, sess := range sessions {
		sess.fail(ErrServerClosed)
	}
	err := s.wait(ctx)
	if s.ownRegistry {
		// After the sessions: their unwritten frames went back to
		// pending. Now no timer may ack or write on a closing bus.
		s.opts.Registry.Close()
	}
	return err
}

func (s *Server) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) publish(topic string, payload []byte, retain bool) {
	if err := s.opts.Bus.Publish(topic, payload, s.opts.QoS, retain); err != nil {
		s.warn.Warn().Err(err).Str("topic", topic).Msg("publish failed")
	}
}

// onCommand handles a publish on lamp/+/set or lamp/+/+/set.
func (s *Server) onCommand(topic string, payload []byte, retained bool) {
	s.command(topic, payload, retained, nil)
}

// command is onCommand for a command whose app wants its acks sent to
// reply too, if not nil (onRequest).
func (s *Server) command(topic string, payload []byte, retained bool, reply *devices.Reply) {
	t, err := topics.Parse(s.opts.Prefix, topic)
	if err != nil {
		// Only command filters lead here, so prefix/<id>/<key>/set with a
		// valid id is a command with a bad key: tell the app why.
		parts := strings.Split(strings.TrimPrefix(topic, s.opts.Prefix+"/"), "/")
		if len(parts) == 3 && topics.ValidID(parts[0]) {
			s.rejectCommand(parts[0], topic, payload, devices.CheckKey(parts[1]), devices.Command{Reply: reply})
		}
		return
	}
	if !t.Kind.IsCommand() {
		return
	}
	if retained {
		// A retained command would switch the lamp again for every
		// client that subscribes later ("ghost switching"). It is not a
		// command now: clear it from the broker and drop it.
		if len(payload) > 0 {
			s.warn.Warn().Str("topic", topic).Msg("cleared a retained command; send commands without the retain flag")
			s.publish(topic, nil, true)
		}
		return
	}
	if len(payload) == 0 {
		return // how MQTT clears a retained message; not a command
	}
	if len(payload) > s.opts.MaxFrame {
		s.rejectCommand(t.Device, topic, payload, ErrFrameTooLong, devices.Command{Reply: reply})
		return
	}
	pairs, rid, err := DecodeRequest(t.Key, payload, s.schema(t.Device))
	if err == nil {
		now := s.opts.Devices.Now
		if now == nil {
			now = time.Now
		}
		cmds := make([]devices.Command, len(pairs))
		for i, p := range pairs {
			cmds[i] = devices.Command{Pair: p, RID: rid, Reply: reply, At: now()}
		}
		err = s.opts.Registry.Command(t.Device, cmds)
	}
	if err != nil {
		s.rejectCommand(t.Device, topic, payload, err, devices.Command{RID: rid, Reply: reply})
		return
	}
	s.log.Debug().Str("device", t.Device).Str("rid", rid).Msg("command")
}

// ackJSON is what lampgw publishes on lamp/<id>/ack.
type ackJSON struct {
	RID    string          `json:"rid,omitempty"`
	Key    string          `json:"key,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
	Status string          `json:"status"`
	Error  string          `json:"error,omitempty"`
	Time   string          `json:"time"`
}

// PublishAck publishes a command's progress on lamp/<id>/ack, if its app
// asked (a rid or an MQTT 5 response topic). It is the registry's OnAck.
func (s *Server) PublishAck(a devices.Ack) { s.publishAck(a, "") }

func (s *Server) publishAck(a devices.Ack, errText string) {
	if !a.Command.Wants() {
		return
	}
	j := ackJSON{RID: a.Command.RID, Key: a.Command.Key, Status: string(a.Status), Error: errText,
		Time: a.Time.UTC().Format(time.RFC3339Nano)}
	if a.Command.Value.JSON != "" {
		j.Value = json.RawMessage(a.Command.Value.JSON)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return
	}
	s.publish(topics.Ack(s.opts.Prefix, a.ID), b, false)
	if a.Command.Reply != nil {
		s.publishReply(*a.Command.Reply, b)
	}
}

// commandError is the JSON published on lamp/<id>/error.
type commandError struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	Error   string `json:"error"`
}

// rejectCommand refuses a command, and acks it rejected if its app asked
// (c's RID and Reply).
func (s *Server) rejectCommand(id, topic string, payload []byte, err error, c devices.Command) {
	s.stats.commandsRejected.Add(1)
	s.refuseCommand(id, topic, payload, err)
	s.publishAck(devices.Ack{ID: id, Command: c, Status: devices.Rejected, Time: time.Now()}, reason(err))
}

func (s *Server) refuseCommand(id, topic string, payload []byte, err error) {
	const maxEcho = 256
	if len(payload) > maxEcho {
		payload = payload[:maxEcho]
	}
	msg := reason(err)
	b, _ := json.Marshal(commandError{Topic: topic, Payload: strings.ToValidUTF8(string(payload), string(utf8.RuneError)), Error: msg})
	s.publish(topics.Error(s.opts.Prefix, id), b, false)
	s.warn.Warn().Str("device", id).Str("topic", topic).Str("reason", msg).Msg("command refused")
}
