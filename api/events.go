package api

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// maxBatch bounds what one write to an event stream gathers.
const maxBatch = 64 << 10

// ackEvent is an ack as the bridge publishes it on <prefix>/<id>/ack
// (bridge.ackJSON), with the lamp's id.
type ackEvent struct {
	ID     string            `json:"id"`
	RID    string            `json:"rid,omitempty"`
	Key    string            `json:"key,omitempty"`
	Value  json.RawMessage   `json:"value,omitempty"`
	Status devices.AckStatus `json:"status"`
	Error  string            `json:"error,omitempty"`
	Time   string            `json:"time,omitempty"`
}

// stateEvent is a lamp's <prefix>/<id>/state; Time is when the gateway
// heard the report, so the lamp's last sighting.
type stateEvent struct {
	ID    string          `json:"id"`
	State json.RawMessage `json:"state"`
	Time  time.Time       `json:"time"`
}

// availabilityEvent is a lamp's <prefix>/<id>/availability.
type availabilityEvent struct {
	ID     string    `json:"id"`
	Online bool      `json:"online"`
	Time   time.Time `json:"time"`
}

// removedEvent says a lamp was removed from the devices file: the bridge
// cleared its retained topics.
type removedEvent struct {
	ID string `json:"id"`
}

// refusedEvent is a lamp's <prefix>/<id>/error: a command the bridge
// refused.
type refusedEvent struct {
	ID      string `json:"id"`
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	Error   string `json:"error"`
}

// onMessage turns a bus message under <prefix>/# into an event for the
// streams that may read its topic, and hands acks to the commands that
// wait for them. It runs on the bus subscription's goroutine and never
// blocks.
func (s *Server) onMessage(topic string, payload []byte, retained bool) {
	if retained {
		// The replay of Subscribe: streams start from the registry.
		return
	}
	t, err := topics.Parse(s.opts.Prefix, topic)
	if err != nil {
		return
	}
	var name string
	var v any
	switch t.Kind {
	case topics.KindAck:
		var a ackEvent
		if json.Unmarshal(payload, &a) != nil {
			return
		}
		a.ID = t.Device
		s.hub.deliver(a)
		name, v = "ack", a
	case topics.KindState:
		if !json.Valid(payload) {
			return // an empty payload clears the retained state
		}
		name, v = "state", stateEvent{ID: t.Device, State: payload, Time: time.Now().UTC()}
	case topics.KindAvailability:
		if len(payload) == 0 {
			name, v = "removed", removedEvent{ID: t.Device}
		} else {
			name, v = "availability", availabilityEvent{ID: t.Device, Online: string(payload) == topics.Online, Time: time.Now().UTC()}
		}
	case topics.KindError:
		var e refusedEvent
		if json.Unmarshal(payload, &e) != nil {
			return
		}
		e.ID = t.Device
		name, v = "refused", e
	default:
		// Per-key values repeat state; commands are the apps' own.
		return
	}
	if s.hub.idle() {
		return
	}
	s.hub.broadcast(s.acl, topic, encodeEvent(name, v))
}

// encodeEvent is one Server-Sent Event. json.Marshal never writes a raw
// newline, so the data is one line.
func encodeEvent(name string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	b := make([]byte, 0, len(name)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, u *auth.User) {
	log := s.log.With().Str("remote", r.RemoteAddr).Str("user", userName(u)).Logger()
	st, err := s.hub.join(u, s.opts.EventBuffer, s.opts.MaxStreams)
	if err != nil {
		s.warn.Warn().Str("remote", r.RemoteAddr).Int("max", s.opts.MaxStreams).Msg("event stream refused: too many open")
		fail(w, http.StatusServiceUnavailable, "too many event streams open")
		return
	}
	defer s.hub.leave(st)
	rc := http.NewResponseController(w)
	// The deadlines are the connection's; clear them for its next request.
	defer rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	log.Debug().Msg("event stream opened")
	defer log.Debug().Msg("event stream closed")

	// The snapshot is taken after join, so every change after it is in
	// st.ch; one from before may be there too, and is no newer than the
	// snapshot's state, which the events after it then overwrite.
	buf := []byte("retry: 2000\n\n")
	buf = append(buf, encodeEvent("lamps", s.lamps(u))...)
	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-st.gone:
			s.warn.Warn().Str("remote", r.RemoteAddr).Str("user", userName(u)).Msg("event stream dropped: " + st.why)
			// Cut the connection (HTTP/2: the stream) rather than end the
			// response cleanly, which would keep an HTTP/1.1 connection
			// open for a client that is not reading.
			panic(http.ErrAbortHandler)
		default:
		}
		if len(buf) > 0 {
			if err := s.write(w, rc, buf); err != nil {
				log.Debug().Err(err).Msg("event stream write failed")
				return
			}
			buf = buf[:0]
		}
		select {
		case ev := <-st.ch:
			buf = append(buf, ev...)
			for len(buf) < maxBatch && len(st.ch) > 0 {
				buf = append(buf, <-st.ch...)
			}
		case <-heartbeat.C:
			buf = append(buf, ": ping\n\n"...)
		case <-st.gone:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

// write sends buf to the client within the write timeout.
func (s *Server) write(w http.ResponseWriter, rc *http.ResponseController, buf []byte) error {
	rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return rc.Flush()
}

// userName names u in a log line.
func userName(u *auth.User) string {
	if u.Name == "" {
		return "(anonymous)"
	}
	return u.Name
}

// hub is where bus messages meet the event streams and the commands
// waiting for their acks.
type hub struct {
	mu      sync.Mutex
	streams map[*stream]struct{}
	waiters map[string]waiter // by rid
	dropped atomic.Uint64
}

// waiter is a command waiting for its acks.
type waiter struct {
	id string
	ch chan ackEvent
}

// stream is one GET /api/events.
type stream struct {
	user atomic.Pointer[auth.User]
	ch   chan []byte
	// gone is closed when the stream must end; why says why.
	gone chan struct{}
	once sync.Once
	why  string
}

// end ends st for why, reporting whether it was still going.
func (st *stream) end(why string) bool {
	ended := false
	st.once.Do(func() {
		st.why = why
		close(st.gone)
		ended = true
	})
	return ended
}

func (h *hub) init() {
	h.streams = make(map[*stream]struct{})
	h.waiters = make(map[string]waiter)
}

// join adds a stream for u, unless max are open.
func (h *hub) join(u *auth.User, buffer, max int) (*stream, error) {
	st := &stream{ch: make(chan []byte, buffer), gone: make(chan struct{})}
	st.user.Store(u)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.streams) >= max {
		return nil, ErrTooManyStreams
	}
	h.streams[st] = struct{}{}
	return st, nil
}

func (h *hub) leave(st *stream) {
	h.mu.Lock()
	delete(h.streams, st)
	h.mu.Unlock()
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// idle reports whether no stream is open.
func (h *hub) idle() bool { return h.count() == 0 }

// broadcast queues ev for every stream whose user may read topic. A
// stream whose buffer is full is ended: waiting for it would hold up
// the bus, and skipping events would leave its page wrong.
func (h *hub) broadcast(acl *auth.ACL, topic string, ev []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for st := range h.streams {
		if !acl.CanRead(st.user.Load(), topic) {
			continue
		}
		select {
		case st.ch <- ev:
		default:
			if st.end("it fell behind (its buffer of events is full)") {
				h.dropped.Add(1)
			}
		}
	}
}

// await returns the channel the acks of lamp id's command rid arrive on,
// with room for n.
func (h *hub) await(id, rid string, n int) <-chan ackEvent {
	ch := make(chan ackEvent, n)
	h.mu.Lock()
	h.waiters[rid] = waiter{id: id, ch: ch}
	h.mu.Unlock()
	return ch
}

func (h *hub) unawait(rid string) {
	h.mu.Lock()
	delete(h.waiters, rid)
	h.mu.Unlock()
}

// deliver hands a to the command waiting for its rid, if any. The
// channel has room for every ack a command can get.
func (h *hub) deliver(a ackEvent) {
	if a.RID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if w, ok := h.waiters[a.RID]; ok && w.id == a.ID {
		select {
		case w.ch <- a:
		default:
		}
	}
}

// reauthorize applies a new users file to the open streams: a stream of
// a user who is gone or whose rights narrowed ends; the others go on
// with the new rights. Anonymous streams are not affected.
func (h *hub) reauthorize(users *auth.Users) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for st := range h.streams {
		old := st.user.Load()
		if old.Name == "" {
			continue
		}
		nu, _ := users.Lookup(old.Name)
		if auth.Narrowed(old, nu) {
			st.end("its user was removed or its password, role or lamps narrowed")
		} else {
			st.user.Store(nu)
		}
	}
}
