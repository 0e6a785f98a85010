package broker

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/dispatch"
)

// InlineBus publishes and subscribes inside the broker process, without a
// network connection. It satisfies the bridge's Bus interface
// (bridge/bus.go) and is safe for concurrent use.
//
// Publish copies the payload and publishes it as mochi's inline client:
// network subscribers get it like any other message, and the retained
// store keeps it when retain is set.
//
// Each Subscribe makes its own subscription with its own hand-off queue
// (internal/dispatch) and goroutine. mochi calls inline handlers on the
// publisher's goroutine (server.go publishToSubscribers), which may be a
// network client's read loop; InlineBus only copies the payload and
// queues it there, so a slow or panicking handler never stalls or kills a
// publisher. Messages for a subscription arrive in the order each
// publisher published them; when the queue is full new ones are dropped
// and counted (Dropped).
type InlineBus struct {
	srv       *mqtt.Server
	log       zerolog.Logger
	queueSize int
	nextID    atomic.Int64 // mochi inline subscription identifiers
	dropped   atomic.Int64
	closed    atomic.Bool
	wg        sync.WaitGroup // one per subscription goroutine

	mu   sync.Mutex // guards subs and orders Subscribe against close
	subs map[*inlineSub]struct{}

	replies replies // MQTT 5 request/response; see reply.go
}

func newInlineBus(srv *mqtt.Server, queueSize int, log zerolog.Logger) *InlineBus {
	return &InlineBus{srv: srv, log: log, queueSize: queueSize, subs: map[*inlineSub]struct{}{}, replies: newReplies(srv, log)}
}

// Publish sends payload to topic as the broker itself. The payload is
// copied before Publish returns. qos caps the QoS network subscribers
// receive it with; the inline publish itself completes at once. It fails
// with ErrInvalidTopic for a topic that is not a valid publish topic
// (wildcards, '$' prefix, ...), ErrInvalidQoS, or ErrClosed.
func (b *InlineBus) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if err := dispatch.CheckPublish(topic, qos); err != nil {
		return err
	}
	if b.closed.Load() {
		return ErrClosed
	}
	// mochi copies the payload for the retained store and for network
	// clients (packets.Packet.Copy), but hooks see the caller's slice, and
	// a persistence hook may keep it; the contract is ours, so copy here.
	if err := b.srv.Publish(topic, bytes.Clone(payload), retain, qos); err != nil {
		return fmt.Errorf("broker: publish %q: %w", topic, err)
	}
	return nil
}

// Subscribe calls handler for every message matching filter until the
// returned unsubscribe is called or the broker closes.
//
// Retained messages matching filter are replayed first with retained set;
// Subscribe returns once they are queued (it waits for room, so a large
// replay is never dropped). Live messages always have retained false, even
// when their publisher set it [MQTT-3.3.1-9]. A live message that arrives
// during the replay is held back and delivered after it, so a replayed
// value never overwrites a newer live one. qos is accepted for the Bus
// interface and otherwise ignored: inline delivery is immediate.
//
// Matching follows MQTT rather than mochi's inline client: "x/#" matches
// "x" [MQTT-4.7.1-2] and a filter starting with a wildcard never receives
// $-topics such as $SYS [MQTT-4.7.2-1]. Subscriptions with equal filters
// are independent.
//
// unsubscribe is idempotent and may be called from the handler; once it
// returns no new handler call starts.
func (b *InlineBus) Subscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) (unsubscribe func(), err error) {
	if err := dispatch.CheckSubscribe(filter, qos, handler); err != nil {
		return nil, err
	}
	return b.subscribe(filter, func(m dispatch.Message) { handler(m.Topic, m.Payload, m.Retained) }, false)
}

// subscribe is Subscribe with a checked filter and a handler of whole
// messages; requests gives live messages their response topic
// (SubscribeRequests).
func (b *InlineBus) subscribe(filter string, handler dispatch.MessageHandler, requests bool) (unsubscribe func(), err error) {
	s := &inlineSub{
		bus:       b,
		noDollar:  dispatch.WildcardFirst(filter),
		requests:  requests,
		replaying: true,
	}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	s.q = dispatch.NewMessageQueue(handler, dispatch.Options{
		Size:   b.queueSize,
		Logger: b.log.With().Str("filter", filter).Logger(),
		Drops:  &b.dropped,
		WG:     &b.wg,
	})
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	// mochi's index misses "x" for an inline "x/#": scanSubscribers
	// (topics.go) gathers the inline subscriptions of the parent particle
	// itself where it means its "#" child. Subscribing the parent too
	// makes live delivery follow the spec.
	filters := []string{filter}
	if parent, ok := dispatch.HashParent(filter); ok {
		filters = append(filters, parent)
	}
	for _, f := range filters {
		if !s.register(f) {
			return nil, ErrClosed
		}
	}

	// The replay is ours, not mochi's. Server.Subscribe replays through
	// the same handler, synchronously, while live messages may already
	// arrive on other goroutines, so the two could not be told apart.
	// And it reads the index with Topics.Messages, whose scanMessages
	// reads particle.retainPath without the lock RetainMessage writes it
	// under (a data race, mochi-mqtt/server#200; it also skips "x" for
	// "x/#"). Topics.Retained is a locked map, and Match applies the
	// spec's rules, $-topics included.
	for topic, pk := range b.srv.Topics.Retained.GetAll() {
		if !dispatch.Match(filter, topic) {
			continue
		}
		if !s.q.Push(dispatch.Message{Topic: topic, Payload: bytes.Clone(pk.Payload), Retained: true}) {
			return nil, ErrClosed
		}
	}
	s.endReplay()
	return s.unsubscribe, nil
}

// Dropped returns how many messages all subscriptions dropped because
// their handler fell behind.
func (b *InlineBus) Dropped() int64 { return b.dropped.Load() }

// close ends every subscription and waits for their goroutines. Handlers
// already running finish first, so it must not run on a handler.
func (b *InlineBus) close() {
	b.mu.Lock()
	b.closed.Store(true)
	subs := make([]*inlineSub, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.unsubscribe()
	}
	b.wg.Wait()
}

// inlineSub is one InlineBus subscription: one or two mochi inline
// subscriptions, each with a unique identifier because mochi keys inline
// subscriptions by identifier alone (topics.go InlineSubscriptions, and
// Subscribers.InlineSubscriptions map[int]), so two with the same id
// shadow each other.
type inlineSub struct {
	bus      *InlineBus
	q        *dispatch.Queue
	noDollar bool // filter starts with a wildcard: skip $-topics
	requests bool // pass on response topics (SubscribeRequests)
	once     sync.Once

	mu        sync.Mutex
	stopped   bool
	regs      []packets.Subscription // what to remove from mochi's index
	replaying bool                   // live messages wait in pending
	pending   []dispatch.Message
}

func (s *inlineSub) register(filter string) bool {
	sub := packets.Subscription{Identifier: int(s.bus.nextID.Add(1)), Filter: filter}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.regs = append(s.regs, sub)
	s.bus.srv.Topics.InlineSubscribe(mqtt.InlineSubscription{Subscription: sub, Handler: s.live})
	return true
}

// live is the mochi inline handler. It runs on the publisher's goroutine,
// so it only filters, copies and queues; the recover keeps a bug here
// from taking the whole process down with the publisher.
func (s *inlineSub) live(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	defer func() {
		if r := recover(); r != nil {
			s.bus.log.Error().Interface("panic", r).Str("topic", pk.TopicName).Msg("inline delivery panicked")
		}
	}()
	// mochi's inline subscriptions see $SYS under "#" (topics.go
	// gatherInlineSubscriptions has no '$' check, unlike
	// gatherSubscriptions).
	if s.noDollar && strings.HasPrefix(pk.TopicName, "$") {
		return
	}
	// Each subscription gets its own copy: the handler owns it, and mochi
	// hands every inline subscriber the same packet.
	m := dispatch.Message{Topic: pk.TopicName, Payload: bytes.Clone(pk.Payload)}
	if s.requests {
		m.ResponseTopic, m.Correlation = s.bus.replies.of(pk)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
	case s.replaying:
		// Bounded like the queue it will go into.
		if len(s.pending) < s.bus.queueSizeOrDefault() {
			s.pending = append(s.pending, m)
		} else {
			s.q.Discard(m)
		}
	default:
		s.q.TryPush(m)
	}
}

// endReplay queues the live messages held back during the replay and
// lets later ones through. Holding s.mu while queueing keeps each
// publisher's order: live cannot push past the held-back messages.
func (s *inlineSub) endReplay() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.pending {
		s.q.TryPush(m)
	}
	s.pending = nil
	s.replaying = false
}

func (s *inlineSub) unsubscribe() {
	s.once.Do(func() {
		s.q.Stop()
		s.mu.Lock()
		s.stopped = true
		regs := s.regs
		s.regs, s.pending = nil, nil
		s.mu.Unlock()
		for _, r := range regs {
			s.bus.srv.Topics.InlineUnsubscribe(r.Identifier, r.Filter)
		}
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
	})
}

func (b *InlineBus) queueSizeOrDefault() int {
	if b.queueSize > 0 {
		return b.queueSize
	}
	return dispatch.DefaultSize
}
