package bridge

import (
	"crypto/subtle"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/lampgw/lampgw/devices"
)

// Stats counts what the server's limits did, for logs and metrics. Each
// counter only grows, except Connections.
type Stats struct {
	// Connections is the number of lamp connections open now.
	Connections int
	// RefusedTotal counts connections refused because MaxConns were open.
	RefusedTotal uint64
	// RefusedPerAddr counts connections refused because their address had
	// MaxConnsPerAddr open.
	RefusedPerAddr uint64
	// HandshakeTimeouts counts connections closed for not identifying
	// within HandshakeTimeout.
	HandshakeTimeouts uint64
	// IdleTimeouts counts lamps closed for silence longer than IdleTimeout.
	IdleTimeouts uint64
	// RateLimited counts frames held back by the per-connection frame rate.
	RateLimited uint64
	// AuthFailures counts refused identifications: a wrong or missing
	// token, an unknown id under RequireKnownDevices, a take-over without
	// the holder's token, and attempts refused for too many of those.
	AuthFailures uint64
	// BadFrames counts frames answered with ERR.
	BadFrames uint64
	// SlowLamps counts lamps dropped because their write queue was full.
	SlowLamps uint64
	// FramesOK counts frames from lamps used whole; FramesPartial those
	// with some keys refused (answered with ERR, the rest published).
	FramesOK, FramesPartial uint64
	// CommandFrames and ErrorLines count what was written to lamps.
	CommandFrames, ErrorLines uint64
	// CommandsRejected counts app commands refused as invalid (the
	// registry counts every other outcome).
	CommandsRejected uint64
	// Disconnects counts ended lamp connections by why they ended.
	Disconnects map[string]uint64
}

// Disconnect reasons, the keys of Stats.Disconnects.
const (
	EndHangUp      = "hang_up"      // the lamp closed, or its socket failed
	EndTakenOver   = "taken_over"   // another connection identified as it
	EndShutdown    = "shutdown"     // the server shut down
	EndDevices     = "devices_file" // removed or changed in the devices file
	EndSlow        = "slow"         // its write queue was full
	EndBadFrames   = "bad_frames"   // too many bad frames in a row
	EndHandshake   = "handshake"    // not identified in time, or TLS failed
	EndIdle        = "idle"         // silent past IdleTimeout
	EndRefused     = "refused"      // identification refused
	EndWriteFailed = "write_failed" // a write failed or timed out
	EndOther       = "other"
)

var endReasons = []string{EndHangUp, EndTakenOver, EndShutdown, EndDevices, EndSlow, EndBadFrames,
	EndHandshake, EndIdle, EndRefused, EndWriteFailed, EndOther}

type stats struct {
	refusedTotal, refusedPerAddr, handshakeTimeouts, idleTimeouts,
	rateLimited, authFailures, badFrames, slowLamps atomic.Uint64
	framesOK, framesPartial, commandFrames, errorLines atomic.Uint64
	commandsRejected                                   atomic.Uint64
	ends                                               [11]atomic.Uint64 // by index in endReasons
}

// ended counts a disconnect for reason, one of the End constants.
func (s *stats) ended(reason string) {
	for i, r := range endReasons {
		if r == reason {
			s.ends[i].Add(1)
			return
		}
	}
	s.ends[len(endReasons)-1].Add(1)
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	return Stats{
		Connections:       n,
		RefusedTotal:      s.stats.refusedTotal.Load(),
		RefusedPerAddr:    s.stats.refusedPerAddr.Load(),
		HandshakeTimeouts: s.stats.handshakeTimeouts.Load(),
		IdleTimeouts:      s.stats.idleTimeouts.Load(),
		RateLimited:       s.stats.rateLimited.Load(),
		AuthFailures:      s.stats.authFailures.Load(),
		BadFrames:         s.stats.badFrames.Load(),
		SlowLamps:         s.stats.slowLamps.Load(),
		FramesOK:          s.stats.framesOK.Load(),
		FramesPartial:     s.stats.framesPartial.Load(),
		CommandFrames:     s.stats.commandFrames.Load(),
		ErrorLines:        s.stats.errorLines.Load(),
		CommandsRejected:  s.stats.commandsRejected.Load(),
		Disconnects:       s.disconnects(),
	}
}

func (s *Server) disconnects() map[string]uint64 {
	m := make(map[string]uint64, len(endReasons))
	for i, r := range endReasons {
		m[r] = s.stats.ends[i].Load()
	}
	return m
}

// Failed identifications are rate limited per remote address: failBurst
// at once, then one per failEvery. Enough for a lamp with a typo to show
// up in the log, too slow to guess a token.
const (
	failBurst = 5
	failEvery = 12 * time.Second
	// maxFailAddrs bounds the failure table; when full, an arbitrary
	// entry is forgotten, which at worst gives that address a fresh burst.
	maxFailAddrs = 4096
)

// remoteIP is conn's remote IP, if it has one (net.Pipe has none).
func remoteIP(conn net.Conn) (netip.Addr, bool) {
	ta, ok := conn.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), ok
}

// failures returns addr's failure limiter, creating it if needed.
func (s *Server) failures(addr netip.Addr) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.failed[addr]
	if l == nil {
		if len(s.failed) >= maxFailAddrs {
			for a := range s.failed {
				delete(s.failed, a)
				break
			}
		}
		l = rate.NewLimiter(rate.Every(failEvery), failBurst)
		s.failed[addr] = l
	}
	return l
}

// admitHello checks a HELLO (or JSON id) for id with token, before the
// connection is attached; it runs under the device's lock with the lamp's
// current connection, so that checking and taking over are one step. The
// rules, in order:
//
//   - Under RequireKnownDevices, an id not in the devices file is refused.
//   - A file entry with a token admits only that token.
//   - A file entry with dial or match and no token admits no HELLO: that
//     lamp is known by its address.
//   - Otherwise a lamp that is connected may be taken over only by a
//     connection that presents the same token (or none, if it gave none):
//     trust on first use, so nobody can kick a lamp off by its id alone.
func (c *session) admitHello(id, token string) func(prev devices.Holder) error {
	s := c.srv
	cfg, known := s.config(id)
	return func(prev devices.Holder) error {
		switch {
		case !known && s.opts.RequireKnownDevices:
			return ErrUnknownDevice
		case known && cfg.HasToken():
			if !cfg.CheckToken(token) {
				return ErrNotAuthorized
			}
		case known && (cfg.Dial != "" || cfg.Match.IsValid()):
			return ErrNotAuthorized
		default:
			if p, ok := prev.(*session); ok && p != c {
				if p.preset || subtle.ConstantTimeCompare(p.tokenHash[:], c.tokenHash[:]) != 1 {
					return ErrNotAuthorized
				}
			}
		}
		return nil
	}
}

// limitFrames waits, if the lamp sends faster than FrameRate, until its
// next frame is due; the lamp's further frames wait in the kernel, so
// TCP slows the lamp down and nothing is lost. It returns false if the
// connection closed meanwhile.
func (c *session) limitFrames() bool {
	if c.limiter == nil {
		return true
	}
	d := c.limiter.Reserve().Delay()
	if d <= 0 {
		return true
	}
	c.srv.stats.rateLimited.Add(1)
	c.srv.warn.Warn().Str("remote", c.conn.RemoteAddr().String()).Str("device", c.id).
		Msg("lamp over its frame rate; reading slower")
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// waitAdmit waits for the lamp's turn to identify (Options.AdmitRate),
// but not past the connection's end; it returns false if the connection
// ended first, giving the turn back. It is rate.Limiter.Wait with the
// session's done channel for a context, which no idle lamp then has to
// hold.
func (c *session) waitAdmit() bool {
	r := c.srv.admit.Reserve()
	d := r.Delay()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		r.Cancel()
		return false
	}
}
