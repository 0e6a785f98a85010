package lampsim_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/lampsim"
	"github.com/lampgw/lampgw/internal/testwait"
)

// decode reads a report the way the gateway does and returns its values.
func decode(t *testing.T, line string, dialect bridge.Dialect) map[string]string {
	t.Helper()
	f, err := bridge.DecodeFrame([]byte(line), devices.Schema{})
	if err != nil || len(f.Refused) > 0 || f.Dialect != dialect {
		t.Fatalf("report %q: got %v, refused %v, dialect %v; want a clean %v frame", line, err, f.Refused, f.Dialect, dialect)
	}
	v := make(map[string]string)
	for _, p := range f.Pairs {
		v[p.Key] = p.Value.Text
	}
	return v
}

// quiet are options under which a lamp reports only on commands and
// connects: a frozen clock (no sun, no heartbeat) and an hour between
// sensor reads.
func quiet(t *testing.T) lampsim.Options {
	return lampsim.Options{Interval: time.Hour, Now: newClock(noon).now, Logger: testLogger(t)}
}

func TestCommandsAppliedAndReported(t *testing.T) {
	dialects := []struct {
		name    string
		dialect bridge.Dialect
		want    string // the report after the command, ambient left as %d
	}{
		{"text", bridge.DialectText, "brightness=700 ambient=%d mode=manual power=on"},
		{"json", bridge.DialectJSON, `{"brightness":700,"ambient":%d,"mode":"manual","power":"on"}`},
	}
	eols := []struct{ name, eol string }{{"lf", "\n"}, {"crlf", "\r\n"}, {"cr", "\r"}}
	// The lamp understands both dialects whatever its own: the gateway
	// sends a lamp it dialed commands in the devices file's dialect.
	commands := []struct{ name, manual, auto string }{
		{"text command", "brightness=700 mode=manual", "mode=auto"},
		{"json command", `{"brightness":700,"mode":"manual"}`, `{"mode":"auto"}`},
	}
	for _, d := range dialects {
		for _, e := range eols {
			for _, c := range commands {
				t.Run(d.name+"/"+e.name+"/"+c.name, func(t *testing.T) {
					opts := quiet(t)
					opts.Dialect, opts.EOL = d.dialect, e.eol
					s := serve(t, opts)
					p := dialPeer(t, s.Addrs()[0])

					// A peer first gets the whole state, unasked.
					first := p.frame(e.eol)
					v := decode(t, first, d.dialect)
					if v["mode"] != "auto" || v["power"] != "on" {
						t.Fatalf("first report %q: want mode auto, power on", first)
					}
					ambient, _ := strconv.Atoi(v["ambient"])

					p.send(c.manual + e.eol)
					if got, want := p.frame(e.eol), fmt.Sprintf(d.want, ambient); got != want {
						t.Fatalf("after %q: got %q, want %q", c.manual, got, want)
					}
					// Back to auto: brightness follows the same ambient again.
					p.send(c.auto + e.eol)
					if got := p.frame(e.eol); got != first {
						t.Fatalf("after %q: got %q, want the first report %q", c.auto, got, first)
					}
				})
			}
		}
	}
}

// With nothing changing, a lamp repeats its state once a heartbeat is due
// on its clock. That it is silent before is TestReportOnChangeAndHeartbeat's
// to prove: silence on a socket cannot be awaited without a sleep.
func TestHeartbeatOverTheWire(t *testing.T) {
	c := newClock(noon)
	s := serve(t, lampsim.Options{Interval: 5 * time.Millisecond, Heartbeat: time.Minute, Now: c.now, Logger: testLogger(t)})
	p := dialPeer(t, s.Addrs()[0])
	first := p.frame("\n")
	// A minute after noon ambient has moved by less than the deadband.
	c.set(noon.Add(time.Minute))
	if got := p.frame("\n"); got != first {
		t.Fatalf("heartbeat: got %q, want the unchanged state %q", got, first)
	}
}

func TestServerServesEveryClient(t *testing.T) {
	s := serve(t, quiet(t))
	a, b := dialPeer(t, s.Addrs()[0]), dialPeer(t, s.Addrs()[0])
	a.frame("\n")
	b.frame("\n")
	a.send("brightness=10\n")
	for _, p := range []*peer{a, b} {
		if got := decode(t, p.frame("\n"), bridge.DialectText)["brightness"]; got != "10" {
			t.Fatalf("brightness: got %s, want 10 on both peers", got)
		}
	}
	b.send("brightness=20\r\n")
	for _, p := range []*peer{a, b} {
		if got := decode(t, p.frame("\n"), bridge.DialectText)["brightness"]; got != "20" {
			t.Fatalf("brightness: got %s, want 20 on both peers", got)
		}
	}
}

func TestIgnoresWhatItDoesNotUnderstand(t *testing.T) {
	s := serve(t, quiet(t))
	p := dialPeer(t, s.Addrs()[0])
	p.frame("\n")
	// None of these is a command the lamp can act on, so none is
	// answered: the next report is the one for power=off.
	p.send(strings.Join([]string{
		"ERR brightness: out of range 0..1023", // the gateway refusing a report
		"\xff\xfe",                             // not UTF-8
		"HELLO other",                          // not for a lamp
		"note=hi",                              // a key the firmware does not know
		"brightness=5000",                      // out of range
		`{"brightness":`,                       // broken JSON
		"", "   ",                              // blank lines
		"power=off",
	}, "\n") + "\n")
	v := decode(t, p.frame("\n"), bridge.DialectText)
	if v["power"] != "off" || v["mode"] != "auto" {
		t.Fatalf("report %v: want power off and mode still auto", v)
	}
}

func TestLineTooLongDropsThePeer(t *testing.T) {
	opts := quiet(t)
	opts.MaxLine = 32
	s := serve(t, opts)
	p := dialPeer(t, s.Addrs()[0])
	p.frame("\n")
	// Exactly MaxLine bytes is a line.
	p.send("power=off" + strings.Repeat(" ", 23) + "\n")
	if got := decode(t, p.frame("\n"), bridge.DialectText)["power"]; got != "off" {
		t.Fatalf("power: got %s, want off", got)
	}
	// One more byte and the lamp drops the connection, as firmware with a
	// fixed buffer does, and keeps serving others.
	p.send(strings.Repeat("x", 33) + "\n")
	p.closed()
	q := dialPeer(t, s.Addrs()[0])
	q.frame("\n")
}

// fakeGateway is a listener on 127.0.0.1 playing the gateway's lamp port;
// the test accepts from it by hand.
func fakeGateway(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// accept waits for the next connection to ln.
func accept(t *testing.T, ln net.Listener) *peer {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testwait.Timeout))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("no lamp dialed in: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// dial runs lampsim.Dial to addr until the test ends and checks that it
// returned nil. The returned cancel ends it early; wait then fails the
// test unless Dial returns within testwait.Timeout.
func dial(t *testing.T, addr net.Addr, opts lampsim.Options) (cancel func(), wait func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lampsim.Dial(ctx, addr.String(), opts) }()
	returned := false
	wait = func() {
		t.Helper()
		if returned {
			return
		}
		select {
		case err := <-done:
			returned = true
			if err != nil {
				t.Errorf("Dial: %v", err)
			}
		case <-time.After(testwait.Timeout):
			t.Fatalf("Dial still running %v after cancel", testwait.Timeout)
		}
	}
	t.Cleanup(func() { cancel(); wait() })
	return cancel, wait
}

func TestDialSendsHelloFirstAndReconnects(t *testing.T) {
	ln := fakeGateway(t)
	before := runtime.NumGoroutine()
	opts := quiet(t)
	opts.Count, opts.EOL, opts.IDPrefix = 2, "\r\n", "desk-"
	opts.Backoff, opts.MaxBackoff = time.Millisecond, 2*time.Millisecond
	cancel, wait := dial(t, ln.Addr(), opts)

	lamps := make(map[string]*peer)
	for range 2 {
		p := accept(t, ln)
		id, ok := strings.CutPrefix(p.frame("\r\n"), "HELLO ")
		if !ok {
			t.Fatal("first frame is not HELLO")
		}
		decode(t, p.frame("\r\n"), bridge.DialectText)
		lamps[id] = p
	}
	if lamps["desk-1"] == nil || lamps["desk-2"] == nil {
		t.Fatalf("lamps %v: want desk-1 and desk-2", lamps)
	}

	// The gateway goes away; the lamp comes back, HELLO first again.
	lamps["desk-2"].conn.Close()
	p := accept(t, ln)
	if got := p.frame("\r\n"); got != "HELLO desk-2" {
		t.Fatalf("after reconnecting: got %q, want HELLO desk-2", got)
	}

	cancel()
	wait()
	testwait.Goroutines(t, before)
	lamps["desk-1"].closed()
	p.closed()
}

func TestCancelInterruptsBackoff(t *testing.T) {
	ln := fakeGateway(t)
	before := runtime.NumGoroutine()
	logs := &logBuffer{}
	opts := quiet(t)
	opts.Logger = zerolog.New(logs)
	// Half an hour at least between attempts: only an interrupted wait
	// lets Dial return within the test's deadline.
	opts.Backoff = time.Hour
	cancel, wait := dial(t, ln.Addr(), opts)
	accept(t, ln).conn.Close()
	testwait.Until(t, "the lamp to log its disconnect and start waiting", func() bool {
		return logs.has(`"message":"disconnected"`)
	})
	cancel()
	wait()
	testwait.Goroutines(t, before)
}

func TestListenAllOrNothing(t *testing.T) {
	port := fakeGateway(t).Addr().(*net.TCPAddr).Port
	below := fmt.Sprintf("127.0.0.1:%d", port-1)

	_, err := lampsim.Listen(below, lampsim.Options{Count: 2})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen over a busy port: got %v, want address in use", err)
	}
	if !strings.Contains(err.Error(), "sim-2") {
		t.Skipf("port %d was taken too (%v); nothing to learn about releasing it", port-1, err)
	}
	// sim-1's port was bound and must have been released.
	ln, err := net.Listen("tcp", below)
	if err != nil {
		t.Fatalf("port of sim-1 not released: %v", err)
	}
	ln.Close()
}

func TestInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		addr string
		opts lampsim.Options
	}{
		{"bad EOL", "127.0.0.1:0", lampsim.Options{EOL: "\n\n"}},
		{"id prefix makes a bad id", "127.0.0.1:0", lampsim.Options{IDPrefix: "a/"}},
		{"id too long", "127.0.0.1:0", lampsim.Options{IDPrefix: strings.Repeat("a", 64)}},
		{"negative count", "127.0.0.1:0", lampsim.Options{Count: -1}},
		{"negative interval", "127.0.0.1:0", lampsim.Options{Interval: -time.Second}},
		{"port 0 for many lamps", "127.0.0.1:0", lampsim.Options{Count: 2}},
		{"past port 65535", "127.0.0.1:65535", lampsim.Options{Count: 2}},
		{"no port", "127.0.0.1", lampsim.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := lampsim.Listen(tt.addr, tt.opts); !errors.Is(err, lampsim.ErrInvalidOptions) {
				t.Fatalf("Listen: got %v, want ErrInvalidOptions", err)
			}
		})
	}
	if err := lampsim.Dial(context.Background(), "127.0.0.1:1", lampsim.Options{EOL: "x"}); !errors.Is(err, lampsim.ErrInvalidOptions) {
		t.Fatalf("Dial: got %v, want ErrInvalidOptions", err)
	}
}

func TestServeOnce(t *testing.T) {
	s, err := lampsim.Listen("127.0.0.1:0", lampsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Serve(context.Background()); !errors.Is(err, lampsim.ErrServerClosed) {
		t.Fatalf("Serve after Close: got %v, want ErrServerClosed", err)
	}
}
