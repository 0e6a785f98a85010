package api

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Defaults for zero Options fields.
const (
	DefaultConfirmTimeout = 5 * time.Second
	DefaultMaxCommand     = 1024
	DefaultHeartbeat      = 15 * time.Second
	DefaultEventBuffer    = 256
	DefaultMaxStreams     = 1000
	DefaultWriteTimeout   = 10 * time.Second
)

// ackMargin is how much longer than the confirm timeout a command's
// answer waits for its last ack: pacing and the lamp's write queue come
// before the confirm timeout starts.
const ackMargin = 2 * time.Second

// Bus is what the API needs of the broker: the bridge's Bus (bridge/bus.go),
// which the embedded broker's InlineBus satisfies. Publishes through it
// are the gateway's own and pass no ACL.
type Bus interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
	Subscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) (unsubscribe func(), err error)
}

// Options configure a Server. Registry and Bus are required; the zero
// value of every other field is documented.
type Options struct {
	// Registry is the gateway's device registry, read for lamp state.
	Registry *devices.Registry
	// Bus carries commands to the bridge and every lamp topic back.
	Bus Bus
	// Prefix is the lamp topic prefix; "" means topics.DefaultPrefix.
	Prefix string
	// Devices returns the devices file in force, for names and
	// brightness_max; nil, or a nil result, means none. It is called on
	// every request and must be fast (an atomic load).
	Devices func() *devices.File
	// Users is the users file in force; nil means none, and then only
	// loopback clients are let in, unless AllowAnonymous. SetUsers
	// replaces it.
	Users *auth.Users
	// AllowAnonymous lets clients without credentials in from any
	// address: with all rights without a users file, as viewers with one.
	AllowAnonymous bool
	// ConfirmTimeout is the bridge's (devices.Options.ConfirmTimeout); a
	// command's answer waits for it and 2 s more. 0 means
	// DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// MaxCommand is the longest command the bridge takes, its MaxFrame;
	// a longer one is answered 413. 0 means DefaultMaxCommand.
	MaxCommand int
	// Heartbeat is how often an idle event stream gets a comment, so
	// that proxies and browsers keep it open. 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// EventBuffer is how many events may wait for one stream before the
	// stream is dropped. 0 means DefaultEventBuffer.
	EventBuffer int
	// MaxStreams bounds the event streams open at once. 0 means
	// DefaultMaxStreams.
	MaxStreams int
	// WriteTimeout bounds each write to an event stream. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives the API's lines.
	Logger zerolog.Logger
}

func (o *Options) ensureDefaults() {
	if o.Prefix == "" {
		o.Prefix = topics.DefaultPrefix
	}
	setDefault(&o.ConfirmTimeout, DefaultConfirmTimeout)
	setDefault(&o.MaxCommand, DefaultMaxCommand)
	setDefault(&o.Heartbeat, DefaultHeartbeat)
	setDefault(&o.EventBuffer, DefaultEventBuffer)
	setDefault(&o.MaxStreams, DefaultMaxStreams)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
}

func setDefault[T int | time.Duration](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// Server is the HTTP API and the dashboard. Its methods are safe for
// concurrent use.
type Server struct {
	opts     Options
	acl      *auth.ACL
	verifier *auth.Verifier
	log      zerolog.Logger
	// warn is rate limited: refused clients may retry at will.
	warn zerolog.Logger

	users atomic.Pointer[auth.Users]

	hub   hub
	unsub func()
	// done is closed by Close: event streams end, command waits give up.
	done      chan struct{}
	closeOnce sync.Once

	routes []route
}

// New returns a Server subscribed to <prefix>/# on opts.Bus. Close ends
// the subscription.
func New(opts Options) (*Server, error) {
	opts.ensureDefaults()
	if opts.Registry == nil || opts.Bus == nil {
		return nil, ErrInvalidOptions
	}
	acl, err := auth.NewACL(opts.Prefix)
	if err != nil {
		return nil, ErrInvalidOptions
	}
	s := &Server{
		opts:     opts,
		acl:      acl,
		verifier: auth.NewVerifier(auth.VerifierOptions{}),
		log:      opts.Logger,
		warn:     opts.Logger.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
		done:     make(chan struct{}),
	}
	s.users.Store(opts.Users)
	if s.opts.Devices == nil {
		s.opts.Devices = func() *devices.File { return nil }
	}
	s.hub.init()
	s.routes = s.routeTable()
	// One subscription for every stream and every command's wait. Its
	// handler runs on the bus's goroutine for it and never blocks.
	s.unsub, err = opts.Bus.Subscribe(opts.Prefix+"/#", 0, s.onMessage)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Register adds every route to mux: "GET /api/lamps" and the others in
// the package doc, and the dashboard at "GET /{$}" and "GET /assets/...".
func (s *Server) Register(mux *http.ServeMux) {
	cop := http.NewCrossOriginProtection()
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.pattern, cop.Handler(s.guard(rt)))
	}
}

// Close ends every event stream and command wait and the bus
// subscription. It does not block, so it may be an
// http.Server.RegisterOnShutdown function; it is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.unsub()
	})
}

// SetUsers puts a new users file in force, as on SIGHUP. Requests are
// checked against it from now on; an event stream of a user who is gone,
// or whose password, role or lamps narrowed (auth.Narrowed), ends, as
// the broker disconnects such an MQTT client.
func (s *Server) SetUsers(users *auth.Users) {
	s.users.Store(users)
	s.hub.reauthorize(users)
}

// Stats are the API's counters.
type Stats struct {
	// Streams is how many event streams are open.
	Streams int
	// Dropped is how many event streams were dropped because their client
	// fell behind.
	Dropped uint64
}

// Stats returns the API's counters.
func (s *Server) Stats() Stats {
	return Stats{Streams: s.hub.count(), Dropped: s.hub.dropped.Load()}
}

// route is one entry of the route table, which Register mounts and the
// OpenAPI test compares with the document.
type route struct {
	method string
	// pattern is http.ServeMux's; under /api/ it is the OpenAPI path too.
	pattern string
	handle  func(w http.ResponseWriter, r *http.Request, u *auth.User)
}

func (s *Server) routeTable() []route {
	rs := []route{
		{http.MethodGet, "/api/lamps", s.listLamps},
		{http.MethodGet, "/api/lamps/{id}", s.getLamp},
		{http.MethodPost, "/api/lamps/{id}/set", s.setLamp},
		{http.MethodGet, "/api/events", s.events},
		{http.MethodGet, "/api/openapi.json", serveOpenAPI},
		{http.MethodGet, "/{$}", serveIndex},
	}
	for _, a := range assets() {
		rs = append(rs, route{http.MethodGet, "/assets/" + a, serveAsset})
	}
	return rs
}

// guard authenticates a request before rt's handler sees it.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ref := s.authenticate(r)
		if ref != nil {
			s.refuse(w, r, ref)
			return
		}
		rt.handle(w, r, u)
	})
}

// errorBody is every error answer: one line of reason.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// fail answers code with reason as the JSON error body.
func fail(w http.ResponseWriter, code int, reason string) {
	writeJSON(w, code, errorBody{Error: reason})
}
