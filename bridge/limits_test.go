package bridge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/testwait"
)

// setDevices gives the server a devices file.
func (e *env) setDevices(t *testing.T, yaml string) {
	t.Helper()
	f, err := devices.ParseFile("devices.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.SetDevices(f)
}

// drainTo reads and drops published messages up to and including want.
func (e *env) drainTo(t *testing.T, want msg) {
	t.Helper()
	for {
		if m := e.next(t); m.topic == want.topic && m.payload == want.payload {
			return
		}
	}
}

func TestLampTokens(t *testing.T) {
	const file = `
devices:
  - {id: locked, token: s3cret}
  - {id: hashed, token: "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"}
  - {id: by-addr, match: 192.0.2.1}
  - {id: free}
`
	for _, tc := range []struct {
		name, hello string
		want        string // "" means admitted
	}{
		{"right token", "HELLO locked s3cret", ""},
		{"wrong token", "HELLO locked s3cre", "ERR not authorized"},
		{"missing token", "HELLO locked", "ERR not authorized"},
		{"JSON token", `{"id":"locked","token":"s3cret","brightness":3}`, ""},
		{"JSON wrong token", `{"id":"locked","token":"nope","brightness":3}`, "ERR not authorized"},
		{"token stored as a hash", "HELLO hashed secret", ""},
		{"lamp known by address", "HELLO by-addr", "ERR not authorized"},
		{"no token configured", "HELLO free", ""},
		{"not in the file", "HELLO stranger", ""},
	} {
		id := "locked" // the JSON ones
		if f := strings.Fields(tc.hello); f[0] == "HELLO" {
			id = f[1]
		}
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, bridge.Options{})
			e.setDevices(t, file)
			l := e.dial(context.Background(), true)
			l.send(t, tc.hello+"\n")
			if tc.want != "" {
				l.expectLine(t, tc.want)
				l.expectClosed(t)
				if got := e.srv.Stats().AuthFailures; got != 1 {
					t.Errorf("AuthFailures: got %d, want 1", got)
				}
				return
			}
			e.drainTo(t, online(id))
		})
	}
}

func TestRequireKnownDevices(t *testing.T) {
	e := newEnv(t, bridge.Options{RequireKnownDevices: true})
	e.setDevices(t, "devices:\n  - {id: known}\n")
	l := e.dial(context.Background(), true)
	l.send(t, "HELLO stranger\n")
	l.expectLine(t, "ERR unknown device")
	l.expectClosed(t)
	l = e.dial(context.Background(), true)
	l.send(t, "HELLO known\n")
	e.drainTo(t, online("known"))
}

func TestTakeOverNeedsTheSameToken(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	first := e.dial(context.Background(), true)
	first.send(t, "HELLO kitchen mine\n")
	e.expect(t, online("kitchen"))

	for _, hello := range []string{"HELLO kitchen", "HELLO kitchen other", `{"id":"kitchen"}`} {
		thief := e.dial(context.Background(), true)
		thief.send(t, hello+"\n")
		thief.expectLine(t, "ERR not authorized")
		thief.expectClosed(t)
	}
	// Still the first connection's: its reports are published.
	first.send(t, "brightness=1\n")
	e.expect(t, value("kitchen", "brightness", "1"), msg{topic: "lamp/kitchen/state", payload: `{"brightness":1}`})

	again := e.dial(context.Background(), true)
	again.send(t, "HELLO kitchen mine\n")
	e.expect(t, online("kitchen"))
	first.expectClosed(t) // taken over, by the same lamp rebooted
	again.send(t, "brightness=2\n")
	e.expect(t, value("kitchen", "brightness", "2"))
}

// tcpLamp is a lamp on a real loopback socket, for limits that need a
// remote address.
type tcpLamp struct {
	conn net.Conn
	r    *bufio.Reader
}

func serveTCP(t *testing.T, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.Serve(ln)
	return ln.Addr().String()
}

func dialTCP(t *testing.T, addr string) *tcpLamp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &tcpLamp{conn: conn, r: bufio.NewReader(conn)}
}

func (l *tcpLamp) send(t *testing.T, s string) {
	t.Helper()
	l.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(l.conn, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectEnd reads until the gateway closes the connection and returns
// what it wrote.
func (l *tcpLamp) expectEnd(t *testing.T) string {
	t.Helper()
	l.conn.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(l.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v; read %q", wait, b)
	}
	return string(b)
}

func TestFailedHellosLimitedPerAddress(t *testing.T) {
	e := newEnv(t, bridge.Options{})
	e.setDevices(t, "devices:\n  - {id: locked, token: s3cret}\n")
	addr := serveTCP(t, e)
	for i := range 5 {
		l := dialTCP(t, addr)
		l.send(t, "HELLO locked guess"+fmt.Sprint(i)+"\n")
		if got := l.expectEnd(t); got != "ERR not authorized\n" {
			t.Fatalf("guess %d: got %q, want ERR not authorized", i, got)
		}
	}
	// The sixth guess is not even checked, and neither is the right token
	// from the same address for a while.
	for _, hello := range []string{"HELLO locked guess5", "HELLO locked s3cret"} {
		l := dialTCP(t, addr)
		l.send(t, hello+"\n")
		if got := l.expectEnd(t); got != "ERR too many failed attempts, try later\n" {
			t.Fatalf("%s: got %q, want too many failed attempts", hello, got)
		}
	}
	if got := e.srv.Stats().AuthFailures; got != 7 {
		t.Errorf("AuthFailures: got %d, want 7", got)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		e := newEnv(t, bridge.Options{MaxConnsPerAddr: 3})
		addr := serveTCP(t, e)
		var lamps []*tcpLamp
		for i := range 3 {
			l := dialTCP(t, addr)
			l.send(t, fmt.Sprintf("HELLO lamp%d\n", i))
			e.expect(t, online(fmt.Sprintf("lamp%d", i)))
			lamps = append(lamps, l)
		}
		extra := dialTCP(t, addr)
		if got := extra.expectEnd(t); got != "ERR too many connections\n" {
			t.Errorf("fourth connection: got %q, want ERR too many connections", got)
		}
		if s := e.srv.Stats(); s.RefusedPerAddr != 1 || s.Connections != 3 {
			t.Errorf("Stats: got %+v, want 1 refused per address and 3 connections", s)
		}
		// A slot freed is a slot again.
		lamps[0].conn.Close()
		e.expect(t, offline("lamp0"))
		// The slot is released after "offline", as ServeConn returns.
		testwait.Until(t, "the slot released", func() bool { return e.srv.Stats().Connections == 2 })
		l := dialTCP(t, addr)
		l.send(t, "HELLO lamp9\n")
		e.expect(t, online("lamp9"))
	})
	t.Run("total", func(t *testing.T) {
		e := newEnv(t, bridge.Options{MaxConns: 2})
		addr := serveTCP(t, e)
		a, b := dialTCP(t, addr), dialTCP(t, addr)
		a.send(t, "HELLO a\n")
		e.expect(t, online("a"))
		b.send(t, "HELLO b\n")
		e.expect(t, online("b"))
		if got := dialTCP(t, addr).expectEnd(t); got != "ERR too many connections\n" {
			t.Errorf("third connection: got %q, want ERR too many connections", got)
		}
		if s := e.srv.Stats(); s.RefusedTotal != 1 {
			t.Errorf("RefusedTotal: got %d, want 1", s.RefusedTotal)
		}
	})
}

func TestFrameRate(t *testing.T) {
	// The state of every frame (StateInterval < 0), to see each frame.
	e := newEnv(t, bridge.Options{FrameRate: 50, FrameBurst: 2, StateInterval: -1})
	l := e.dial(context.Background(), true)
	l.send(t, "HELLO fast\n")
	e.expect(t, online("fast"))
	for i := range 6 {
		l.send(t, fmt.Sprintf("brightness=%d\n", i))
	}
	// Slowed, not dropped: every frame is published, in order.
	for i := range 6 {
		e.expect(t, value("fast", "brightness", fmt.Sprint(i)), msg{topic: "lamp/fast/state", payload: fmt.Sprintf(`{"brightness":%d}`, i)})
	}
	if got := e.srv.Stats().RateLimited; got < 4 {
		t.Errorf("RateLimited: got %d, want at least 4 of 7 frames held back with a burst of 2", got)
	}
}

func TestHandshakeTimeoutCounted(t *testing.T) {
	e := newEnv(t, bridge.Options{HandshakeTimeout: 50 * time.Millisecond})
	l := e.dial(context.Background(), true)
	l.expectClosed(t)
	if got := e.srv.Stats().HandshakeTimeouts; got != 1 {
		t.Errorf("HandshakeTimeouts: got %d, want 1", got)
	}
}

// TestAdmitRate: identifications are paced across connections, none is
// refused, and a connection that ends while waiting stops waiting.
func TestAdmitRate(t *testing.T) {
	e := newEnv(t, bridge.Options{AdmitRate: 20}) // bursts of 5
	start := time.Now()
	const n = 15
	for i := range n {
		l := e.dial(context.Background(), true)
		go l.conn.Write([]byte(fmt.Sprintf("HELLO lamp%d\n", i)))
	}
	testwait.Until(t, "every lamp admitted", func() bool { return e.srv.Registry().Online() == n })
	// 5 at once, then one per 50 ms: at least 0.5 s for the other 10.
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Errorf("%d lamps admitted in %v, want no faster than the admit rate allows", n, took)
	}
	if s := e.srv.Stats(); s.RefusedTotal != 0 || s.AuthFailures != 0 {
		t.Errorf("Stats: got %+v, want nothing refused", s)
	}
}

// TestIdleLampStack holds an idle lamp's goroutine to a 4 KB stack: the
// frames below its Read must stay small enough for the runtime to halve
// the 8 KB it grew to while identifying (see Server.serve). A frame that
// grows past that doubles what every idle lamp's stack costs.
func TestIdleLampStack(t *testing.T) {
	if bridge.RaceEnabled() {
		t.Skip("-race enlarges every frame")
	}
	e := newEnv(t, bridge.Options{MaxConnsPerAddr: 1000, AdmitRate: -1})
	addr := serveTCP(t, e)
	const n = 200
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.StackInuse
	// Real sockets, served by Serve, as lamps are; the test's side of
	// them has no goroutines.
	for i := range n {
		dialTCP(t, addr).send(t, fmt.Sprintf("HELLO idle%d\n", i))
		e.expect(t, online(fmt.Sprintf("idle%d", i)))
	}
	// Each collection halves a stack at most once.
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	if per := (int64(ms.StackInuse) - int64(before)) / n; per > 5<<10 {
		t.Errorf("stack per idle lamp: %d bytes, want about 4096", per)
	}
}
