package mqttbus

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/dispatch"
)

// Defaults for zero Options fields.
const (
	DefaultConnectTimeout       = 10 * time.Second
	DefaultAckTimeout           = 10 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
)

// maxGrantedQoS is the highest SUBACK return code that grants a
// subscription; 0x80 is failure [MQTT-3.9.3-2], and any other code is not
// MQTT 3.1.1 at all (mochi v2.7.9 sends v5's 0x91, "packet identifier in
// use") and cannot mean success either.
const maxGrantedQoS = 2

// Options configure a Bus. The zero value of each field is documented;
// cmd/lampgw fills these in.
type Options struct {
	// Broker is the broker URL: tcp://host:port, ssl://host:port,
	// ws://host:port/path or wss://host:port/path. Required.
	Broker string
	// ClientID is the MQTT client identifier; "" means "lampgw-" and 8
	// random hex digits. Two clients with one id disconnect each other.
	ClientID string
	// Username and Password authenticate the client; "" means none. The
	// password is never logged.
	Username, Password string
	// TLSConfig is used for ssl:// and wss://; nil means Go's defaults
	// (system roots, server name from the URL).
	TLSConfig *tls.Config
	// Logger receives connection events and rate-limited warnings. The
	// zero Logger discards them.
	Logger zerolog.Logger
	// ConnectTimeout bounds each connection attempt, the first one in New
	// included; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// AckTimeout bounds how long Publish, Subscribe and unsubscribe wait
	// for the broker's acknowledgement; 0 means DefaultAckTimeout.
	AckTimeout time.Duration
	// MaxReconnectInterval caps the backoff between reconnection attempts
	// (paho starts at 1 s and doubles); 0 means
	// DefaultMaxReconnectInterval, far below paho's 10 minutes.
	MaxReconnectInterval time.Duration
	// QueueSize is the hand-off queue length of each subscription; 0 means
	// dispatch.DefaultSize.
	QueueSize int
	// Will, if its Topic is not "", is what the broker publishes for this
	// client when its connection ends without a DISCONNECT: the process
	// killed, or the network silent for 1.5 times KeepAlive
	// [MQTT-3.1.2-8], [MQTT-3.1.2-24].
	Will Message
	// KeepAlive is the MQTT keep alive; 0 means DefaultKeepAlive. The
	// broker gives up on a silent client after 1.5 times it, and paho
	// finds a dead broker within about as long.
	KeepAlive time.Duration
	// Buffer is how many publishes Bus keeps while the connection is
	// down, to send in order once it is back (before OnConnect runs); 0
	// means DefaultBuffer and a negative value none. A retained publish
	// replaces a buffered one for its topic; past Buffer the oldest is
	// dropped, counted by BufferDropped and logged.
	Buffer int
	// OnConnect, if set, runs after each reconnection (not the first
	// connection, which New reports) once every subscription is made
	// again and the buffer is sent, on a goroutine of paho's: e.g. to
	// publish "online" again after a will said otherwise. It may publish
	// and subscribe.
	OnConnect func()
}

// DefaultKeepAlive is the MQTT keep alive when Options.KeepAlive is 0.
const DefaultKeepAlive = 30 * time.Second

// Bus is an MQTT client satisfying the bridge's Bus interface
// (bridge/bus.go). Its methods are safe for concurrent use.
type Bus struct {
	client     paho.Client
	log        zerolog.Logger
	broker     string // URL without password, for messages
	fence      string // our replay-fence topic
	ackTimeout time.Duration
	queueSize  int
	dropped    atomic.Int64
	out        outbox
	warn       zerolog.Logger // rate-limited, for drops
	onConnect2 func()
	closed     atomic.Bool
	closeOnce  sync.Once
	ready      chan struct{} // closed when the first OnConnect is done
	readyOnce  sync.Once
	queues     sync.WaitGroup // one per subscription goroutine
	callbacks  sync.WaitGroup // paho callbacks running in Bus code; see enter

	// lost is closed when the connection in use is lost, and made anew
	// by onConnect: a publish waiting for its acknowledgement stops
	// waiting then (see waitPublish).
	lostMu sync.Mutex
	lost   chan struct{}

	// opMu serialises the SUBSCRIBE and UNSUBSCRIBE round trips with
	// each other and with the resubscription after a reconnect, so the
	// broker's subscriptions always follow subs. Taken before mu.
	opMu sync.Mutex

	mu       sync.Mutex // guards subs, fenceSeq and each sub's window; the router takes it per message
	subs     map[*sub]struct{}
	fenceSeq uint64
}

// sub is one Subscribe.
type sub struct {
	bus     *Bus
	filter  string
	qos     byte
	filters []string // what it needs subscribed at the broker
	q       *dispatch.Queue
	once    sync.Once

	// Replay window, guarded by Bus.mu: open while fence is not 0, until
	// a fence message with a sequence number >= fence arrives.
	fence uint64
	seen  map[string]bool // topics replayed in this window
}

// New connects to opts.Broker and returns a Bus, or an error wrapping
// ErrConnect that names the broker if the first connection fails.
func New(opts Options) (*Bus, error) {
	if opts.Broker == "" {
		return nil, fmt.Errorf("%w: no Broker URL", ErrInvalidOptions)
	}
	if opts.ConnectTimeout < 0 || opts.AckTimeout < 0 || opts.MaxReconnectInterval < 0 || opts.QueueSize < 0 || opts.KeepAlive < 0 {
		return nil, fmt.Errorf("%w: negative timeout or queue size", ErrInvalidOptions)
	}
	connectTimeout := cmp.Or(opts.ConnectTimeout, DefaultConnectTimeout)
	clientID := opts.ClientID
	if clientID == "" {
		clientID = "lampgw-" + randomHex(4)
	}
	b := &Bus{
		broker:     redact(opts.Broker),
		fence:      "lampgw/bus/" + randomHex(8) + "/fence",
		ackTimeout: cmp.Or(opts.AckTimeout, DefaultAckTimeout),
		queueSize:  opts.QueueSize,
		ready:      make(chan struct{}),
		subs:       map[*sub]struct{}{},
		lost:       make(chan struct{}),
	}
	close(b.lost) // no connection yet
	b.log = opts.Logger.With().Str("broker", b.broker).Str("client_id", clientID).Logger()
	b.warn = b.log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	b.out.max = opts.Buffer
	if opts.Buffer == 0 {
		b.out.max = DefaultBuffer
	}
	b.onConnect2 = opts.OnConnect
	if opts.Will.Topic != "" {
		if err := dispatch.CheckPublish(opts.Will.Topic, opts.Will.QoS); err != nil {
			return nil, fmt.Errorf("%w: will: %w", ErrInvalidOptions, err)
		}
	}

	po := paho.NewClientOptions().
		AddBroker(opts.Broker).
		SetClientID(clientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		// Clean sessions: Bus subscribes again itself in onConnect, so a
		// broker that lost its state (restart without persistence) and
		// one that kept it behave alike.
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(false). // New reports a failed first connect
		SetConnectTimeout(connectTimeout).
		SetMaxReconnectInterval(cmp.Or(opts.MaxReconnectInterval, DefaultMaxReconnectInterval)).
		SetWriteTimeout(b.ackTimeout). // Publish must not block forever on a stuck socket
		SetOrderMatters(true).         // one router goroutine: per-publisher order
		SetDefaultPublishHandler(b.route).
		SetOnConnectHandler(b.onConnect).
		SetKeepAlive(cmp.Or(opts.KeepAlive, DefaultKeepAlive)).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			// paho runs this in a goroutine of its own, which may come
			// after the reconnection; then it is stale, and the
			// reconnecting handler, which paho runs in order before each
			// attempt, has done it.
			if !b.client.IsConnectionOpen() {
				b.connectionLost()
				b.out.down()
			}
			if b.enter() {
				defer b.callbacks.Done()
				b.log.Warn().Err(err).Msg("connection to broker lost; reconnecting")
			}
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			b.connectionLost()
			b.out.down()
			if b.enter() {
				defer b.callbacks.Done()
				b.log.Info().Msg("reconnecting to broker")
			}
		})
	if opts.TLSConfig != nil {
		po.SetTLSConfig(opts.TLSConfig)
	}
	if w := opts.Will; w.Topic != "" {
		po.SetBinaryWill(w.Topic, bytes.Clone(w.Payload), w.QoS, w.Retain)
	}
	b.client = paho.NewClient(po)

	tok := b.client.Connect()
	if !tok.WaitTimeout(connectTimeout + time.Second) {
		b.client.Disconnect(0)
		return nil, fmt.Errorf("%w to %s: timed out after %v", ErrConnect, b.broker, connectTimeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("%w to %s: %w", ErrConnect, b.broker, err)
	}
	// onConnect subscribes the fence topic; Subscribe needs it.
	select {
	case <-b.ready:
	case <-time.After(b.ackTimeout):
		b.Close()
		return nil, fmt.Errorf("%w to %s: no SUBACK for %s", ErrConnect, b.broker, b.fence)
	}
	b.log.Info().Msg("connected to broker")
	return b, nil
}

// Publish sends payload to topic and waits for the broker's
// acknowledgement (PUBACK/PUBCOMP for QoS 1/2; for QoS 0, until the
// packet is written). The payload is copied before Publish returns.
// While the connection is down, the message is buffered instead (see
// Options.Buffer) and Publish returns nil. If the connection is lost
// before the acknowledgement, Publish returns nil at once: paho keeps
// the message and sends it again after the reconnection. It fails with
// ErrInvalidTopic, ErrInvalidQoS, ErrClosed, or ErrTimeout (connected,
// but no acknowledgement within Options.AckTimeout), after which the
// message may still be delivered.
func (b *Bus) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if err := dispatch.CheckPublish(topic, qos); err != nil {
		return err
	}
	if b.closed.Load() {
		return ErrClosed
	}
	// paho keeps the slice in its packet (and its store, for QoS > 0).
	m := Message{Topic: topic, Payload: bytes.Clone(payload), QoS: qos, Retain: retain}
	// paho drops a QoS 0 message silently while it reconnects (v1.5.1
	// client.go Publish), so a closed connection buffers before paho
	// sees the message, not only once the lost handler ran.
	if buffered, _ := b.buffer(m, !b.client.IsConnectionOpen()); buffered {
		return nil
	}
	err := b.send(m)
	if errors.Is(err, errInFlight) {
		return nil
	}
	if errors.Is(err, ErrNotConnected) {
		b.buffer(m, true)
		return nil
	}
	return err
}

// send publishes m and waits as Publish documents.
func (b *Bus) send(m Message) error {
	lost := b.lostSignal()
	if err := b.waitPublish(b.client.Publish(m.Topic, m.QoS, m.Retain, m.Payload), lost); err != nil {
		return fmt.Errorf("mqttbus: publish %q: %w", m.Topic, err)
	}
	return nil
}

// errInFlight: the connection went before the broker acknowledged a
// publish. paho keeps it and sends it again once it has reconnected
// (v1.5.1 client.reconnect resumes its store), so the message is not
// buffered as well, which could send a stale retained value after a newer
// one.
var errInFlight = errors.New("connection lost before the broker acknowledged; paho sends it again after the reconnection")

// waitPublish waits for a publish token until it completes, the
// connection it was sent on (lost, taken before sending) is lost, or
// the acknowledgement timeout passes. A lost connection is errInFlight:
// the token would wait for the reconnection, however long the broker is
// away, holding a lamp's reader or a shutdown.
func (b *Bus) waitPublish(tok paho.Token, lost <-chan struct{}) error {
	t := time.NewTimer(b.ackTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-lost:
		select {
		case <-tok.Done():
		default:
			return errInFlight
		}
	case <-t.C:
		return ErrTimeout
	}
	return b.wait(tok) // done: its error, mapped as wait maps it
}

// lostSignal returns the channel closed when the current connection is
// lost (already closed while there is none).
func (b *Bus) lostSignal() <-chan struct{} {
	b.lostMu.Lock()
	defer b.lostMu.Unlock()
	return b.lost
}

// connectionUp starts a new connection's lost channel; the previous
// connection is gone, whether or not its loss was seen.
func (b *Bus) connectionUp() {
	b.lostMu.Lock()
	defer b.lostMu.Unlock()
	b.closeLostLocked()
	b.lost = make(chan struct{})
}

func (b *Bus) connectionLost() {
	b.lostMu.Lock()
	defer b.lostMu.Unlock()
	b.closeLostLocked()
}

func (b *Bus) closeLostLocked() {
	select {
	case <-b.lost: // already
	default:
		close(b.lost)
	}
}

// buffer keeps m for after the reconnection if the connection is down
// (or force), and reports whether it did.
func (b *Bus) buffer(m Message, force bool) (buffered bool, dropped int) {
	buffered, dropped = b.out.add(m, force)
	if dropped > 0 {
		b.warn.Warn().Int64("dropped_total", b.out.drops()).Int("buffer", b.out.max).
			Msg("broker unreachable and publish buffer full: oldest publish dropped")
	}
	return buffered, dropped
}

// flush sends the buffered publishes, oldest first, until none is left
// (the connection is then up) or one fails (it is down again, and the
// next onConnect goes on).
func (b *Bus) flush() {
	n := 0
	for {
		m, ok := b.out.next()
		if !ok {
			break
		}
		if err := b.send(m); err != nil && !errors.Is(err, errInFlight) {
			b.out.putBack(m)
			b.log.Warn().Err(err).Int("sent", n).Msg("sending buffered publishes stopped")
			return
		}
		n++
	}
	if n > 0 {
		b.log.Info().Int("sent", n).Msg("buffered publishes sent")
	}
}

// Broker is the broker URL without its password, for messages.
func (b *Bus) Broker() string { return b.broker }

// Connected reports whether the connection to the broker is up now.
func (b *Bus) Connected() bool { return b.client.IsConnectionOpen() }

// Buffered returns how many publishes wait for the connection.
func (b *Bus) Buffered() int { return b.out.len() }

// BufferDropped returns how many publishes were dropped, ever, because
// the connection was down and the buffer full.
func (b *Bus) BufferDropped() int64 { return b.out.drops() }

// Subscribe calls handler for every message matching filter until the
// returned unsubscribe is called or the Bus closes. Handler calls are
// serial, in the order the broker sent the messages, on a goroutine of
// the subscription's own; the handler owns payload. retained is true only
// for the broker's replay of its retained store made for this
// subscription (and again after a reconnect).
//
// Subscribe waits for the broker's SUBACK and fails with ErrRefused if
// the broker refused the filter. If the connection is down, or the SUBACK
// does not come within AckTimeout, the subscription is kept and made
// again when the connection is back.
//
// unsubscribe is idempotent and may be called from the handler; once it
// returns no new handler call starts. It then unsubscribes at the broker
// the filters no other subscription needs.
func (b *Bus) Subscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) (unsubscribe func(), err error) {
	if err := dispatch.CheckSubscribe(filter, qos, handler); err != nil {
		return nil, err
	}
	s := &sub{bus: b, filter: filter, qos: qos, filters: []string{filter}}
	if parent, ok := dispatch.HashParent(filter); ok {
		s.filters = append(s.filters, parent)
	}

	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	s.q = dispatch.New(handler, dispatch.Options{
		Size:   b.queueSize,
		Logger: b.log.With().Str("filter", filter).Logger(),
		Drops:  &b.dropped,
		WG:     &b.queues,
	})
	b.subs[s] = struct{}{}
	b.fenceSeq++
	seq := b.fenceSeq
	s.fence, s.seen = seq, map[string]bool{}
	// Subscribing a filter again, even one already subscribed, makes the
	// broker replay its retained messages [MQTT-3.8.4-3]: the replay this
	// subscription needs. The QoS is the highest any subscription wants.
	filters := b.brokerFiltersLocked(s.filters)
	b.mu.Unlock()

	tok := b.client.SubscribeMultiple(filters, nil)
	err = b.wait(tok)
	if err == nil {
		if refused := refusedFilters(tok); len(refused) > 0 {
			s.q.Stop()
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
			return nil, fmt.Errorf("%w: %s", ErrRefused, strings.Join(refused, ", "))
		}
		b.publishFence(seq)
	} else {
		b.log.Warn().Err(err).Str("filter", filter).Msg("subscribe not acknowledged; will subscribe on reconnect")
	}
	return s.unsubscribe, nil
}

// Dropped returns how many messages all subscriptions dropped because
// their handler fell behind.
func (b *Bus) Dropped() int64 { return b.dropped.Load() }

// Close disconnects from the broker, ends every subscription and waits
// for running handlers to return, so it must not be called from a
// handler. It is idempotent and returns nil; the error is for io.Closer.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed.Store(true)
		for s := range b.subs {
			s.q.Stop()
		}
		b.mu.Unlock()
		b.client.Disconnect(250) // ms for in-flight acknowledgements
		b.callbacks.Wait()
		b.queues.Wait()
		b.log.Info().Msg("disconnected from broker")
	})
	return nil
}

// route is paho's default publish handler: with no per-filter routes,
// every message arrives here once, on paho's router goroutine. It must
// not block: it copies and queues.
func (b *Bus) route(_ paho.Client, m paho.Message) {
	topic, payload, retained := m.Topic(), m.Payload(), m.Retained()
	if topic == b.fence {
		b.fenceArrived(payload)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if !dispatch.Match(s.filter, topic) {
			continue
		}
		if retained {
			if s.fence == 0 || s.seen[topic] {
				continue // another subscription's replay, or a second copy
			}
			s.seen[topic] = true
		}
		// Each subscription gets its own copy: paho hands one slice to
		// every handler.
		s.q.TryPush(dispatch.Message{Topic: topic, Payload: bytes.Clone(payload), Retained: retained})
	}
}

// fenceArrived closes the replay windows opened up to sequence number
// payload: the broker has sent everything it queued before the fence.
func (b *Bus) fenceArrived(payload []byte) {
	n, err := strconv.ParseUint(string(payload), 10, 64)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.fence != 0 && s.fence <= n {
			s.fence, s.seen = 0, nil
		}
	}
}

// publishFence publishes fence sequence number seq. QoS 1 keeps it in the
// broker's ordered queue of QoS > 0 messages for this client, behind a
// QoS 1 or 2 replay (Mosquitto sends QoS 0 at once and queues the rest).
// Its acknowledgement is not awaited: if it is lost with the connection,
// onConnect opens new windows and sends a new fence.
func (b *Bus) publishFence(seq uint64) {
	b.client.Publish(b.fence, 1, false, strconv.FormatUint(seq, 10))
}

// onConnect runs on a goroutine of paho's after every successful
// (re)connection: it subscribes the fence topic and every filter held,
// reopening every replay window, since a clean session starts with none.
func (b *Bus) onConnect(c paho.Client) {
	if !b.enter() {
		return
	}
	defer b.callbacks.Done()
	first := false
	b.readyOnce.Do(func() { first = true })
	b.connectionUp()
	b.resubscribe(c)
	// Not under opMu: OnConnect may subscribe. Before ready: until flush
	// has marked the connection up, Publish buffers instead of waiting
	// for the broker, and New's caller may count on a returned Publish
	// having reached it.
	b.flush()
	if first {
		close(b.ready)
	}
	if !first && b.onConnect2 != nil {
		b.onConnect2()
	}
}

// resubscribe subscribes the fence topic and every filter held.
func (b *Bus) resubscribe(c paho.Client) {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.mu.Lock()
	b.fenceSeq++
	seq := b.fenceSeq
	filters := b.brokerFiltersLocked(nil)
	filters[b.fence] = 1
	for s := range b.subs {
		s.fence, s.seen = seq, map[string]bool{}
	}
	b.mu.Unlock()

	tok := c.SubscribeMultiple(filters, nil)
	if err := b.wait(tok); err != nil {
		// The connection went again; the next onConnect retries.
		b.log.Warn().Err(err).Msg("resubscribe after connect failed")
		return
	}
	if refused := refusedFilters(tok); len(refused) > 0 {
		b.log.Error().Strs("filters", refused).Msg("broker refused subscriptions after connect")
	}
	b.publishFence(seq)
	b.log.Info().Int("filters", len(filters)-1).Msg("subscribed after connect")
}

// enter reports whether a paho callback may run Bus code, and if so
// counts it in b.callbacks; the caller must then call b.callbacks.Done.
// paho's Disconnect returns after its quiesce time while a reconnection
// attempt may go on (client.go Disconnect, status.go Disconnecting), so
// callbacks can come after Close; once Close has set closed none starts,
// and Close waits for those already running.
func (b *Bus) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return false
	}
	b.callbacks.Add(1)
	return true
}

// brokerFiltersLocked returns every filter the subscriptions need at the
// broker, with the highest QoS any of them asked for, limited to only if
// not nil. b.mu must be held.
func (b *Bus) brokerFiltersLocked(only []string) map[string]byte {
	m := map[string]byte{}
	for s := range b.subs {
		for _, f := range s.filters {
			if only == nil || slices.Contains(only, f) {
				m[f] = max(m[f], s.qos)
			}
		}
	}
	return m
}

func (s *sub) unsubscribe() {
	s.once.Do(func() {
		s.q.Stop()
		b := s.bus
		b.opMu.Lock()
		defer b.opMu.Unlock()
		b.mu.Lock()
		delete(b.subs, s)
		still := b.brokerFiltersLocked(s.filters)
		b.mu.Unlock()
		if b.closed.Load() {
			return
		}
		var drop []string
		for _, f := range s.filters {
			if _, ok := still[f]; !ok {
				drop = append(drop, f)
			}
		}
		if len(drop) == 0 {
			return
		}
		if err := b.wait(b.client.Unsubscribe(drop...)); err != nil {
			// Harmless: route drops what no subscription matches, and a
			// reconnect subscribes only what is held.
			b.log.Warn().Err(err).Strs("filters", drop).Msg("unsubscribe not acknowledged")
		}
	})
}

// wait waits for tok within the ack timeout and translates paho's errors.
func (b *Bus) wait(tok paho.Token) error {
	if !tok.WaitTimeout(b.ackTimeout) {
		return ErrTimeout
	}
	err := tok.Error()
	if errors.Is(err, paho.ErrNotConnected) {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return err
}

// refusedFilters returns the filters a completed SUBSCRIBE was refused,
// each with its SUBACK return code.
func refusedFilters(tok paho.Token) []string {
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	var refused []string
	for f, code := range st.Result() {
		if code > maxGrantedQoS {
			refused = append(refused, fmt.Sprintf("%s (0x%02x)", f, code))
		}
	}
	slices.Sort(refused)
	return refused
}

// redact removes the password from a broker URL for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil:
		return u.Redacted()
	case strings.Contains(raw, "@"):
		return "(unparsable broker URL with credentials)"
	default:
		return raw
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
