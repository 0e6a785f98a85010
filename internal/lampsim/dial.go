package lampsim

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds one connection attempt; a gateway that does not
// answer within it is treated like one that refused.
const dialTimeout = 5 * time.Second

// Dial runs opts.Count lamps that connect to the gateway's lamp port at
// addr, each sending "HELLO <id>" first and reconnecting with backoff
// whenever the connection ends or cannot be made, until ctx ends. It
// then returns nil once every connection is closed and every goroutine
// has ended. Invalid options give an error wrapping ErrInvalidOptions at
// once.
func Dial(ctx context.Context, addr string, opts Options) error {
	if err := opts.ensureDefaults(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for n := 1; n <= opts.Count; n++ {
		l := newLamp(&opts, n)
		wg.Go(func() { l.run(ctx) })
		wg.Go(func() { l.dial(ctx, addr) })
	}
	wg.Wait()
	return nil
}

// dial keeps the lamp connected to addr until ctx ends. The delay between
// attempts starts at Backoff, doubles after each failure up to MaxBackoff,
// and starts again after a connection that worked. Each delay is jittered
// (half to all of it) so that lamps cut off together do not all come back
// in the same millisecond; the jitter uses the global source, not the
// lamp's stream, so network timing never changes the lamp's noise.
func (l *lamp) dial(ctx context.Context, addr string) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 15 * time.Second}
	delay := l.opts.Backoff
	failures := 0
	for {
		nc, err := d.DialContext(ctx, "tcp", addr)
		if ctx.Err() != nil {
			if nc != nil {
				nc.Close()
			}
			return
		}
		if err == nil {
			failures = 0
			delay = l.opts.Backoff
			l.log.Info().Str("gateway", addr).Msg("connected")
			err = l.serve(ctx, nc, true)
			if ctx.Err() != nil {
				return
			}
			l.log.Info().Str("gateway", addr).AnErr("reason", err).Msg("disconnected")
		} else {
			// The first failure in a row is news; the rest, while the
			// gateway stays away, are not.
			failures++
			ev := l.log.Debug()
			if failures == 1 {
				ev = l.log.Warn()
			}
			ev.Err(err).Str("gateway", addr).Int("failures", failures).Msg("connect failed")
		}
		if !sleep(ctx, delay/2+rand.N(delay/2+1)) {
			return
		}
		delay = min(2*delay, l.opts.MaxBackoff)
	}
}

// sleep waits for d or until ctx ends, whichever comes first, and reports
// whether it was d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
