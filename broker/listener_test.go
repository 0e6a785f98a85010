package broker

import (
	"github.com/lampgw/lampgw/internal/testwait"

	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// rawConnect opens a TCP connection and, with id != "", completes an MQTT
// 3.1.1 CONNECT by hand, so a test controls exactly what the client reads.
func rawConnect(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if id == "" {
		return c
	}
	pk := []byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	rawRoundTrip(t, c, append(pk, id...), []byte{0x20, 2, 0, 0})
	return c
}

// rawSubscribe subscribes at QoS 0 and waits for the SUBACK.
func rawSubscribe(t *testing.T, c net.Conn, filter string) {
	t.Helper()
	pk := []byte{0x82, byte(5 + len(filter)), 0, 1, 0, byte(len(filter))}
	pk = append(append(pk, filter...), 0)
	rawRoundTrip(t, c, pk, []byte{0x90, 3, 0, 1, 0})
}

func rawRoundTrip(t *testing.T, c net.Conn, send, want []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(send); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("reply: got % x, want % x", got, want)
	}
}

func TestHandshakeTimeoutClosesSilentConnection(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", HandshakeTimeout: 100 * time.Millisecond})
	c := rawConnect(t, b.MQTTAddr().String(), "")
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read from a connection that never sent CONNECT: got %v, want EOF", err)
	}
}

func TestHandshakeDeadlineLiftedAfterConnect(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", HandshakeTimeout: 100 * time.Millisecond})
	c := rawConnect(t, b.MQTTAddr().String(), "patient")
	rawSubscribe(t, c, "a")
	// Well past the handshake deadline the session still works: mochi's
	// keepalive deadline replaced ours once CONNECT was read.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		rawSubscribe(t, c, "a")
	}
}

// TestCloseDoesNotWaitForHandshake checks Close returns while a client is
// connected but silent: mochi's own listeners would wait for its CONNECT
// forever.
func TestCloseDoesNotWaitForHandshake(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", HandshakeTimeout: time.Hour})
	rawConnect(t, b.MQTTAddr().String(), "")
	rawConnect(t, b.WSAddr().String(), "")
	// The WebSocket one is still in HTTP, where http.Server.Close ends it.
	testwait.Until(t, "the MQTT connection accepted", func() bool { return b.mqttLn.conns.len() == 1 })
	closeWithin(t, b)
}

func (s *conns) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}

func closeWithin(t *testing.T, b *Broker) {
	t.Helper()
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
}

// TestDroppedCountsStuckClient connects a real client that subscribes and
// then stops reading; once the socket buffers are full its outbound queue
// fills and further messages must be dropped, counted, and never block
// the publisher. Close must still return.
func TestDroppedCountsStuckClient(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0", MaxClientWritesPending: 2})
	c := rawConnect(t, b.MQTTAddr().String(), "stuck")
	rawSubscribe(t, c, "flood/#")

	// Publish well past what the socket buffers hold, so mochi's write
	// loop is blocked writing to the client, not merely behind.
	payload := bytes.Repeat([]byte("x"), 64<<10)
	const n = 400 // 25 MB
	for range n {
		if err := b.Bus().Publish("flood/x", payload, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Dropped(); got == 0 || got >= n {
		t.Errorf("Dropped: got %d, want between 1 and %d", got, n-1)
	}
	if got := b.Bus().Dropped(); got != 0 {
		t.Errorf("InlineBus.Dropped: got %d, want 0 (no bus subscriber)", got)
	}
	// mochi alone would hang here until the client's keepalive deadline.
	start := time.Now()
	closeWithin(t, b)
	if took := time.Since(start); took > 5*closeGrace {
		t.Errorf("Close took %v with a stuck client, want about %v", took, closeGrace)
	}
}

func TestNextDelay(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 10 {
		d = nextDelay(d)
		got = append(got, d)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays: got %v, want %v ms", got, want)
		}
	}
}

// flakyListener fails Accept with a temporary error until its budget is
// spent, as a real listener does on EMFILE, then accepts normally.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
	fails    chan time.Time // when each failure was returned
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		l.fails <- time.Now()
		return nil, tempErr{}
	}
	return l.Listener.Accept()
}

func newFlaky(t *testing.T, failures int32) *flakyListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln, fails: make(chan time.Time, 100)}
	fl.failures.Store(failures)
	return fl
}

func TestAcceptSurvivesTemporaryErrors(t *testing.T) {
	fl := newFlaky(t, 3)
	l := newTCPListener("mqtt", fl, time.Second, func(string) {}, testLogger(t))
	accepted := make(chan string, 1)
	go l.Serve(func(id string, c net.Conn) error {
		accepted <- id
		return c.Close()
	})
	defer l.Close(nil)

	c, err := net.Dial("tcp", fl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case id := <-accepted:
		if id != "mqtt" {
			t.Errorf("establish id: got %q, want %q", id, "mqtt")
		}
	case <-time.After(waitTimeout):
		t.Fatal("connection not accepted after temporary errors")
	}
	if n := len(fl.fails); n != 3 {
		t.Errorf("failed accepts: got %d, want 3", n)
	}
}

// TestCloseInterruptsAcceptBackoff checks Close ends Serve during a 1 s
// backoff instead of sleeping it out.
func TestCloseInterruptsAcceptBackoff(t *testing.T) {
	fl := newFlaky(t, 1000)
	l := newTCPListener("mqtt", fl, time.Second, func(string) {}, testLogger(t))
	go l.Serve(func(string, net.Conn) error { return nil })

	// After 9 failures the delay has reached its 1 s cap.
	var last time.Time
	for range 9 {
		select {
		case last = <-fl.fails:
		case <-time.After(waitTimeout):
			t.Fatal("Serve stopped retrying")
		}
	}
	l.Close(nil)
	if took := time.Since(last); took >= maxAcceptDelay {
		t.Errorf("Close returned %v after the last failure, want < %v", took, maxAcceptDelay)
	}
}

func TestListenerCloseBeforeServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var closed sync.WaitGroup
	closed.Add(1)
	l := newTCPListener("mqtt", ln, time.Second, func(string) { closed.Done() }, testLogger(t))
	l.Close(nil)
	closed.Wait()
	l.Serve(func(string, net.Conn) error { return nil }) // returns at once
	if _, err := ln.Accept(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Accept after Close: got %v, want a closed-listener error", err)
	}
}

// TestListenersAvoidMochiCloseFn pins the workaround for mochi's
// Clients.GetByListener deadlock: our listeners disconnect clients
// through the function Broker gave them, never mochi's CloseFn.
func TestListenersAvoidMochiCloseFn(t *testing.T) {
	mochiCloser := func(string) { t.Error("listener called mochi's CloseFn") }
	for _, name := range []string{"mqtt", "ws"} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			disconnect := func(id string) { got = append(got, id) }
			var l interface{ Close(listeners.CloseFn) }
			if name == "mqtt" {
				l = newTCPListener(name, ln, time.Second, disconnect, testLogger(t))
			} else {
				l = newWSListener(name, ln, time.Second, disconnect, testLogger(t))
			}
			l.Close(mochiCloser)
			if len(got) != 1 || got[0] != name {
				t.Errorf("disconnect calls: got %q, want [%q]", got, name)
			}
		})
	}
}

func TestCloseDisconnectsClients(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	c := rawConnect(t, b.MQTTAddr().String(), "leaver")
	closeWithin(t, b)
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	rest, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after Close: got %v, want EOF", err)
	}
	if len(rest) > 0 && rest[0] != 0xe0 {
		t.Errorf("bytes after Close: got % x, want a DISCONNECT (e0 00) or nothing", rest)
	}
}
