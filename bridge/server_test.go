package bridge_test

import (
	"github.com/lampgw/lampgw/internal/testwait"

	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
)

// wait bounds every wait for something that should happen; a test that
// hits it has failed, so it can be generous.
const wait = 5 * time.Second

type msg struct {
	topic    string
	payload  string
	retained bool
}

func (m msg) String() string { return fmt.Sprintf("%s %q", m.topic, m.payload) }

// env is a bridge.Server on the real embedded broker's in-process bus,
// with a subscription to lamp/# that records everything the bridge
// publishes.
type env struct {
	t   *testing.T
	bus *broker.InlineBus
	srv *bridge.Server
	// msgs are the live messages on lamp/#, command topics (…/set, which
	// the tests publish themselves) left out.
	msgs chan msg
}

func newEnv(t *testing.T, opts bridge.Options) *env {
	t.Helper()
	return newEnvPre(t, opts, nil)
}

// newEnvPre is newEnv with pre run on the bus before the server exists.
func newEnvPre(t *testing.T, opts bridge.Options, pre func(*broker.InlineBus)) *env {
	t.Helper()
	b, err := broker.New(broker.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if pre != nil {
		pre(b.Bus())
	}
	// Cleanups run last-registered first: the server shuts down, then the
	// broker, which waits for every bus handler, so nothing logs to t
	// after the test.
	t.Cleanup(func() { b.Close() })
	e := &env{t: t, bus: b.Bus(), msgs: make(chan msg, 1024)}
	unsub, err := e.bus.Subscribe("lamp/#", 0, func(topic string, payload []byte, retained bool) {
		if strings.HasSuffix(topic, "/set") {
			return
		}
		select {
		case e.msgs <- msg{topic, string(payload), retained}:
		default:
			t.Errorf("message buffer full, dropped %s", topic)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	opts.Bus = e.bus
	opts.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	e.srv, err = bridge.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// next returns the next message the bridge published.
func (e *env) next(t *testing.T) msg {
	t.Helper()
	select {
	case m := <-e.msgs:
		return m
	case <-time.After(wait):
		t.Fatalf("no message published within %v", wait)
		return msg{}
	}
}

// expect checks that the next messages published are want, in order.
func (e *env) expect(t *testing.T, want ...msg) {
	t.Helper()
	for _, w := range want {
		if got := e.next(t); got.topic != w.topic || got.payload != w.payload {
			t.Fatalf("published: got %v, want %v", got, w)
		}
	}
}

// publish sends a command as an app would.
func (e *env) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if err := e.bus.Publish(topic, []byte(payload), 0, false); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

// retained returns the retained messages whose topic starts with prefix,
// as a client subscribing now would get them.
func (e *env) retained(t *testing.T, prefix string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	marker := make(chan struct{})
	var once sync.Once
	// Subscribe returns once the retained replay is queued, and handler
	// calls are serial in queue order, so the live marker published
	// after it comes after the whole replay.
	unsub, err := e.bus.Subscribe("#", 0, func(topic string, payload []byte, retained bool) {
		switch {
		case retained && strings.HasPrefix(topic, prefix):
			out[topic] = string(payload)
		case !retained && topic == "marker":
			once.Do(func() { close(marker) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	e.publish(t, "marker", "x")
	select {
	case <-marker:
	case <-time.After(wait):
		t.Fatal("marker not delivered")
	}
	return out
}

// lamp is the lamp's end of a net.Pipe whose other end is being served.
type lamp struct {
	t    *testing.T
	conn net.Conn
	// lines are what the gateway wrote, without "\n"; closed at EOF.
	lines chan string
	// done is closed when ServeConn returns.
	done chan struct{}
	// served is the gateway's end, which records whether it was closed.
	served *closeRecorder
}

// closeRecorder records Close, so a test can tell what the gateway did
// before a call returned without racing the goroutine that ran ServeConn.
type closeRecorder struct {
	net.Conn
	closed atomic.Bool
}

func (c *closeRecorder) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// dial serves a new pipe with ServeConn(ctx, …). Unless read is false, a
// goroutine reads everything the gateway writes into lines, like a lamp.
func (e *env) dial(ctx context.Context, read bool) *lamp {
	e.t.Helper()
	client, server := net.Pipe()
	l := &lamp{t: e.t, conn: client, lines: make(chan string, 1024), done: make(chan struct{}),
		served: &closeRecorder{Conn: server}}
	go func() {
		defer close(l.done)
		e.srv.ServeConn(ctx, l.served)
	}()
	if read {
		go func() {
			defer close(l.lines)
			r := bufio.NewReader(client)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				l.lines <- strings.TrimSuffix(line, "\n")
			}
		}()
	}
	e.t.Cleanup(func() {
		client.Close()
		l.waitDone(e.t)
	})
	return l
}

// send writes raw bytes; net.Pipe blocks until the gateway reads them.
func (l *lamp) send(t *testing.T, s string) {
	t.Helper()
	l.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(l.conn, s); err != nil {
		t.Fatalf("lamp write %q: %v", s, err)
	}
}

// line returns the next line the gateway wrote to the lamp.
func (l *lamp) line(t *testing.T) string {
	t.Helper()
	select {
	case s, ok := <-l.lines:
		if !ok {
			t.Fatal("connection closed, want a line")
		}
		return s
	case <-time.After(wait):
		t.Fatalf("no line within %v", wait)
		return ""
	}
}

func (l *lamp) expectLine(t *testing.T, want string) {
	t.Helper()
	if got := l.line(t); got != want {
		t.Fatalf("lamp read: got %q, want %q", got, want)
	}
}

// expectClosed checks that the gateway closed the connection with nothing
// more written.
func (l *lamp) expectClosed(t *testing.T) {
	t.Helper()
	select {
	case s, ok := <-l.lines:
		if ok {
			t.Fatalf("lamp read: got %q, want the connection closed", s)
		}
	case <-time.After(wait):
		t.Fatalf("connection still open after %v", wait)
	}
	l.waitDone(t)
}

func (l *lamp) waitDone(t *testing.T) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(wait):
		t.Fatalf("ServeConn did not return within %v", wait)
	}
}

func online(id string) msg  { return msg{topic: "lamp/" + id + "/availability", payload: "online"} }
func offline(id string) msg { return msg{topic: "lamp/" + id + "/availability", payload: "offline"} }
func value(id, key, v string) msg {
	return msg{topic: "lamp/" + id + "/" + key, payload: v}
}
func state(id, js string) msg { return msg{topic: "lamp/" + id + "/state", payload: js} }

func TestServeConnReport(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	l := e.dial(context.Background(), true)
	l.send(t, "HELLO kitchen\n")
	e.expect(t, online("kitchen"))

	t.Run("first report", func(t *testing.T) {
		l.send(t, "brightness=512 ambient=830 mode=AUTO\n")
		e.expect(t,
			value("kitchen", "brightness", "512"),
			value("kitchen", "ambient", "830"),
			value("kitchen", "mode", "auto"),
			state("kitchen", `{"ambient":830,"brightness":512,"mode":"auto"}`),
		)
	})
	t.Run("only changes", func(t *testing.T) {
		l.send(t, "brightness=512 ambient=831 mode=auto\n")
		e.expect(t,
			value("kitchen", "ambient", "831"),
			state("kitchen", `{"ambient":831,"brightness":512,"mode":"auto"}`),
		)
	})
	t.Run("unchanged publishes nothing", func(t *testing.T) {
		l.send(t, "brightness=512\n")
		// The session publishes in frame order, so if the unchanged
		// report had published anything it would come before this.
		l.send(t, "power=on\n")
		e.expect(t,
			value("kitchen", "power", "on"),
			state("kitchen", `{"ambient":831,"brightness":512,"mode":"auto","power":"on"}`),
		)
	})
	t.Run("refused key", func(t *testing.T) {
		l.send(t, "brightness=5000 scene=reading\n")
		l.expectLine(t, "ERR brightness: out of range 0..1023")
		e.expect(t,
			value("kitchen", "scene", "reading"),
			state("kitchen", `{"ambient":831,"brightness":512,"mode":"auto","power":"on","scene":"reading"}`),
		)
	})
	t.Run("retained", func(t *testing.T) {
		got := e.retained(t, "lamp/kitchen/")
		want := map[string]string{
			"lamp/kitchen/availability": "online",
			"lamp/kitchen/brightness":   "512",
			"lamp/kitchen/ambient":      "831",
			"lamp/kitchen/mode":         "auto",
			"lamp/kitchen/power":        "on",
			"lamp/kitchen/scene":        "reading",
			"lamp/kitchen/state":        `{"ambient":831,"brightness":512,"mode":"auto","power":"on","scene":"reading"}`,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("retained: got %v, want %v", got, want)
		}
	})
	t.Run("close publishes offline", func(t *testing.T) {
		l.conn.Close()
		l.waitDone(t)
		e.expect(t, offline("kitchen"))
	})
}

func TestServeConnSplitFrames(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	l := e.dial(context.Background(), true)
	for _, part := range []string{"HEL", "lo kit", "chen\r", "\r\n\n", "bright", "ness=5\r\nmo", "de:manual;", "power:OFF\r"} {
		l.send(t, part)
	}
	e.expect(t,
		online("kitchen"),
		value("kitchen", "brightness", "5"),
		state("kitchen", `{"brightness":5}`),
		value("kitchen", "mode", "manual"),
		value("kitchen", "power", "off"),
		state("kitchen", `{"brightness":5,"mode":"manual","power":"off"}`),
	)
}

func TestServeConnCommands(t *testing.T) {
	t.Run("text lamp gets text", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		e.publish(t, "lamp/kitchen/brightness/set", "700")
		l.expectLine(t, "brightness=700")
		e.publish(t, "lamp/kitchen/set", `{"brightness":1,"mode":"MANUAL","scene":"x"}`)
		l.expectLine(t, "brightness=1 mode=manual scene=x")
	})

	t.Run("json lamp gets json", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		l := e.dial(context.Background(), true)
		l.send(t, `{"id":"kitchen","brightness":512}`+"\n")
		e.expect(t, online("kitchen"), value("kitchen", "brightness", "512"), state("kitchen", `{"brightness":512}`))
		e.publish(t, "lamp/kitchen/brightness/set", "700")
		l.expectLine(t, `{"brightness":700}`)
		e.publish(t, "lamp/kitchen/set", `{"mode":"manual","scene":"x"}`)
		l.expectLine(t, `{"mode":"manual","scene":"x"}`)

		// Commands follow the dialect the lamp last used.
		l.send(t, "ambient=1\n")
		e.expect(t, value("kitchen", "ambient", "1"), state("kitchen", `{"ambient":1,"brightness":512}`))
		e.publish(t, "lamp/kitchen/power/set", "on")
		l.expectLine(t, "power=on")
	})

	t.Run("invalid command", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		tests := []struct {
			topic, payload, wantErr string
		}{
			{topic: "lamp/kitchen/brightness/set", payload: "5000", wantErr: "brightness: out of range 0..1023"},
			{topic: "lamp/kitchen/set", payload: `{"brightness":1,"mode":"party"}`, wantErr: "mode: must be auto or manual"},
			{topic: "lamp/kitchen/scene/set", payload: "a b", wantErr: "scene: value must not contain spaces, control characters, ',' or ';'"},
			{topic: "lamp/kitchen/set", payload: `{"id":"other"}`, wantErr: "id: reserved name"},
			{topic: "lamp/kitchen/Bad/set", payload: "1", wantErr: `invalid key "Bad"`},
			{topic: "lamp/kitchen/set", payload: "[1]", wantErr: "malformed frame: want a JSON object"},
			{topic: "lamp/kitchen/scene/set", payload: strings.Repeat("x", 1025), wantErr: "frame too long"},
		}
		for _, tc := range tests {
			e.publish(t, tc.topic, tc.payload)
			m := e.next(t)
			if m.topic != "lamp/kitchen/error" {
				t.Fatalf("published: got %v, want lamp/kitchen/error", m)
			}
			var got struct{ Topic, Payload, Error string }
			if err := json.Unmarshal([]byte(m.payload), &got); err != nil {
				t.Fatalf("error payload %s: %v", m.payload, err)
			}
			// The payload is echoed, cut at 256 bytes.
			wantPayload := tc.payload[:min(len(tc.payload), 256)]
			if got.Topic != tc.topic || got.Payload != wantPayload || got.Error != tc.wantErr {
				t.Errorf("error: got %+v, want {%s %s %s}", got, tc.topic, tc.payload, tc.wantErr)
			}
		}
		// Nothing was written to the lamp for the refused commands.
		e.publish(t, "lamp/kitchen/brightness/set", "7")
		l.expectLine(t, "brightness=7")
		if got := e.retained(t, "lamp/kitchen/error"); len(got) != 0 {
			t.Errorf("retained errors: got %v, want none", got)
		}
	})

	t.Run("desired state delivered on identify", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		// One topic filter, so the bridge handles them in this order
		// (lamp/+/set and lamp/+/+/set are separate subscriptions).
		e.publish(t, "lamp/kitchen/brightness/set", "100")
		e.publish(t, "lamp/kitchen/mode/set", "manual")
		e.publish(t, "lamp/kitchen/brightness/set", "200")
		// Commands are handled on the bus's goroutine: wait until the
		// registry holds them all before the lamp connects.
		testwait.Until(t, "both commands kept as desired state", func() bool {
			s, _ := e.srv.Registry().Get("kitchen")
			return len(s.Desired) == 2 && s.Desired[0].Value.Text == "200"
		})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		l.expectLine(t, "brightness=200 mode=manual")
		// No state is published for what was only commanded.
		if got := e.retained(t, "lamp/kitchen/"); len(got) != 1 {
			t.Errorf("retained: got %v, want only availability", got)
		}
	})

	t.Run("desired state delivered to a json lamp in json", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		e.publish(t, "lamp/kitchen/set", `{"brightness":200,"mode":"manual"}`)
		testwait.Until(t, "both commands kept as desired state", func() bool {
			s, _ := e.srv.Registry().Get("kitchen")
			return len(s.Desired) == 2
		})
		l := e.dial(context.Background(), true)
		// The identifying frame is the first the lamp speaks: JSON.
		l.send(t, `{"id":"kitchen"}`+"\n")
		e.expect(t, online("kitchen"))
		l.expectLine(t, `{"brightness":200,"mode":"manual"}`)
	})

	t.Run("retained command not executed", func(t *testing.T) {
		e := newEnvPre(t, bridge.Options{}, func(bus *broker.InlineBus) {
			// An external broker would replay this to the bridge when it
			// subscribes, as a retained message.
			if err := bus.Publish("lamp/kitchen/brightness/set", []byte("700"), 0, true); err != nil {
				t.Fatal(err)
			}
		})
		// The bridge clears the retained copy...
		testwait.Until(t, "the retained command cleared", func() bool { return len(e.retained(t, "lamp/kitchen/brightness/set")) == 0 })
		// ...and did not execute it: a lamp connecting now gets nothing
		// before the command sent after it.
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		e.publish(t, "lamp/kitchen/brightness/set", "5")
		l.expectLine(t, "brightness=5")
	})
}

func TestServeConnTakeOver(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	first := e.dial(context.Background(), true)
	first.send(t, "HELLO kitchen\nbrightness=1\n")
	e.expect(t, online("kitchen"), value("kitchen", "brightness", "1"), state("kitchen", `{"brightness":1}`))

	second := e.dial(context.Background(), true)
	second.send(t, `{"id":"kitchen"}`+"\n")
	e.expect(t, online("kitchen"))
	first.expectClosed(t)

	// Had the first connection published offline as it ended, it would
	// come before this report: ServeConn has returned, so it is done.
	second.send(t, `{"brightness":1}`+"\n")
	e.expect(t, value("kitchen", "brightness", "1"), state("kitchen", `{"brightness":1}`))

	// Commands go to the new connection, in its dialect.
	e.publish(t, "lamp/kitchen/brightness/set", "9")
	second.expectLine(t, `{"brightness":9}`)

	second.conn.Close()
	second.waitDone(t)
	e.expect(t, offline("kitchen"))
}

func TestServeConnIdentification(t *testing.T) {
	t.Run("not identified", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		l := e.dial(context.Background(), true)
		for _, frame := range []string{"brightness=1", `{"brightness":1}`, "junk"} {
			l.send(t, frame+"\n")
			l.expectLine(t, "ERR not identified")
		}
		l.send(t, "HELLO a/b\n")
		l.expectLine(t, "ERR invalid id")
		l.send(t, "HELLO kitchen\n")
		// Nothing was published before the lamp identified.
		e.expect(t, online("kitchen"))
	})

	t.Run("json id mismatch", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		l.send(t, `{"id":"hall","brightness":1}`+"\n")
		l.expectLine(t, "ERR id mismatch")
		l.send(t, `{"id":"kitchen","brightness":2}`+"\n")
		e.expect(t, value("kitchen", "brightness", "2"), state("kitchen", `{"brightness":2}`))
		if _, ok := e.srv.Registry().Get("hall"); ok {
			t.Errorf("registry knows hall: got known, want unknown")
		}
	})

	t.Run("second hello", func(t *testing.T) {
		e := newEnv(t, bridge.Options{})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		l.send(t, "HELLO hall\n")
		l.expectLine(t, "ERR already identified as kitchen")
		l.send(t, "hello kitchen\nbrightness=3\n")
		e.expect(t, value("kitchen", "brightness", "3"), state("kitchen", `{"brightness":3}`))
	})

	t.Run("registry full", func(t *testing.T) {
		// Commands to ids the registry has never seen are refused when it
		// is full; a lamp that identifies evicts an offline device, and is
		// refused only when every known device is online.
		e := newEnv(t, bridge.Options{Registry: devices.NewRegistry(devices.Options{MaxDevices: 1})})
		a := e.dial(context.Background(), true)
		a.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		e.publish(t, "lamp/ghost/brightness/set", "1")
		e.expect(t, msg{topic: "lamp/ghost/error", payload: `{"topic":"lamp/ghost/brightness/set","payload":"1","error":"too many devices"}`})
		b := e.dial(context.Background(), true)
		b.send(t, "HELLO hall\n")
		if got := b.line(t); got != "ERR too many devices" {
			t.Errorf("lamp read: got %q, want %q", got, "ERR too many devices")
		}
		b.expectClosed(t)
		a.conn.Close()
		e.expect(t, offline("kitchen"))
		c := e.dial(context.Background(), true)
		c.send(t, "HELLO hall\n")
		e.expect(t, online("hall"))
	})

	t.Run("handshake timeout", func(t *testing.T) {
		e := newEnv(t, bridge.Options{HandshakeTimeout: 50 * time.Millisecond})
		l := e.dial(context.Background(), true)
		l.expectClosed(t)
	})

	t.Run("identified lamp outlives the handshake timeout", func(t *testing.T) {
		e := newEnv(t, bridge.Options{HandshakeTimeout: 100 * time.Millisecond})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		// A witness connected after the lamp, that never identifies: once
		// its handshake deadline has closed it, the lamp's would have too.
		witness := e.dial(context.Background(), true)
		witness.expectClosed(t)
		l.send(t, "brightness=1\n")
		e.expect(t, value("kitchen", "brightness", "1"), state("kitchen", `{"brightness":1}`))
	})
}

func TestServeConnBadFrames(t *testing.T) {
	t.Run("too many in a row", func(t *testing.T) {
		e := newEnv(t, bridge.Options{MaxBadFrames: 20})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		for range 19 {
			l.send(t, "junk\n")
			l.expectLine(t, "ERR malformed pair, want key=value")
		}
		// A good frame resets the count.
		l.send(t, "brightness=1\n")
		e.expect(t, value("kitchen", "brightness", "1"), state("kitchen", `{"brightness":1}`))
		for range 19 {
			l.send(t, "brightness=9999\n")
			l.expectLine(t, "ERR brightness: out of range 0..1023")
		}
		l.send(t, "\xff\n")
		l.expectLine(t, "ERR invalid UTF-8")
		l.expectLine(t, "ERR too many bad frames")
		l.expectClosed(t)
		e.expect(t, offline("kitchen"))
	})

	t.Run("before identification", func(t *testing.T) {
		e := newEnv(t, bridge.Options{MaxBadFrames: 3})
		l := e.dial(context.Background(), true)
		for range 3 {
			l.send(t, "x=1\n")
			l.expectLine(t, "ERR not identified")
		}
		l.expectLine(t, "ERR too many bad frames")
		l.expectClosed(t)
	})

	t.Run("blank lines are not bad", func(t *testing.T) {
		e := newEnv(t, bridge.Options{MaxBadFrames: 2})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n\n \r\n\t\n\r\n\n")
		l.send(t, "brightness=2\n")
		e.expect(t, online("kitchen"), value("kitchen", "brightness", "2"), state("kitchen", `{"brightness":2}`))
	})

	t.Run("oversized frame", func(t *testing.T) {
		e := newEnv(t, bridge.Options{MaxFrame: 64})
		l := e.dial(context.Background(), true)
		l.send(t, "HELLO kitchen\n")
		e.expect(t, online("kitchen"))
		l.send(t, "brightness=1 "+strings.Repeat("x", 200))
		l.send(t, strings.Repeat("y", 200)+"\nbrightness=2\n")
		l.expectLine(t, "ERR frame too long (max 64 bytes)")
		e.expect(t, value("kitchen", "brightness", "2"), state("kitchen", `{"brightness":2}`))
		l.send(t, strings.Repeat("z", 65)+"\r\n"+"brightness=3\n")
		l.expectLine(t, "ERR frame too long (max 64 bytes)")
		e.expect(t, value("kitchen", "brightness", "3"), state("kitchen", `{"brightness":3}`))
	})
}

func TestServeConnSlowLamp(t *testing.T) {
	// Unpaced, so each command is a frame of its own in the lamp's queue.
	e := newEnv(t, bridge.Options{WriteQueue: 4, WriteTimeout: time.Minute, Devices: devices.Options{MaxRate: -1}})
	hall := e.dial(context.Background(), true)
	hall.send(t, "HELLO hall\n")
	e.expect(t, online("hall"))
	l := e.dial(context.Background(), false) // never reads
	l.send(t, "HELLO kitchen\n")
	e.expect(t, online("kitchen"))
	// One frame is stuck in the writer's Write and four wait in the
	// queue; the sixth finds the queue full and drops the lamp.
	for i := range 8 {
		start := time.Now()
		e.publish(t, "lamp/kitchen/brightness/set", fmt.Sprint(i))
		if d := time.Since(start); d > time.Second {
			t.Errorf("Publish %d: took %v, want it not to wait for the lamp", i, d)
		}
	}
	// Commands are handled one at a time: had the handler waited for
	// the stuck lamp (up to WriteTimeout), hall would wait too.
	e.publish(t, "lamp/hall/brightness/set", "1")
	hall.expectLine(t, "brightness=1")
	e.expect(t, offline("kitchen"))
	l.waitDone(t)
	// What the lamp never got is kept for its next connection.
	testwait.Until(t, "the command kept as desired state", func() bool {
		s, _ := e.srv.Registry().Get("kitchen")
		return len(s.Desired) == 1 && s.Desired[0].Value.Text == "7"
	})
}

func TestServeConnContextCancel(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	l := e.dial(ctx, true)
	l.send(t, "HELLO kitchen\n")
	e.expect(t, online("kitchen"))
	cancel()
	l.expectClosed(t)
	e.expect(t, offline("kitchen"))
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	lamps := make([]*lamp, 3)
	for i := range lamps {
		lamps[i] = e.dial(context.Background(), true)
		lamps[i].send(t, fmt.Sprintf("HELLO lamp%d\n", i))
		e.expect(t, online(fmt.Sprintf("lamp%d", i)))
	}
	unidentified := e.dial(context.Background(), true)
	// The reply proves the server holds this connection before Shutdown.
	unidentified.send(t, "junk\n")
	unidentified.expectLine(t, "ERR not identified")

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: got %v, want nil", err)
	}
	// Shutdown waited for every connection: each was closed and each
	// lamp was marked offline before it returned. (l.done is closed by
	// the test's goroutine after ServeConn returns, so it can lag.)
	for i, l := range append(lamps, unidentified) {
		if !l.served.closed.Load() {
			t.Errorf("connection %d: still open after Shutdown returned", i)
		}
		if i < len(lamps) {
			if s, _ := e.srv.Registry().Get(fmt.Sprintf("lamp%d", i)); s.Online {
				t.Errorf("lamp%d: still online after Shutdown returned", i)
			}
		}
		l.waitDone(t)
		l.expectClosed(t)
	}
	got := map[string]bool{}
	for range lamps {
		m := e.next(t)
		if m.payload != "offline" {
			t.Fatalf("published: got %v, want an offline", m)
		}
		got[m.topic] = true
	}
	for i := range lamps {
		if topic := offline(fmt.Sprintf("lamp%d", i)).topic; !got[topic] {
			t.Errorf("offline for %s: got none, want one", topic)
		}
	}

	t.Run("ServeConn after shutdown closes the conn", func(t *testing.T) {
		l := e.dial(context.Background(), true)
		l.expectClosed(t)
	})
}

// TestServe runs the accept loop on a real listener: lamps are served
// until Shutdown, which makes Serve return ErrServerClosed.
func TestServe(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "HELLO kitchen\r\nbrightness=3\r\n"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, online("kitchen"), value("kitchen", "brightness", "3"), state("kitchen", `{"brightness":3}`))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: got %v, want nil", err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, bridge.ErrServerClosed) {
			t.Errorf("Serve: got %v, want %v", err, bridge.ErrServerClosed)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return after Shutdown")
	}
	e.expect(t, offline("kitchen"))
	conn.SetReadDeadline(time.Now().Add(wait))
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("lamp read after Shutdown: got (%d, %v), want EOF", n, err)
	}

	t.Run("after shutdown", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.srv.Serve(ln); !errors.Is(err, bridge.ErrServerClosed) {
			t.Errorf("Serve: got %v, want %v", err, bridge.ErrServerClosed)
		}
		// Serve closed ln.
		if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept on the listener: got %v, want %v", err, net.ErrClosed)
		}
	})
}
