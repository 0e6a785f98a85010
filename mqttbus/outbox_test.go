package mqttbus

import (
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lampgw/lampgw/internal/testwait"
)

func TestOutbox(t *testing.T) {
	msg := func(topic, payload string, retain bool) Message {
		return Message{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: retain}
	}
	tests := []struct {
		name    string
		max     int
		add     []Message
		want    []string // topic=payload, in sending order
		dropped int64
	}{
		{"in order", 10, []Message{msg("a", "1", false), msg("b", "2", false)}, []string{"a=1", "b=2"}, 0},
		{"retained replaced in place", 10,
			[]Message{msg("s", "1", true), msg("e", "x", false), msg("s", "2", true)}, []string{"s=2", "e=x"}, 0},
		{"live messages to one topic all kept", 10,
			[]Message{msg("e", "1", false), msg("e", "2", false)}, []string{"e=1", "e=2"}, 0},
		{"oldest dropped past max", 2,
			[]Message{msg("a", "1", false), msg("b", "2", true), msg("c", "3", false)}, []string{"b=2", "c=3"}, 1},
		{"dropped retained no longer replaceable", 1,
			[]Message{msg("s", "1", true), msg("c", "3", false), msg("s", "2", true)}, []string{"s=2"}, 2},
		{"no buffer", -1, []Message{msg("a", "1", false)}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := outbox{max: tc.max}
			for _, m := range tc.add {
				if buffered, _ := o.add(m, false); !buffered {
					t.Fatalf("add(%s) while down not buffered", m.Topic)
				}
			}
			var got []string
			for {
				m, ok := o.next()
				if !ok {
					break
				}
				got = append(got, m.Topic+"="+string(m.Payload))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sent %q, want %q", got, tc.want)
			}
			if o.drops() != tc.dropped {
				t.Errorf("dropped %d, want %d", o.drops(), tc.dropped)
			}
			if buffered, _ := o.add(msg("late", "1", false), false); buffered {
				t.Error("a publish after the buffer emptied (connection up) was buffered")
			}
		})
	}
}

// TestBufferedWhileBrokerDown publishes while the broker is away: the
// publishes reach the broker once it is back, the latest retained state
// of a topic only, before OnConnect runs.
func TestBufferedWhileBrokerDown(t *testing.T) {
	addr := freePort(t)
	first := startEmbedded(t, addr)
	reconnected := make(chan struct{}, 1)
	b, err := New(Options{Broker: "tcp://" + addr, Logger: testLogger(t), OnConnect: func() {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	got := collect(t, b, "buf/#")
	first.Close()
	testwait.Until(t, "the bus to see the broker gone", func() bool { return !b.client.IsConnectionOpen() })

	for _, m := range []Message{{"buf/state", []byte("1"), 1, true}, {"buf/event", []byte("x"), 0, false}, {"buf/state", []byte("2"), 1, true}} {
		if err := b.Publish(m.Topic, m.Payload, m.QoS, m.Retain); err != nil {
			t.Fatalf("Publish while down: %v", err)
		}
	}
	if n := b.Buffered(); n != 2 {
		t.Errorf("Buffered() = %d, want 2", n)
	}
	if len(reconnected) != 0 {
		t.Fatal("OnConnect ran before a reconnection")
	}
	startEmbedded(t, addr)
	// The subscription is made again before the buffer is sent, so the
	// bus hears its own publishes live.
	expect(t, got, rec{"buf/state", "2", false})
	expect(t, got, rec{"buf/event", "x", false})
	select {
	case <-reconnected:
	case <-time.After(waitTimeout):
		t.Fatal("OnConnect did not run after the reconnection")
	}
	if n := b.Buffered(); n != 0 {
		t.Errorf("Buffered() after reconnect = %d, want 0", n)
	}
	select {
	case r := <-got:
		t.Errorf("unexpected %v: a replaced retained state was sent", r)
	default:
	}
}

// TestWillOnAbruptDisconnect cuts the bus's connection without a
// DISCONNECT, as a killed process or a dead network does: the broker
// publishes the will.
func TestWillOnAbruptDisconnect(t *testing.T) {
	bk := startEmbedded(t, "127.0.0.1:0")
	p := startProxy(t, bk.MQTTAddr().String())
	observer := newBus(t, "tcp://"+bk.MQTTAddr().String())
	got := collect(t, observer, "will/#")
	b, err := New(Options{Broker: "tcp://" + p.addr(), Logger: testLogger(t),
		Will: Message{Topic: "will/me", Payload: []byte("offline"), QoS: 1, Retain: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p.cut()
	expect(t, got, rec{"will/me", "offline", false})
}

// TestUnacknowledgedPublishAtConnectionLoss: the broker takes a QoS 1
// PUBLISH, its PUBACK never comes, the connection is lost and the broker
// stays away. Publish used to wait for the reconnection or the whole
// AckTimeout (a lamp's reader held, and a shutdown held up, while the
// broker was gone). Now it returns as soon as the connection is lost,
// and paho sends the message again once it has reconnected.
func TestUnacknowledgedPublishAtConnectionLoss(t *testing.T) {
	bk := startEmbedded(t, "127.0.0.1:0")
	observer := newBus(t, "tcp://"+bk.MQTTAddr().String())
	got := collect(t, observer, "inflight/#")
	p := startProxy(t, bk.MQTTAddr().String())
	// An AckTimeout longer than the test's waits: returning only when it
	// passes fails the test.
	b, err := New(Options{Broker: "tcp://" + p.addr(), Logger: testLogger(t), AckTimeout: time.Hour,
		MaxReconnectInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	// Not retained: a retained message could also reach the observer as
	// its subscription's replay, a copy this test would count.
	p.muted.Store(true)
	done := make(chan error, 1)
	go func() { done <- b.Publish("inflight/event", []byte("1"), 1, false) }()
	// The broker has it (the observer hears it), its PUBACK is dropped.
	expect(t, got, rec{"inflight/event", "1", false})
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v before any acknowledgement", err)
	default:
	}
	p.refuse.Store(true)
	p.cut()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish after the connection was lost: %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Publish still waiting after the connection was lost")
	}
	p.refuse.Store(false)
	// paho reconnects through the proxy and sends the message again.
	expect(t, got, rec{"inflight/event", "1", false})
}

func TestInvalidWill(t *testing.T) {
	if _, err := New(Options{Broker: "tcp://127.0.0.1:1", Will: Message{Topic: "a/+"}}); err == nil {
		t.Error("a will to a wildcard topic was accepted")
	}
}

// proxy forwards TCP connections to a broker, and can cut them all at
// once without either side saying goodbye.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	// muted drops what the broker sends while set, until the next cut:
	// a broker that takes a PUBLISH and never acknowledges it.
	muted atomic.Bool
	// refuse closes new connections at once: a broker that is away.
	refuse atomic.Bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	var wg sync.WaitGroup
	accepting := make(chan struct{})
	// The accept loop ends before the cut: a connection it was still
	// setting up would otherwise escape the cut and hold wg.Wait.
	t.Cleanup(func() { ln.Close(); <-accepting; p.cut(); wg.Wait() })
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.refuse.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); p.copyDown(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// copyDown copies from the broker to the client, dropping what comes
// while muted.
func (p *proxy) copyDown(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.muted.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	// New connections, as a reconnection's, are heard again.
	p.muted.Store(false)
}
