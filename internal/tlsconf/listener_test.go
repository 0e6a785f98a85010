package tlsconf_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/testwait"
	"github.com/lampgw/lampgw/internal/tlsconf"
)

// served is what the server side of one connection saw.
type served struct {
	err  error         // the Read or Write error that ended it
	took time.Duration // from Accept to that error
}

// record is a concurrency-safe list, for what servers saw and logged.
type record[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *record[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
}

// drain returns the items and empties the record.
func (r *record[T]) drain() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	items := r.items
	r.items = nil
	return items
}

// take waits for n items, then drains the record.
func (r *record[T]) take(t *testing.T, n int, what string) []T {
	t.Helper()
	testwait.Until(t, fmt.Sprintf("%d of %s", n, what), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.items) >= n
	})
	return r.drain()
}

// logLines is a log destination whose lines a test can take.
type logLines struct{ record[string] }

func (l *logLines) Write(p []byte) (int, error) {
	l.add(string(p))
	return len(p), nil
}

// boundedEcho listens on loopback with NewListener and echoes on each
// connection as the lamp bridge may serve one: the first Read has no
// deadline at all. How each connection ended is recorded in out.
func boundedEcho(t *testing.T, timeout time.Duration, log zerolog.Logger, out *record[served]) string {
	t.Helper()
	p := newPKI(t)
	config := newCerts(t, tlsconf.Options{CertFile: p.cert, KeyFile: p.key}).Config()
	wrap := func(ln net.Listener) net.Listener { return tlsconf.NewListener(ln, config, timeout, log) }
	return listen(t, wrap, func(c net.Conn) {
		start := time.Now()
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err == nil {
				_, err = c.Write(buf[:n])
			}
			if err != nil {
				out.add(served{err, time.Since(start)})
				return
			}
		}
	})
}

func TestListenerHandshakeTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	before := runtime.NumGoroutine()
	t.Cleanup(func() { testwait.Goroutines(t, before) }) // runs last
	var log logLines
	var out record[served]
	addr := boundedEcho(t, timeout, zerolog.New(&log), &out)
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, wait)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	expectLog := func(want string) {
		t.Helper()
		lines := log.drain() // a server logs before it records its end
		if want == "" && len(lines) > 0 || want != "" && (len(lines) != 1 || !strings.Contains(lines[0], want)) {
			t.Errorf("log: got %q, want %s", lines, map[bool]string{true: "none", false: "one line with " + want}[want == ""])
		}
	}

	// A port probe, which connects and closes, is not worth a warning.
	dial().Close()
	if s := out.take(t, 1, "connections ended")[0]; !errors.Is(s.err, io.EOF) {
		t.Errorf("probe: got %v, want EOF", s.err)
	}
	expectLog("")

	// A peer that opens TCP and says nothing is cut off at the timeout,
	// with an error a server counts as a timeout.
	silent := dial()
	s := out.take(t, 1, "connections ended")[0]
	if !errors.Is(s.err, tlsconf.ErrHandshakeTimeout) || !errors.Is(s.err, os.ErrDeadlineExceeded) {
		t.Errorf("silent peer: got %v, want %v, which is os.ErrDeadlineExceeded", s.err, tlsconf.ErrHandshakeTimeout)
	}
	if ne, ok := s.err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("silent peer: got %T, want a net.Error with Timeout() true", s.err)
	}
	if s.took < timeout {
		t.Errorf("silent peer cut off after %v, want no sooner than %v", s.took, timeout)
	}
	silent.SetReadDeadline(time.Now().Add(wait))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("silent peer: read data, want the connection closed")
	}
	expectLog(`"reason":"tlsconf: TLS handshake timed out","message":"TLS handshake failed"`)

	// Garbage ends the handshake at once, not at the timeout.
	dial().Write([]byte("HELLO lamp1\nGET / HTTP/1.1\r\n\r\n"))
	if s := out.take(t, 1, "connections ended")[0]; s.err == nil || errors.Is(s.err, tlsconf.ErrHandshakeTimeout) {
		t.Errorf("garbage: got %v, want a handshake error", s.err)
	}
	expectLog(`"message":"TLS handshake failed"`)
}

func TestListenerHandshakeBoundLifted(t *testing.T) {
	const timeout = 50 * time.Millisecond
	var out record[served]
	addr := boundedEcho(t, timeout, zerolog.Nop(), &out)
	// Accept does not handshake: a silent peer ahead of it holds no one
	// up.
	silent, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	// Well past the handshake timeout the connection still works: the
	// bound ended with the handshake.
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); {
		if err := echo(c); err != nil {
			t.Fatalf("echo after the handshake: %v", err)
		}
	}
	c.Close()
	// The silent peer timed out meanwhile; the good one ended cleanly.
	ends := out.take(t, 2, "connections ended")
	if !slices.ContainsFunc(ends, func(s served) bool { return errors.Is(s.err, io.EOF) }) {
		t.Errorf("server ends: got %v, want an EOF after the client closed", ends)
	}
}
