package dispatch

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// DefaultSize is the capacity of a Queue whose Options.Size is 0. It
// absorbs a burst of one state message per key for a few hundred lamps
// while costing about 48 KB per subscription.
const DefaultSize = 1024

// logEvery bounds the warn/error lines a single queue writes for drops and
// panics, so a stuck or crashing handler cannot flood the log.
const logEvery = 10 * time.Second

// Handler receives one message. It owns payload.
type Handler func(topic string, payload []byte, retained bool)

// MessageHandler receives one message whole. It owns m's slices.
type MessageHandler func(m Message)

// Message is one delivery waiting in a Queue. The Queue owns Payload and
// Correlation once the message is pushed.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	// ResponseTopic and Correlation are the MQTT 5 Response Topic and
	// Correlation Data of a request [MQTT-4.10], for a MessageHandler;
	// a Handler does not see them.
	ResponseTopic string
	Correlation   []byte
}

// Options configure a Queue.
type Options struct {
	// Size is the number of messages the queue holds; 0 means DefaultSize.
	Size int
	// Logger receives rate-limited warnings about drops and errors about
	// recovered panics. The zero Logger discards them.
	Logger zerolog.Logger
	// Drops, if not nil, is incremented for every dropped message in
	// addition to the queue's own count, so a bus can report one total.
	Drops *atomic.Int64
	// WG, if not nil, has Add(1) called by New and Done when the queue's
	// goroutine exits, so an owner can wait for all its queues at once.
	WG *sync.WaitGroup
}

// Queue is a bounded FIFO drained by one goroutine that calls a Handler.
// All methods are safe for concurrent use.
type Queue struct {
	h       MessageHandler
	ch      chan Message
	quit    chan struct{}
	done    chan struct{}
	stopped atomic.Bool
	once    sync.Once

	dropped   atomic.Int64
	drops     *atomic.Int64
	dropLog   zerolog.Logger
	panicLog  zerolog.Logger
	recovered atomic.Int64
}

// New starts a Queue that calls h for every message pushed. The caller
// must eventually call Stop; the goroutine exits after that.
func New(h Handler, opts Options) *Queue {
	return NewMessageQueue(func(m Message) { h(m.Topic, m.Payload, m.Retained) }, opts)
}

// NewMessageQueue is New for a handler that takes the whole Message.
func NewMessageQueue(h MessageHandler, opts Options) *Queue {
	size := opts.Size
	if size <= 0 {
		size = DefaultSize
	}
	q := &Queue{
		h:     h,
		ch:    make(chan Message, size),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		drops: opts.Drops,
		// Each queue samples on its own so one noisy subscription does not
		// silence the others.
		dropLog:  opts.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: logEvery}),
		panicLog: opts.Logger.Sample(&zerolog.BurstSampler{Burst: 1, Period: logEvery}),
	}
	if opts.WG != nil {
		opts.WG.Add(1)
	}
	go func() {
		if opts.WG != nil {
			defer opts.WG.Done()
		}
		q.run()
	}()
	return q
}

func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.quit:
			return
		case m := <-q.ch:
			// select picks at random when both are ready, so check again:
			// Stop promises that no call starts after it returns.
			if q.stopped.Load() {
				return
			}
			q.call(m)
		}
	}
}

func (q *Queue) call(m Message) {
	defer func() {
		if r := recover(); r != nil {
			n := q.recovered.Add(1)
			// The payload may hold anything a client sent; log its size only.
			q.panicLog.Error().
				Str("topic", m.Topic).
				Int("payload_bytes", len(m.Payload)).
				Str("panic", fmt.Sprint(r)).
				Int64("panics_total", n).
				Str("stack", string(debug.Stack())).
				Msg("bus handler panicked; subscription continues")
		}
	}()
	q.h(m)
}

// TryPush queues m without waiting. It returns false if the queue is
// stopped, or full, in which case m is dropped and counted.
func (q *Queue) TryPush(m Message) bool {
	if q.stopped.Load() {
		return false
	}
	select {
	case q.ch <- m:
		return true
	default:
		q.Discard(m)
		return false
	}
}

// Push queues m, waiting for room. It returns false if the queue stops
// first. It must not be called from the queue's own handler, which would
// wait for itself once the queue is full.
func (q *Queue) Push(m Message) bool {
	if q.stopped.Load() {
		return false
	}
	select {
	case q.ch <- m:
		return true
	case <-q.quit:
		return false
	}
}

// Discard counts m as dropped without queueing it, for producers that
// keep their own overflow buffer in front of the queue.
func (q *Queue) Discard(m Message) {
	n := q.dropped.Add(1)
	if q.drops != nil {
		q.drops.Add(1)
	}
	q.dropLog.Warn().
		Str("topic", m.Topic).
		Int64("dropped_total", n).
		Msg("bus handler too slow; message dropped")
}

// Stop ends the queue: once Stop returns no new handler call starts, and
// queued messages are discarded. A call already under way runs to its
// end; Stop does not wait for it, so a handler may stop its own queue.
// Stop is idempotent.
func (q *Queue) Stop() {
	q.once.Do(func() {
		q.stopped.Store(true)
		close(q.quit)
	})
}

// Wait blocks until the queue's goroutine has exited, which happens after
// Stop once any handler call under way returns. Calling Wait from the
// handler deadlocks.
func (q *Queue) Wait() { <-q.done }

// Dropped returns how many messages this queue dropped because it was full.
func (q *Queue) Dropped() int64 { return q.dropped.Load() }

// Recovered returns how many handler panics this queue recovered.
func (q *Queue) Recovered() int64 { return q.recovered.Load() }
