package lampsim_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/lampsim"
	"github.com/lampgw/lampgw/internal/testwait"
)

// noon is when every test's sun starts: local noon for a UTC clock.
var noon = time.Date(2026, 6, 21, 12, 0, 0, 0, time.UTC)

// clock is a fake Options.Now that tests move by hand; it only moves when
// told, so heartbeats never fire on their own.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}

func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

// logBuffer collects log lines so a test can wait for an event the
// simulator logs, such as the start of a backoff.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if os.Getenv("LAMPGW_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	return b.buf.Write(p)
}

func (b *logBuffer) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("LAMPGW_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("test", t.Name()).Logger()
}

// serve runs lamps in server mode on 127.0.0.1 until the test ends, and
// checks that they left no goroutine behind.
func serve(t *testing.T, opts lampsim.Options) *lampsim.Server {
	t.Helper()
	before := runtime.NumGoroutine()
	s, err := lampsim.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: this one after Serve has returned.
	t.Cleanup(func() { testwait.Goroutines(t, before) })
	serveInBackground(t, s)
	return s
}

// serveInBackground runs s.Serve until the test ends and checks that it
// returned nil.
func serveInBackground(t *testing.T, s *lampsim.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// peer is a raw TCP client of a lamp: the gateway, or a person with nc.
type peer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialPeer(t *testing.T, addr net.Addr) *peer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), testwait.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (p *peer) send(s string) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(testwait.Timeout))
	if _, err := p.conn.Write([]byte(s)); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

// frame reads the next line and checks that it ends in exactly eol and
// holds no other terminator; it returns the line without eol.
func (p *peer) frame(eol string) string {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(testwait.Timeout))
	s, err := p.r.ReadString(eol[len(eol)-1])
	if err != nil {
		p.t.Fatalf("peer read: %v (partial %q)", err, s)
	}
	line, ok := strings.CutSuffix(s, eol)
	if !ok || strings.ContainsAny(line, "\r\n") {
		p.t.Fatalf("frame %q: want one line ended by %q", s, eol)
	}
	return line
}

// closed reads until the lamp closes the connection.
func (p *peer) closed() {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(testwait.Timeout))
	for {
		if _, err := p.r.ReadByte(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				p.t.Fatalf("connection still open after %v", testwait.Timeout)
			}
			return
		}
	}
}
