package gateway_test

import (
	"github.com/lampgw/lampgw/internal/testwait"
	"runtime/pprof"

	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/gateway"
)

// wait bounds every wait in these tests; nothing here sleeps.
const wait = 10 * time.Second

func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("LAMPGW_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("test", t.Name()).Logger()
}

func startGateway(t *testing.T) (*gateway.Gateway, gateway.Addrs) {
	t.Helper()
	return startWith(t, gateway.Options{
		MQTTAddr:   "127.0.0.1:0",
		WSAddr:     "127.0.0.1:0",
		HTTPAddr:   "127.0.0.1:0",
		BridgeAddr: "127.0.0.1:0",
		DataDir:    t.TempDir(),
		Logger:     testLogger(t),
	})
}

// startWith starts a gateway with opts and shuts it down when the test
// ends.
func startWith(t *testing.T, opts gateway.Options) (*gateway.Gateway, gateway.Addrs) {
	t.Helper()
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("Shutdown: %v; goroutines:\n%s", err, stacks.String())
		}
	})
	return g, g.Addrs()
}

type message struct {
	topic, payload string
	retained       bool
}

// app is a real MQTT client playing a phone app.
type app struct {
	t    *testing.T
	c    paho.Client
	msgs chan message
	// early holds messages that arrived while newApp synchronised.
	early []message
}

var clientSeq atomic.Int64

func newApp(t *testing.T, addr net.Addr, filters ...string) *app {
	t.Helper()
	return newAppWith(t, paho.NewClientOptions().AddBroker("tcp://"+addr.String()), filters...)
}

// newAppWith is newApp for a client whose opts name the broker and may
// hold a TLS configuration.
func newAppWith(t *testing.T, opts *paho.ClientOptions, filters ...string) *app {
	t.Helper()
	a := &app{t: t, msgs: make(chan message, 4096)}
	opts.
		SetClientID(fmt.Sprintf("test-app-%d", clientSeq.Add(1))).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(wait).
		SetOrderMatters(true)
	a.c = paho.NewClient(opts)
	if tok := a.c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("app connect: %v", tok.Error())
	}
	t.Cleanup(func() { a.c.Disconnect(100) })
	// mochi sends SUBACK before it replays retained messages, so a replay
	// can land after live messages the test causes next. A last
	// subscription and a publish to it, which the broker handles only after
	// the earlier SUBSCRIBEs, mark the end of every replay.
	sync := fmt.Sprintf("test-sync/%d", clientSeq.Add(1))
	filters = append(filters, sync)
	for _, f := range filters {
		tok := a.c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			if os.Getenv("LAMPGW_TEST_LOG") != "" {
				fmt.Fprintf(os.Stderr, "APP %s %q retained=%v dup=%v id=%d\n", m.Topic(), m.Payload(), m.Retained(), m.Duplicate(), m.MessageID())
			}
			a.msgs <- message{m.Topic(), string(m.Payload()), m.Retained()}
		})
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	a.publish(sync, "sync", false)
	_, a.early = a.expect(sync)
	return a
}

func (a *app) publish(topic, payload string, retained bool) {
	a.t.Helper()
	tok := a.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		a.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// expect waits for a message on topic and returns its payload together
// with every message that arrived before it.
func (a *app) expect(topic string) (string, []message) {
	a.t.Helper()
	var before []message
	for len(a.early) > 0 {
		m := a.early[0]
		a.early = a.early[1:]
		if m.topic == topic {
			return m.payload, before
		}
		before = append(before, m)
	}
	deadline := time.After(wait)
	for {
		select {
		case m := <-a.msgs:
			if m.topic == topic {
				return m.payload, before
			}
			before = append(before, m)
		case <-deadline:
			a.t.Fatalf("no message on %s within %v; got %v", topic, wait, before)
			return "", nil
		}
	}
}

// expectPayload waits for topic and checks its payload.
func (a *app) expectPayload(topic, want string) []message {
	a.t.Helper()
	got, before := a.expect(topic)
	if got != want {
		a.t.Fatalf("%s: got %q, want %q (after %v)", topic, got, want, before)
	}
	return before
}

// lamp is a raw TCP socket playing a lamp's firmware.
type lamp struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialLamp(t *testing.T, addr net.Addr) *lamp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lamp{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (l *lamp) send(s string) {
	l.t.Helper()
	l.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := l.conn.Write([]byte(s)); err != nil {
		l.t.Fatalf("lamp write: %v", err)
	}
}

// line reads the next line the gateway sent, without its "\n".
func (l *lamp) line() string {
	l.t.Helper()
	l.conn.SetReadDeadline(time.Now().Add(wait))
	s, err := l.r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("lamp read: %v (partial %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

func (l *lamp) expectLine(want string) {
	l.t.Helper()
	if got := l.line(); got != want {
		l.t.Fatalf("lamp got %q, want %q", got, want)
	}
}

// expectClosed reads until the gateway closes the socket and returns the
// lines it sent before.
func (l *lamp) expectClosed() []string {
	l.t.Helper()
	var lines []string
	l.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		s, err := l.r.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.t.Fatalf("socket still open after %v; read %q", wait, lines)
			}
			return lines
		}
		lines = append(lines, strings.TrimSuffix(s, "\n"))
	}
}

// noneOn fails if any of msgs is on topic, or under it when topic ends
// in "/".
func noneOn(t *testing.T, msgs []message, topic string) {
	t.Helper()
	for _, m := range msgs {
		if m.topic == topic || strings.HasSuffix(topic, "/") && strings.HasPrefix(m.topic, topic) {
			t.Fatalf("unexpected message %s %q", m.topic, m.payload)
		}
	}
}

func TestTextLampReportsReachApps(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/#")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO kitchen\n")
	a.expectPayload("lamp/kitchen/availability", "online")
	l.send("brightness=512 ambient=830 mode=auto\n")
	a.expectPayload("lamp/kitchen/brightness", "512")
	a.expectPayload("lamp/kitchen/ambient", "830")
	a.expectPayload("lamp/kitchen/mode", "auto")
	a.expectPayload("lamp/kitchen/state", `{"ambient":830,"brightness":512,"mode":"auto"}`)

	// Unchanged values are not published again; a change is, with the
	// whole state.
	l.send("brightness=512 ambient=831 mode=auto\n")
	before := a.expectPayload("lamp/kitchen/ambient", "831")
	a.expectPayload("lamp/kitchen/state", `{"ambient":831,"brightness":512,"mode":"auto"}`)
	noneOn(t, before, "lamp/kitchen/brightness")
}

func TestFramesSplitAndTerminators(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/#")
	l := dialLamp(t, addrs.Bridge)
	// Split mid-keyword, a bare "\r", a blank line, "\r\n", ":" pairs and
	// two frames in one segment.
	for _, part := range []string{"HEL", "LO split\r", "\r\n", "bright", "ness=1", "00\r\n", "ambient:5;mode:MANUAL\npower=on\r"} {
		l.send(part)
	}
	a.expectPayload("lamp/split/availability", "online")
	a.expectPayload("lamp/split/brightness", "100")
	a.expectPayload("lamp/split/ambient", "5")
	a.expectPayload("lamp/split/mode", "manual")
	a.expectPayload("lamp/split/power", "on")
}

func TestCommandsInTheLampsDialect(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/+/availability", "lamp/+/power")

	text := dialLamp(t, addrs.Bridge)
	text.send("HELLO t1\r\n")
	a.expectPayload("lamp/t1/availability", "online")
	js := dialLamp(t, addrs.Bridge)
	js.send(`{"id":"j1","brightness":5}` + "\n")
	a.expectPayload("lamp/j1/availability", "online")

	a.publish("lamp/t1/brightness/set", "700", false)
	text.expectLine("brightness=700")
	a.publish("lamp/t1/set", `{"mode":"Manual","brightness":3}`, false)
	text.expectLine("mode=manual brightness=3")

	a.publish("lamp/j1/brightness/set", "700", false)
	js.expectLine(`{"brightness":700}`)
	a.publish("lamp/j1/set", `{"mode":"auto","note":"hi"}`, false)
	js.expectLine(`{"mode":"auto","note":"hi"}`)

	// A text lamp that switches to JSON gets JSON from then on.
	text.send(`{"power":"off"}` + "\n")
	a.expectPayload("lamp/t1/power", "off")
	a.publish("lamp/t1/power/set", "on", false)
	text.expectLine(`{"power":"on"}`)
}

func TestInvalidCommandsWriteNothing(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/+/availability", "lamp/+/error")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO bad1\n")
	a.expectPayload("lamp/bad1/availability", "online")

	tests := []struct {
		name, topic, payload, reason string
	}{
		{"out of range", "lamp/bad1/brightness/set", "5000", "brightness: out of range 0..1023"},
		{"not a number", "lamp/bad1/brightness/set", "bright", "brightness: not an integer"},
		{"bad enum", "lamp/bad1/mode/set", "party", "mode: must be auto or manual"},
		{"reserved key", "lamp/bad1/state/set", "1", "state: reserved name"},
		{"bad key", "lamp/bad1/Brightness/set", "1", `invalid key "Brightness"`},
		{"not JSON", "lamp/bad1/set", "brightness=1", "malformed frame: want a JSON object"},
		{"all or nothing", "lamp/bad1/set", `{"mode":"auto","brightness":-1}`, "brightness: not a non-negative integer"},
		{"unsafe text", "lamp/bad1/note/set", "a b", "note: value must not contain spaces, control characters, ',' or ';'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.t = t
			a.publish(tt.topic, tt.payload, false)
			got, _ := a.expect("lamp/bad1/error")
			var e struct{ Topic, Payload, Error string }
			if err := json.Unmarshal([]byte(got), &e); err != nil {
				t.Fatalf("error payload %q: %v", got, err)
			}
			if e.Topic != tt.topic || e.Payload != tt.payload || e.Error != tt.reason {
				t.Fatalf("got %+v, want topic %q payload %q error %q", e, tt.topic, tt.payload, tt.reason)
			}
		})
	}
	// The lamp received none of them: the next line it reads is the next
	// valid command.
	a.t = t
	a.publish("lamp/bad1/brightness/set", "1", false)
	l.expectLine("brightness=1")
}

func TestOfflineCommandsDeliveredOnIdentify(t *testing.T) {
	g, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/#")
	a.publish("lamp/late/brightness/set", "100", false)
	a.expect("lamp/late/brightness/set") // the broker has passed it on
	a.publish("lamp/late/set", `{"mode":"manual","brightness":200}`, false)
	// Commands reach the bridge asynchronously; wait until both are kept.
	testwait.Until(t, "both commands kept as desired state", func() bool {
		d, ok := g.Registry().Get("late")
		return ok && len(d.Desired) == 2 && d.Desired[0].Value.Text == "200"
	})

	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO late\n")
	before := a.expectPayload("lamp/late/availability", "online")
	// The newest value per key wins, in one frame, in first-commanded order.
	l.expectLine("brightness=200 mode=manual")
	// Desired state is not reported state: nothing was published for the
	// lamp's keys before it reported them.
	noneOn(t, before, "lamp/late/brightness")
	l.send("brightness=200\n")
	a.expectPayload("lamp/late/brightness", "200")

	// Delivered once: after a reconnect nothing is pending.
	l.conn.Close()
	a.expectPayload("lamp/late/availability", "offline")
	l2 := dialLamp(t, addrs.Bridge)
	l2.send("HELLO late\n")
	a.expectPayload("lamp/late/availability", "online")
	a.publish("lamp/late/brightness/set", "3", false)
	l2.expectLine("brightness=3")
}

func TestTakeOver(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/#")
	old := dialLamp(t, addrs.Bridge)
	old.send("HELLO hall\n")
	a.expectPayload("lamp/hall/availability", "online")

	nu := dialLamp(t, addrs.Bridge)
	nu.send("HELLO hall\n")
	old.expectClosed()
	nu.send("brightness=9\n")
	before := a.expectPayload("lamp/hall/brightness", "9")
	for _, m := range before {
		if m.topic == "lamp/hall/availability" && m.payload == "offline" {
			t.Fatal("take-over published offline")
		}
	}
	// Commands go to the new connection.
	a.publish("lamp/hall/brightness/set", "10", false)
	nu.expectLine("brightness=10")

	nu.conn.Close()
	a.expectPayload("lamp/hall/availability", "offline")
}

func TestIDSpoofingRefused(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/#")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO honest\n")
	a.expectPayload("lamp/honest/availability", "online")
	l.send(`{"id":"victim","brightness":1}` + "\n")
	l.expectLine("ERR id mismatch")
	l.send("HELLO victim\n")
	l.expectLine("ERR already identified as honest")
	l.send("brightness=2\n")
	before := a.expectPayload("lamp/honest/brightness", "2")
	noneOn(t, before, "lamp/victim/")
}

func TestNotIdentified(t *testing.T) {
	_, addrs := startGateway(t)
	l := dialLamp(t, addrs.Bridge)
	l.send("brightness=1\n")
	l.expectLine("ERR not identified")
	l.send("HELLO a/b\n")
	l.expectLine("ERR invalid id")
	l.send("HELLO #\n")
	l.expectLine("ERR invalid id")
}

func TestGarbageDoesNotHurtOtherLamps(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/#")
	good := dialLamp(t, addrs.Bridge)
	good.send("HELLO good\n")
	a.expectPayload("lamp/good/availability", "online")

	bad := dialLamp(t, addrs.Bridge)
	bad.send("HELLO noisy\n")
	a.expectPayload("lamp/noisy/availability", "online")

	// Oversized: one ERR, the rest discarded, the connection still works.
	bad.send(strings.Repeat("x", 5000) + "\nbrightness=7\n")
	bad.expectLine("ERR frame too long (max 1024 bytes)")
	a.expectPayload("lamp/noisy/brightness", "7")
	// Binary garbage.
	bad.send("\xff\xfe\x00\x01\n")
	bad.expectLine("ERR invalid UTF-8")
	// One bad key, one good key: the good one is published.
	bad.send("brightness=9999 ambient=3\n")
	bad.expectLine("ERR brightness: out of range 0..1023")
	a.expectPayload("lamp/noisy/ambient", "3")

	good.send("brightness=1\n")
	a.expectPayload("lamp/good/brightness", "1")

	// Only garbage: closed after 20 bad frames in a row, with a reason.
	bad.send(strings.Repeat("\x00garbage\x00\n", 25))
	lines := bad.expectClosed()
	if len(lines) == 0 || lines[len(lines)-1] != "ERR too many bad frames" {
		t.Fatalf("last lines %q, want ERR too many bad frames last", lines)
	}
	a.expectPayload("lamp/noisy/availability", "offline")

	good.send("brightness=2\n")
	a.expectPayload("lamp/good/brightness", "2")
}

func TestRetainedCommandIsOneShot(t *testing.T) {
	_, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lamp/+/availability")
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO ghost\n")
	a.expectPayload("lamp/ghost/availability", "online")

	a.publish("lamp/ghost/brightness/set", "300", true)
	l.expectLine("brightness=300")

	// A later subscriber must not see the command replayed.
	late := newApp(t, addrs.MQTT, "lamp/ghost/#")
	l.send("brightness=300\n")
	before := late.expectPayload("lamp/ghost/brightness", "300")
	noneOn(t, before, "lamp/ghost/brightness/set")
}

func TestGatewayStatusAndShutdown(t *testing.T) {
	g, addrs := startGateway(t)
	a := newApp(t, addrs.MQTT, "lampgw/status", "lamp/#")
	if got, _ := a.expect("lampgw/status"); got != "online" {
		t.Fatalf("lampgw/status: got %q, want online", got)
	}
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO bye\n")
	a.expectPayload("lamp/bye/availability", "online")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(ctx) }()
	a.expectPayload("lamp/bye/availability", "offline")
	l.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestHealthz(t *testing.T) {
	_, addrs := startGateway(t)
	c := &http.Client{Timeout: wait}
	resp, err := c.Get("http://" + addrs.HTTP.String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200", resp.StatusCode)
	}
}

func TestStartErrorsNameTheSetting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, setting := range []string{"mqtt-addr", "ws-addr", "http-addr", "bridge-addr"} {
		t.Run(setting, func(t *testing.T) {
			opts := gateway.Options{MQTTAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", Logger: zerolog.Nop()}
			switch setting {
			case "mqtt-addr":
				opts.MQTTAddr = busy.Addr().String()
			case "ws-addr":
				opts.WSAddr = busy.Addr().String()
			case "http-addr":
				opts.HTTPAddr = busy.Addr().String()
			case "bridge-addr":
				opts.BridgeAddr = busy.Addr().String()
			}
			g, err := gateway.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Start()
			var se *gateway.SettingError
			if !errors.As(err, &se) || se.Setting != setting {
				t.Fatalf("got %v, want a SettingError for %s", err, setting)
			}
			g.Shutdown(context.Background())
		})
	}
	for _, tt := range []struct {
		setting string
		opts    gateway.Options
	}{
		{"topic-prefix", gateway.Options{TopicPrefix: "lamp/#"}},
		{"topic-prefix", gateway.Options{TopicPrefix: "$SYS"}},
		{"max-frame", gateway.Options{MaxFrame: 8}},
	} {
		_, err := gateway.New(tt.opts)
		var se *gateway.SettingError
		if !errors.As(err, &se) || se.Setting != tt.setting {
			t.Errorf("New(%+v): got %v, want a SettingError for %s", tt.opts, err, tt.setting)
		}
	}
}
