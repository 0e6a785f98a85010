package mqttbus

import (
	"github.com/lampgw/lampgw/internal/testwait"

	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/internal/bustest"
)

const waitTimeout = 10 * time.Second

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// startEmbedded starts lampgw's own broker on addr ("127.0.0.1:0" for any
// port) and returns it; it closes when the test ends. retained, if not
// empty, is stored (topic, payload, topic, payload...) before the broker
// listens, so no client can see it published live.
func startEmbedded(t *testing.T, addr string, retained ...string) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{MQTTAddr: addr, Logger: testLogger(t).With().Str("side", "broker").Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for i := 0; i+1 < len(retained); i += 2 {
		if err := b.Bus().Publish(retained[i], []byte(retained[i+1]), 1, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	return b
}

// freePort returns a loopback address nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startMosquitto runs a real mosquitto on a free loopback port for the
// test and returns its URL. Without the binary the test is skipped,
// unless CI is set: CI must run these.
func startMosquitto(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		path = "/usr/sbin/mosquitto" // not on every user's PATH
		if _, statErr := os.Stat(path); statErr != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("mosquitto not installed, and CI is set: %v", err)
			}
			t.Skipf("mosquitto not installed: %v", err)
		}
	}
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	// sys_interval 1: the $SYS conformance case waits for a live $SYS
	// message. persistence false: nothing outlives the test.
	config := "listener " + port + " 127.0.0.1\nallow_anonymous true\nsys_interval 1\npersistence false\nlog_dest stderr\n"
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	cmd := exec.Command(path, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return "tcp://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("mosquitto exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not listening on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newBus(t *testing.T, url string) *Bus {
	t.Helper()
	b, err := New(Options{Broker: url, Logger: testLogger(t).With().Str("side", "bus").Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformanceEmbeddedBroker(t *testing.T) {
	url := "tcp://" + startEmbedded(t, "127.0.0.1:0").MQTTAddr().String()
	bustest.Run(t, func(t *testing.T) bustest.Bus { return newBus(t, url) })
}

func TestConformanceMosquitto(t *testing.T) {
	url := startMosquitto(t)
	bustest.Run(t, func(t *testing.T) bustest.Bus { return newBus(t, url) })
}

func TestNewConnectErrorNamesBroker(t *testing.T) {
	addr := freePort(t) // nothing listens there
	tests := []struct {
		name, url, want, secret string
	}{
		{"plain", "tcp://" + addr, "tcp://" + addr, ""},
		{"password hidden", "tcp://user:hunter2@" + addr, "tcp://user:xxxxx@" + addr, "hunter2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Broker: tc.url, ConnectTimeout: 2 * time.Second})
			if !errors.Is(err, ErrConnect) {
				t.Fatalf("New: got %v, want %v", err, ErrConnect)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestNewInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no broker", Options{}},
		{"negative ack timeout", Options{Broker: "tcp://127.0.0.1:1", AckTimeout: -1}},
		{"negative queue", Options{Broker: "tcp://127.0.0.1:1", QueueSize: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("New: got %v, want %v", err, ErrInvalidOptions)
			}
		})
	}
}

func TestAfterClose(t *testing.T) {
	url := "tcp://" + startEmbedded(t, "127.0.0.1:0").MQTTAddr().String()
	b := newBus(t, url)
	unsub, err := b.Subscribe("a/b", 1, func(string, []byte, bool) {})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Close(); err != nil {
			t.Errorf("Close: got %v, want nil", err)
		}
	}
	unsub() // after Close: no broker round trip, no panic
	if err := b.Publish("a/b", nil, 0, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: got %v, want %v", err, ErrClosed)
	}
	if _, err := b.Subscribe("a/b", 0, func(string, []byte, bool) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want %v", err, ErrClosed)
	}
}

type rec struct {
	topic, payload string
	retained       bool
}

// TestResubscribeAfterBrokerRestart restarts the broker under a Bus: paho
// reconnects, Bus subscribes again, and the new broker's retained state
// is replayed as retained, then live messages flow.
func TestResubscribeAfterBrokerRestart(t *testing.T) {
	addr := freePort(t)
	first := startEmbedded(t, addr)
	b := newBus(t, "tcp://"+addr)
	got := collect(t, b, "restart/#")
	if err := b.Publish("restart/before", []byte("1"), 1, false); err != nil {
		t.Fatal(err)
	}
	expect(t, got, rec{"restart/before", "1", false})

	first.Close()
	second := startEmbedded(t, addr, "restart/state", "2")
	// Arrives only once Bus has reconnected and subscribed again.
	expect(t, got, rec{"restart/state", "2", true})
	if err := second.Bus().Publish("restart/live", []byte("3"), 1, false); err != nil {
		t.Fatal(err)
	}
	expect(t, got, rec{"restart/live", "3", false})
}

// collect subscribes b to filter and returns the channel its messages
// arrive on.
func collect(t *testing.T, b *Bus, filter string) <-chan rec {
	t.Helper()
	got := make(chan rec, 10)
	if _, err := b.Subscribe(filter, 1, func(topic string, payload []byte, retained bool) {
		got <- rec{topic, string(payload), retained}
	}); err != nil {
		t.Fatalf("Subscribe %s: %v", filter, err)
	}
	return got
}

func expect(t *testing.T, ch <-chan rec, want rec) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Errorf("got %v, want %v", got, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no message, want %v", want)
	}
}

// TestSubscribeWhileDisconnected checks a subscription made while the
// broker is away is made once the connection is back.
func TestSubscribeWhileDisconnected(t *testing.T) {
	addr := freePort(t)
	first := startEmbedded(t, addr)
	b := newBus(t, "tcp://"+addr)
	first.Close()

	got := collect(t, b, "later/x")
	startEmbedded(t, addr, "later/x", "v")
	expect(t, got, rec{"later/x", "v", true})
}

func TestDroppedWhenHandlerStuck(t *testing.T) {
	url := "tcp://" + startEmbedded(t, "127.0.0.1:0").MQTTAddr().String()
	b, err := New(Options{Broker: url, QueueSize: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	entered, gate := make(chan struct{}), make(chan struct{})
	defer close(gate)
	var once sync.Once
	if _, err := b.Subscribe("stuck/t", 1, func(string, []byte, bool) {
		once.Do(func() { close(entered) })
		<-gate
	}); err != nil {
		t.Fatal(err)
	}
	other := make(chan string, 10)
	if _, err := b.Subscribe("stuck/t", 1, func(_ string, p []byte, _ bool) { other <- string(p) }); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"0", "1", "2", "3", "4"} {
		if err := b.Publish("stuck/t", []byte(p), 1, false); err != nil {
			t.Fatal(err)
		}
		if p == "0" {
			<-entered
		}
	}
	// The other subscription is not held up by the stuck one.
	for _, want := range []string{"0", "1", "2", "3", "4"} {
		select {
		case p := <-other:
			if p != want {
				t.Fatalf("other subscription: got %q, want %q", p, want)
			}
		case <-time.After(waitTimeout):
			t.Fatal("other subscription starved by a stuck handler")
		}
	}
	// Stuck holds "0", queues "1" and "2", drops "3" and "4".
	if got := b.Dropped(); got != 2 {
		t.Errorf("Dropped: got %d, want 2", got)
	}
}

// TestFenceInvisible checks the replay fences Bus publishes to itself
// never reach a subscription, not even "#".
func TestFenceInvisible(t *testing.T) {
	url := "tcp://" + startEmbedded(t, "127.0.0.1:0").MQTTAddr().String()
	b := newBus(t, url)
	got := make(chan string, 100)
	if _, err := b.Subscribe("#", 1, func(topic string, _ []byte, _ bool) { got <- topic }); err != nil {
		t.Fatal(err)
	}
	// Each Subscribe publishes a fence; "#" would match it.
	for _, f := range []string{"x/1", "x/2"} {
		if _, err := b.Subscribe(f, 1, func(string, []byte, bool) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish("marker", []byte("m"), 1, false); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case topic := <-got:
			if topic == "marker" {
				return
			}
			if strings.HasPrefix(topic, "lampgw/bus/") {
				t.Errorf("\"#\" got fence topic %q", topic)
			}
		case <-time.After(waitTimeout):
			t.Fatal("marker not received")
		}
	}
}

// TestCloseLeavesNoGoroutines checks Close ends every goroutine the Bus
// and its paho client started, subscriptions' included.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	url := "tcp://" + startEmbedded(t, "127.0.0.1:0").MQTTAddr().String()
	before := runtime.NumGoroutine()
	b, err := New(Options{Broker: url, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	for _, f := range []string{"leak/a", "leak/+", "leak/#"} {
		if _, err := b.Subscribe(f, 1, func(string, []byte, bool) {
			select {
			case got <- struct{}{}:
			default:
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish("leak/a", []byte("x"), 1, false); err != nil {
		t.Fatal(err)
	}
	<-got
	b.Close()

	testwait.Goroutines(t, before)
}
