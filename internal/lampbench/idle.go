package lampbench

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// runIdle: IdleLamps idle lamps on a gateway in its own process, whose
// RSS is read from /proc; then IdleCycles power cuts (every socket reset
// at once, every lamp dialing again at once). The same lamps then
// connect to the baseline, a plain Go line server in its own process.
func runIdle(ctx context.Context, e *env, s *Section) error {
	o := e.opts
	n := o.IdleLamps
	onlineWithin := 30*time.Second + time.Duration(n)*time.Millisecond
	for round := range o.Rounds {
		e.log.Info().Str("scenario", Idle).Int("round", round+1).Msg("round")
		if err := idleGateway(ctx, e, s, onlineWithin); err != nil {
			return err
		}
		if e.opts.Spawn == nil {
			continue
		}
		if err := idleBaseline(ctx, e, s, onlineWithin); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	return nil
}

func idleGateway(ctx context.Context, e *env, s *Section, onlineWithin time.Duration) error {
	o := e.opts
	n := o.IdleLamps
	const prefix = "lbi-"
	mqtt, bridge, pid := e.mqtt, e.bridge, 0
	if t := o.Target; t != nil {
		pid = t.Pid
	} else {
		// Room for a whole second fleet: after a power cut the new
		// connections may arrive before the gateway has seen the old
		// ones end, and refusing them would measure the limit.
		c, err := e.startChild(ctx, ModeServe, "--max-lamps", strconv.Itoa(2*n+100),
			"--lamp-admit-rate", strconv.FormatFloat(o.LampAdmitRate, 'g', -1, 64))
		if err != nil {
			return err
		}
		defer c.close()
		mqtt, bridge, pid = c.addrs.MQTT, c.addrs.Bridge, c.cmd.Process.Pid
	}
	w, err := watchAvailability(ctx, mqtt, e.clientID("idle-avail"), prefix, n)
	if err != nil {
		return err
	}
	defer w.close()
	rss := func() (int64, error) {
		if pid == 0 {
			return 0, nil
		}
		return rssBytes(pid)
	}
	before, err := rss()
	if err != nil {
		return err
	}
	f := newFleet(bridge, prefix, n, o.IdlePerAddr)
	defer f.close()
	start := time.Now()
	if err := f.dial(ctx, 0); err != nil {
		return err
	}
	at, err := w.wait(ctx, onlineWithin)
	if err != nil {
		return fmt.Errorf("first connect: %w", err)
	}
	s.add("first connect: all online after", "ms", ms(at.Sub(start)))
	now, err := rss()
	if err != nil {
		return err
	}
	after, err := settledRSS(ctx, rss)
	if err != nil {
		return err
	}
	if pid != 0 {
		s.add("gateway RSS before lamps", "MB", float64(before)/(1<<20))
		s.add("gateway RSS per lamp, just online", "KB", float64(now-before)/float64(n)/1024)
		s.add("gateway RSS per lamp", "KB", float64(after-before)/float64(n)/1024)
		busy, err := idleCPU(ctx, pid)
		if err != nil {
			return err
		}
		s.add("gateway CPU with every lamp idle", "%", busy)
	}
	worst := time.Duration(0)
	last := after
	for cycle := range o.IdleCycles {
		w.reset()
		start := time.Now()
		f.drop()
		if err := f.dial(ctx, 0); err != nil {
			return fmt.Errorf("cycle %d: %w", cycle+1, err)
		}
		at, err := w.wait(ctx, onlineWithin)
		if err != nil {
			return fmt.Errorf("cycle %d: %w", cycle+1, err)
		}
		worst = max(worst, at.Sub(start))
	}
	if last, err = settledRSS(ctx, rss); err != nil {
		return err
	}
	if o.IdleCycles > 0 {
		s.add("reconnect: all online after", "ms", ms(worst))
		if pid != 0 {
			s.add("RSS growth after cycles", "%", 100*float64(last-after)/float64(after))
		}
	}
	return nil
}

func idleBaseline(ctx context.Context, e *env, s *Section, within time.Duration) error {
	o := e.opts
	c, err := e.startChild(ctx, ModeServeTCP)
	if err != nil {
		return err
	}
	defer c.close()
	before, err := rssBytes(c.cmd.Process.Pid)
	if err != nil {
		return err
	}
	f := newFleet(c.addrs.Bridge, "lbb-", o.IdleLamps, o.IdlePerAddr)
	defer f.close()
	if err := f.dial(ctx, 0); err != nil {
		return err
	}
	if err := c.waitConns(ctx, o.IdleLamps, within); err != nil {
		return err
	}
	after, err := rssBytes(c.cmd.Process.Pid)
	if err != nil {
		return err
	}
	s.add("baseline: plain Go server RSS per conn", "KB", float64(after-before)/float64(o.IdleLamps)/1024)
	return nil
}

// idleWindow is how long idleCPU watches an idle gateway.
const idleWindow = 5 * time.Second

// idleCPU is the CPU that process pid uses over idleWindow, in percent of
// one core: what a gateway does with no lamp saying anything (timers,
// the broker's own loop, the collector).
func idleCPU(ctx context.Context, pid int) (float64, error) {
	t0, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(idleWindow):
	}
	t1, err := cpuTime(pid)
	if err != nil {
		return 0, err
	}
	return 100 * float64(t1-t0) / float64(time.Since(start)), nil
}

// Settling: an idle gateway's RSS after a burst of connections falls for
// a while, as the Go runtime collects and returns to the kernel what the
// burst used (goroutine stacks grown while lamps identified, then halved
// at a collection; freed pages, scavenged in the background). "Per idle
// lamp" means after that: settledRSS waits until RSS has not fallen by
// more than settleSlack over settleQuiet, at most settleMax.
const (
	settleQuiet = 3 * time.Second
	settleMax   = 30 * time.Second
	settleSlack = 0.005
)

func settledRSS(ctx context.Context, rss func() (int64, error)) (int64, error) {
	deadline := time.Now().Add(settleMax)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	low, err := rss()
	if err != nil {
		return 0, err
	}
	lowAt := time.Now()
	for time.Since(lowAt) < settleQuiet && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		v, err := rss()
		if err != nil {
			return 0, err
		}
		if float64(v) < float64(low)*(1-settleSlack) {
			lowAt = time.Now()
		}
		low = min(low, v)
	}
	return low, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
