package bridge

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/topics"
)

// Changes is what SetDevices did, by device id.
type Changes struct {
	// Added devices are new in the file. Each is declared to the registry
	// and, if not connected, announced "offline"; a dialed one is dialed.
	Added []string
	// Removed devices were disconnected and forgotten, and every retained
	// topic the gateway published for them was cleared.
	Removed []string
	// Changed devices had a setting other than their name changed; their
	// connection was closed so the new settings apply from its first frame
	// (a dialed lamp is dialed again, other lamps reconnect by themselves).
	Changed []string
}

// SetDevices makes f the devices file in force (nil: no file): dialed
// lamps are dialed and kept connected, matched lamps are identified by
// address, and each device's brightness_max applies to its reports and
// commands. On a reload, devices whose settings did not change keep their
// connections. SetDevices after Shutdown does nothing.
func (s *Server) SetDevices(f *devices.File) Changes {
	s.devMu.Lock()
	defer s.devMu.Unlock()
	var ch Changes
	if s.isClosed() {
		return ch
	}
	old := s.devs.Swap(f)
	prefix := s.opts.Prefix
	if old != nil {
		for _, c := range old.Devices {
			n, ok := f.Lookup(c.ID)
			switch {
			case !ok:
				ch.Removed = append(ch.Removed, c.ID)
				h, _ := s.opts.Registry.Remove(c.ID, func(keys []string) {
					for _, k := range keys {
						s.publish(topics.Value(prefix, c.ID, k), nil, true)
					}
					s.publish(topics.State(prefix, c.ID), nil, true)
					s.publish(topics.Availability(prefix, c.ID), nil, true)
				})
				// Before stopping the dialer, whose connection would
				// otherwise end with the less telling ErrServerClosed.
				s.disconnect(h, ErrDeviceRemoved)
				s.stopDialer(c.ID)
			case !c.SameConnection(n):
				ch.Changed = append(ch.Changed, c.ID)
				s.disconnect(s.opts.Registry.Holder(c.ID), ErrDeviceChanged)
				s.stopDialer(c.ID)
				s.startDialer(n)
			}
		}
	}
	if f == nil {
		return ch
	}
	for _, c := range f.Devices {
		if _, ok := old.Lookup(c.ID); ok {
			continue
		}
		ch.Added = append(ch.Added, c.ID)
		id := c.ID
		announce := func() {
			s.publish(topics.Availability(prefix, id), []byte(topics.Offline), true)
		}
		if s.opts.Custody != nil {
			// Another bridge of the cluster may hold it: its availability
			// is the holder's to say.
			announce = func() {}
		}
		if err := s.opts.Registry.Declare(id, announce); err != nil {
			s.log.Warn().Err(err).Str("device", id).Msg("device not declared")
		}
		s.startDialer(c)
	}
	return ch
}

// disconnect closes h's connection for reason, if h is one of ours.
func (s *Server) disconnect(h devices.Holder, reason error) {
	if sess, ok := h.(*session); ok {
		sess.fail(reason)
	}
}

// config returns id's entry in the devices file.
func (s *Server) config(id string) (devices.Config, bool) {
	return s.devs.Load().Lookup(id)
}

// schema is the value schema of id: its file entry's, else the default.
func (s *Server) schema(id string) devices.Schema {
	if c, ok := s.config(id); ok && c.BrightnessMax != 0 {
		return c.Schema()
	}
	return s.opts.Schema
}

// matched returns the file entry that identifies a connection from addr.
// matchedConfig is matched as a pointer, nil if none matches: a
// devices.Config on ServeConn's stack would stay there for the life of
// the connection (see serve), so it is not inlined there either.
//
//go:noinline
func (s *Server) matchedConfig(addr net.Addr) *devices.Config {
	c, ok := s.matched(addr)
	if !ok {
		return nil
	}
	return &c
}

func (s *Server) matched(addr net.Addr) (devices.Config, bool) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return devices.Config{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return devices.Config{}, false
	}
	return s.devs.Load().MatchAddr(ip)
}

// dialer keeps one lamp that waits for the gateway connected.
type dialer struct {
	cfg    devices.Config
	cancel context.CancelFunc
}

func (s *Server) startDialer(c devices.Config) {
	if c.Dial == "" {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	s.dialers[c.ID] = &dialer{cfg: c, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.dial(ctx, c)
	}()
}

func (s *Server) stopDialer(id string) {
	if d := s.dialers[id]; d != nil {
		d.cancel()
		delete(s.dialers, id)
	}
}

// dial connects to c.Dial and serves the lamp until ctx ends, dialing
// again after every failure or hang-up. Waits grow from RedialMin,
// doubling to RedialMax, each with jitter so that a fleet that lost power
// together does not reconnect in lockstep; a connection that lasted
// RedialMax or longer starts the waits over.
func (s *Server) dial(ctx context.Context, c devices.Config) {
	log := s.log.With().Str("device", c.ID).Str("dial", c.Dial).Logger()
	d := net.Dialer{Timeout: s.opts.DialTimeout, KeepAliveConfig: s.keepAlive()}
	wait := s.opts.RedialMin
	for {
		start := time.Now()
		conn, err := d.DialContext(ctx, "tcp", c.Dial)
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err == nil {
			s.serve(ctx, conn, &c)
			if time.Since(start) >= s.opts.RedialMax {
				wait = s.opts.RedialMin
			}
		} else {
			log.Warn().Err(err).Dur("retry_in", wait).Msg("dial failed")
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, s.opts.RedialMax)
	}
}

// jitter returns a wait between d/2 and d ("equal jitter").
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// keepAlive is the TCP keepalive of every lamp socket: a lamp that lost
// power sends no FIN, and only probes find it.
func (s *Server) keepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: s.opts.KeepAlive, Interval: s.opts.KeepAlive / 3, Count: 3}
}

// setKeepAlive applies keepAlive to conn if it is TCP, or TLS over TCP.
func (s *Server) setKeepAlive(conn net.Conn) {
	if w, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = w.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(s.keepAlive())
	}
}
