package broker

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

const waitTimeout = 10 * time.Second

func connect(t *testing.T, url, id string) paho.Client {
	t.Helper()
	return connectWith(t, paho.NewClientOptions().AddBroker(url), id)
}

// connectWith connects a client with opts, which name the broker and may
// hold a TLS configuration.
func connectWith(t *testing.T, opts *paho.ClientOptions, id string) paho.Client {
	t.Helper()
	opts.SetClientID(id).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(waitTimeout) || tok.Error() != nil {
		t.Fatalf("connect %s to %v: %v", id, opts.Servers, tok.Error())
	}
	return c
}

func connectTCP(t *testing.T, addr, id string) paho.Client {
	return connect(t, "tcp://"+addr, id)
}

func wait(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

type pahoMsg struct {
	topic, payload string
	retained       bool
}

// pahoSub subscribes c to filter and returns the channel messages arrive
// on.
func pahoSub(t *testing.T, c paho.Client, filter string) <-chan pahoMsg {
	t.Helper()
	ch := make(chan pahoMsg, 100)
	wait(t, "subscribe "+filter, c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		ch <- pahoMsg{m.Topic(), string(m.Payload()), m.Retained()}
	}))
	return ch
}

func next(t *testing.T, who string, ch <-chan pahoMsg) pahoMsg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no message", who)
		return pahoMsg{}
	}
}

func TestTCPAndWebSocketListeners(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	for _, addr := range []net.Addr{b.MQTTAddr(), b.WSAddr()} {
		if addr == nil || strings.HasSuffix(addr.String(), ":0") {
			t.Fatalf("bound address = %v, want a real port", addr)
		}
	}
	tcp := connectTCP(t, b.MQTTAddr().String(), "tcp-client")
	defer tcp.Disconnect(0)
	ws := connect(t, "ws://"+b.WSAddr().String()+"/mqtt", "ws-client")
	defer ws.Disconnect(0)

	inline := make(chan pahoMsg, 10)
	if _, err := b.Bus().Subscribe("room/+", 0, func(topic string, payload []byte, retained bool) {
		inline <- pahoMsg{topic, string(payload), retained}
	}); err != nil {
		t.Fatal(err)
	}
	tcpIn := pahoSub(t, tcp, "room/ws")
	wsIn := pahoSub(t, ws, "room/tcp")

	wait(t, "ws publish", ws.Publish("room/ws", 1, false, "from ws"))
	wait(t, "tcp publish", tcp.Publish("room/tcp", 1, false, "from tcp"))
	if got, want := next(t, "tcp client", tcpIn), (pahoMsg{"room/ws", "from ws", false}); got != want {
		t.Errorf("tcp client: got %v, want %v", got, want)
	}
	if got, want := next(t, "ws client", wsIn), (pahoMsg{"room/tcp", "from tcp", false}); got != want {
		t.Errorf("ws client: got %v, want %v", got, want)
	}
	seen := map[pahoMsg]bool{next(t, "inline", inline): true, next(t, "inline", inline): true}
	for _, want := range []pahoMsg{{"room/ws", "from ws", false}, {"room/tcp", "from tcp", false}} {
		if !seen[want] {
			t.Errorf("inline bus: got %v, want %v among them", seen, want)
		}
	}

	// The inline bus reaches network clients the same way.
	if err := b.Bus().Publish("room/tcp", []byte("from bus"), 1, false); err != nil {
		t.Fatal(err)
	}
	if got, want := next(t, "ws client", wsIn), (pahoMsg{"room/tcp", "from bus", false}); got != want {
		t.Errorf("ws client: got %v, want %v", got, want)
	}
}

func TestWebSocketOnlyOnMQTTPath(t *testing.T) {
	b := startBroker(t, Options{WSAddr: "127.0.0.1:0"})
	tests := []struct {
		path string
		want int
	}{
		{"/", http.StatusNotFound},
		{"/ws", http.StatusNotFound},
		{"/mqtt", http.StatusBadRequest}, // a plain GET is not an upgrade
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get("http://" + b.WSAddr().String() + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s: got status %d, want %d", tc.path, resp.StatusCode, tc.want)
			}
		})
	}
}

func isSetTopic(topic string) bool { return strings.HasSuffix(topic, "/set") }

// TestRetainedCommandNotReplayed checks the ghost-switching guard: a
// retained PUBLISH to a command topic reaches current subscribers but is
// never replayed to later ones, while other topics keep retain.
func TestRetainedCommandNotReplayed(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", IsCommandTopic: isSetTopic})
	addr := b.MQTTAddr().String()
	pub := connectTCP(t, addr, "publisher")
	defer pub.Disconnect(0)
	early := connectTCP(t, addr, "early")
	defer early.Disconnect(0)
	earlyIn := pahoSub(t, early, "lamp/k/#")

	wait(t, "publish command", pub.Publish("lamp/k/set", 1, true, `{"on":true}`))
	wait(t, "publish key command", pub.Publish("lamp/k/brightness/set", 1, true, "7"))
	wait(t, "publish state", pub.Publish("lamp/k/state", 1, true, `{"on":true}`))
	for _, want := range []pahoMsg{
		{"lamp/k/set", `{"on":true}`, false},
		{"lamp/k/brightness/set", "7", false},
		{"lamp/k/state", `{"on":true}`, false},
	} {
		if got := next(t, "early subscriber", earlyIn); got != want {
			t.Errorf("early subscriber: got %v, want %v", got, want)
		}
	}

	late := connectTCP(t, addr, "late")
	defer late.Disconnect(0)
	lateIn := pahoSub(t, late, "lamp/k/#")
	// From late itself: mochi sends SUBACK before it replays, so a
	// marker from another client can overtake the replay; late's own
	// PUBLISH is read after its SUBSCRIBE was handled, replay included.
	wait(t, "publish marker", late.Publish("lamp/k/marker", 1, false, "m"))
	// Only the state was stored; the marker shows nothing else came first.
	for _, want := range []pahoMsg{{"lamp/k/state", `{"on":true}`, true}, {"lamp/k/marker", "m", false}} {
		if got := next(t, "late subscriber", lateIn); got != want {
			t.Errorf("late subscriber: got %v, want %v", got, want)
		}
	}

	// The inline bus sees the same store.
	replayed := make(chan string, 10)
	if _, err := b.Bus().Subscribe("lamp/k/#", 0, func(topic string, _ []byte, retained bool) {
		if retained {
			replayed <- topic
		}
	}); err != nil {
		t.Fatal(err)
	}
	// Subscribe returns after the replay is queued; the handler may not
	// have run yet, so wait for the one expected topic, then check the
	// queue holds nothing more behind it.
	select {
	case topic := <-replayed:
		if topic != "lamp/k/state" {
			t.Errorf("inline replay: got %q, want %q", topic, "lamp/k/state")
		}
	case <-time.After(waitTimeout):
		t.Fatal("inline replay: no message")
	}
	if err := b.Bus().Publish("lamp/k/marker2", []byte("m"), 0, false); err != nil {
		t.Fatal(err)
	}
	if len(replayed) != 0 {
		t.Errorf("inline replay: got extra topic %q", <-replayed)
	}
}

func TestCloseTwice(t *testing.T) {
	b, err := New(Options{MQTTAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := b.Close(); err != nil {
			t.Errorf("Close #%d: got %v, want nil", i+1, err)
		}
	}
	if err := b.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: got %v, want %v", err, ErrClosed)
	}
}

func TestCloseWithoutStart(t *testing.T) {
	b, err := New(Options{MQTTAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}

func TestStartTwice(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	if err := b.Start(); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: got %v, want %v", err, ErrStarted)
	}
}

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestStartPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name         string
		mqtt, ws     string
		wantListener string
	}{
		{"mqtt", busy.Addr().String(), "", "mqtt"},
		{"ws after mqtt bound", freePort(t), busy.Addr().String(), "ws"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{MQTTAddr: tc.mqtt, WSAddr: tc.ws, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			err = b.Start()
			var le *ListenError
			if !errors.As(err, &le) {
				t.Fatalf("Start: got %v, want a *ListenError", err)
			}
			if le.Listener != tc.wantListener {
				t.Errorf("ListenError.Listener: got %q, want %q", le.Listener, tc.wantListener)
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("Start: got %v, want it to wrap %v", err, syscall.EADDRINUSE)
			}
			if !strings.Contains(err.Error(), tc.wantListener+" listener") {
				t.Errorf("error text %q does not name the %s listener", err, tc.wantListener)
			}
			if b.MQTTAddr() != nil || b.WSAddr() != nil {
				t.Errorf("addresses after failed Start: got %v, %v, want nil, nil", b.MQTTAddr(), b.WSAddr())
			}
			// Whatever was bound before the failure was released.
			if tc.mqtt != busy.Addr().String() {
				ln, err := net.Listen("tcp", tc.mqtt)
				if err != nil {
					t.Fatalf("mqtt port still bound after failed Start: %v", err)
				}
				ln.Close()
			}
		})
	}
	// A failed Start can be retried once the port is free.
	b, err := New(Options{MQTTAddr: busy.Addr().String(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(); err == nil {
		t.Fatal("Start on a busy port: got nil error")
	}
	busy.Close()
	if err := b.Start(); err != nil {
		t.Errorf("Start after the port was freed: got %v, want nil", err)
	}
}

func TestNewInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"negative writes pending", Options{MaxClientWritesPending: -1}},
		{"huge writes pending", Options{MaxClientWritesPending: 1 << 40}},
		{"negative handshake", Options{HandshakeTimeout: -time.Second}},
		{"negative queue", Options{BusQueueSize: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("New: got %v, want %v", err, ErrInvalidOptions)
			}
		})
	}
}

// TestCapabilities checks the mochi settings whose defaults are traps.
func TestCapabilities(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		wantPending int32
	}{
		{"defaults", Options{}, DefaultMaxClientWritesPending},
		{"custom", Options{MaxClientWritesPending: 16}, 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			caps := b.srv.Options.Capabilities
			if caps.MaximumMessageExpiryInterval != 0 {
				t.Errorf("MaximumMessageExpiryInterval: got %d, want 0", caps.MaximumMessageExpiryInterval)
			}
			if caps.MaximumClientWritesPending != tc.wantPending {
				t.Errorf("MaximumClientWritesPending: got %d, want %d", caps.MaximumClientWritesPending, tc.wantPending)
			}
		})
	}
}

func TestMochiLogsReachLogger(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	b, err := New(Options{Logger: zerolog.New(syncWriter{&mu, &buf})})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), `"lib":"mochi"`) || !strings.Contains(buf.String(), "mochi mqtt starting") {
		t.Errorf("log output lacks mochi's start line:\n%s", buf.String())
	}
}

type syncWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (s syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
