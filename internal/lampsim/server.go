package lampsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Server is lamps in server mode: each listens on its own port, like
// ESP8266 firmware running a WiFiServer, never sends HELLO, and serves
// whoever connects, every client at once. Reports go to every client;
// commands from any of them are applied.
type Server struct {
	opts  Options
	lamps []*lamp
	lns   []net.Listener

	mu   sync.Mutex
	used bool // Serve or Close was called; the listeners belong to it
}

// Listen binds opts.Count consecutive ports on addr's host, lamp n on
// addr's port + n - 1, all or none: if one port cannot be bound, the ones
// already bound are released and the error is returned, so a caller may
// retry with another base port. Port 0 (any free port) is allowed for a
// single lamp only. Invalid options or a range past port 65535 give an
// error wrapping ErrInvalidOptions.
func Listen(addr string, opts Options) (*Server, error) {
	if err := opts.ensureDefaults(); err != nil {
		return nil, err
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %v", ErrInvalidOptions, addr, err)
	}
	base, err := strconv.ParseUint(p, 10, 16)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: address %q: port must be a number 0..65535", ErrInvalidOptions, addr)
	case base == 0 && opts.Count > 1:
		return nil, fmt.Errorf("%w: address %q: port 0 serves one lamp only, got Count %d", ErrInvalidOptions, addr, opts.Count)
	case int(base)+opts.Count-1 > 65535:
		return nil, fmt.Errorf("%w: address %q: %d lamps need ports up to %d, past 65535", ErrInvalidOptions, addr, opts.Count, int(base)+opts.Count-1)
	}
	s := &Server{opts: opts}
	for n := 1; n <= opts.Count; n++ {
		a := net.JoinHostPort(host, strconv.Itoa(int(base)+n-1))
		ln, err := net.Listen("tcp", a)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("lampsim: listen for %s: %w", opts.id(n), err)
		}
		s.lns = append(s.lns, ln)
	}
	for n := 1; n <= opts.Count; n++ {
		s.lamps = append(s.lamps, newLamp(&s.opts, n))
	}
	return s, nil
}

// Addrs returns each lamp's listening address, lamp 1 first.
func (s *Server) Addrs() []net.Addr {
	a := make([]net.Addr, len(s.lns))
	for i, ln := range s.lns {
		a[i] = ln.Addr()
	}
	return a
}

// IDs returns each lamp's id, in the order of Addrs.
func (s *Server) IDs() []string {
	ids := make([]string, len(s.lamps))
	for i, l := range s.lamps {
		ids[i] = l.id
	}
	return ids
}

// Serve runs the lamps and serves their listeners until ctx ends, then
// closes the listeners and every connection and returns nil once all its
// goroutines have ended. It returns ErrServerClosed at once after Close
// or a previous Serve.
func (s *Server) Serve(ctx context.Context) error {
	if !s.use() {
		return ErrServerClosed
	}
	var wg sync.WaitGroup
	for i, l := range s.lamps {
		ln := s.lns[i]
		wg.Go(func() { l.run(ctx) })
		wg.Go(func() { l.accept(ctx, ln, &wg) })
	}
	stop := context.AfterFunc(ctx, s.closeListeners)
	defer stop()
	wg.Wait()
	return nil
}

// Close releases the listeners of a Server that is not being served; it
// does nothing once Serve has started, since ending Serve's ctx does that.
func (s *Server) Close() error {
	if s.use() {
		s.closeListeners()
	}
	return nil
}

// use claims the listeners for Serve or Close; only the first call gets
// them.
func (s *Server) use() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used {
		return false
	}
	s.used = true
	return true
}

func (s *Server) closeListeners() {
	for _, ln := range s.lns {
		ln.Close()
	}
}

// accept serves each connection to ln in its own goroutine, tracked by
// wg, until ln is closed. Other accept errors (such as running out of
// file descriptors) do not stop the lamp: like net/http it backs off,
// 5 ms doubling to 1 s, and tries again.
func (l *lamp) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			if !sleep(ctx, delay) {
				return
			}
			continue
		}
		delay = 0
		wg.Go(func() {
			remote := nc.RemoteAddr().String()
			l.log.Info().Str("remote", remote).Msg("peer connected")
			err := l.serve(ctx, nc, false)
			l.log.Info().Str("remote", remote).AnErr("reason", err).Msg("peer disconnected")
		})
	}
}
