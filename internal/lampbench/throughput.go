package lampbench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// tpSenders is how many goroutines offer a throughput step's load, each
// pacing its share over its own lamps.
const tpSenders = 4

// tpPath is one way to carry n sources' messages to one counting
// subscriber.
type tpPath struct {
	n    int
	send func(i, v int, buf []byte) ([]byte, error)
	got  *progress
	t0   time.Time
	// first and last are the times of a step's first and last
	// delivery, since t0; first is 0 until the step's first delivery.
	first, last atomic.Int64
	next        []int
}

func newTPPath(n int, send func(i, v int, buf []byte) ([]byte, error)) *tpPath {
	return &tpPath{n: n, send: send, got: newProgress(), t0: time.Now(), next: make([]int, n)}
}

func (p *tpPath) handler(level int, prefix string) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			return
		}
		if _, ok := indexOf(m.Topic(), level, prefix); ok {
			now := int64(time.Since(p.t0))
			p.first.CompareAndSwap(0, now)
			p.last.Store(now)
			p.got.add(1)
		}
	}
}

// stepResult is one offered rate's outcome.
type stepResult struct {
	rate        float64
	sent, got   int64
	in, out     float64 // frames/s sent, messages/s delivered
	passed      bool
	sendingTook time.Duration
}

// maxDrain is how long after the last send the last delivery may come
// for a step to count as kept up with even when the delivery rate,
// stretched by one late message, looks below the offered one.
const maxDrain = 100 * time.Millisecond

// step offers rate for d, waits for the stragglers (500 ms without one
// ends the wait) and judges: a step passes when every message arrived,
// the senders kept the rate (no TCP back-pressure held them up) and the
// deliveries kept it too (from the first delivery to the last, or the
// last within maxDrain of the last send: nothing piled up in buffers to
// arrive later).
func (p *tpPath) step(ctx context.Context, rate float64, d time.Duration) (stepResult, error) {
	base := p.got.load()
	p.first.Store(0)
	senders := min(tpSenders, p.n)
	var sent atomic.Int64
	var took atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			mine := (p.n - s + senders - 1) / senders
			var buf []byte
			k, dur, err := pace(ctx, rate/float64(senders), -1, d, func(k int) error {
				i := s + senders*(k%mine)
				v := p.next[i]
				p.next[i] = (v + 1) % 1024
				var err error
				buf, err = p.send(i, v, buf[:0])
				return err
			})
			sent.Add(int64(k))
			for {
				t := took.Load()
				if int64(dur) <= t || took.CompareAndSwap(t, int64(dur)) {
					break
				}
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	sendEnd := time.Since(p.t0)
	close(errs)
	if err := <-errs; err != nil {
		return stepResult{}, err
	}
	r := stepResult{rate: rate, sent: sent.Load(), sendingTook: time.Duration(took.Load())}
	p.got.wait(ctx, base+r.sent, 500*time.Millisecond)
	r.got = p.got.load() - base
	r.in = float64(r.sent) / r.sendingTook.Seconds()
	first, last := time.Duration(p.first.Load()), time.Duration(p.last.Load())
	if span := last - first; r.got > 1 && first > 0 && span > 0 {
		r.out = float64(r.got-1) / span.Seconds()
	}
	r.passed = r.got == r.sent && r.in >= 0.95*rate && (r.out >= 0.95*rate || last-sendEnd <= maxDrain)
	return r, ctx.Err()
}

// search finds the highest rate that passes: doubling from start until a
// step fails, then halving the interval between the best pass and the
// lowest failure until they are within 10 % (at most 16 steps, never
// above max). It returns the best passing step, or a zero one if even
// start/8 lost messages, and the first failing step above it.
func (p *tpPath) search(ctx context.Context, e *env, name string, start, max float64, d time.Duration) (best, fail stepResult, err error) {
	lo, hi, r := 0.0, 0.0, start
	for range 16 {
		res, err := p.step(ctx, r, d)
		if err != nil {
			return best, fail, err
		}
		e.log.Info().Str("scenario", Throughput).Str("path", name).Float64("rate", r).
			Int64("sent", res.sent).Int64("got", res.got).Float64("in", res.in).Float64("out", res.out).
			Bool("passed", res.passed).Msg("step")
		if res.passed {
			lo, best = r, res
			if r >= max {
				break
			}
			if hi == 0 {
				r = min(2*r, max)
			} else {
				r = (lo + hi) / 2
			}
		} else {
			hi, fail = r, res
			if lo == 0 {
				if r /= 2; r < start/8 {
					break
				}
			} else {
				r = (lo + hi) / 2
			}
		}
		if lo > 0 && hi > 0 && hi/lo < 1.1 {
			break
		}
	}
	return best, fail, nil
}

// runThroughput: the maximum report rate with zero loss, 1,000 lamps to
// one app, and the same for raw MQTT publishers through Mosquitto.
func runThroughput(ctx context.Context, e *env, s *Section) error {
	o := e.opts
	const prefix = "lbt-"
	f := newFleet(e.bridge, prefix, o.ThroughputLamps, 200)
	w, err := e.connectFleet(ctx, f, prefix)
	if err != nil {
		return err
	}
	defer quiesce(f, w)
	gw := newTPPath(o.ThroughputLamps, func(i, v int, buf []byte) ([]byte, error) {
		buf = appendFrame(buf, v)
		return buf, f.write(i, buf)
	})
	app, err := newApp(ctx, e.mqtt, e.clientID("tp-app"))
	if err != nil {
		return err
	}
	defer disconnect(app)
	if err := subscribe(ctx, app, "lamp/+/brightness", gw.handler(1, prefix)); err != nil {
		return err
	}

	var mq *tpPath
	if e.mosquitto != nil {
		root := "lampbench/" + e.tag + "/tp/"
		pubs := make([]*rawPublisher, o.ThroughputLamps)
		defer func() {
			for _, p := range pubs {
				if p != nil {
					p.c.Close()
				}
			}
		}()
		for i := range pubs {
			if pubs[i], err = dialRawPublisher(ctx, e.mosquitto.Addr, e.clientID("tp-pub"+strconv.Itoa(i))); err != nil {
				return fmt.Errorf("mosquitto publisher: %w", err)
			}
		}
		topics := make([]string, len(pubs))
		for i := range topics {
			topics[i] = root + "d" + strconv.Itoa(i)
		}
		mq = newTPPath(o.ThroughputLamps, func(i, v int, buf []byte) ([]byte, error) {
			buf = appendPublish(buf, topics[i], strconv.AppendInt(nil, int64(v), 10))
			c := pubs[i].c
			c.SetWriteDeadline(time.Now().Add(connectTimeout))
			_, err := c.Write(buf)
			return buf, err
		})
		sub, err := newApp(ctx, e.mosquitto.Addr, e.clientID("tp-sub"))
		if err != nil {
			return err
		}
		defer disconnect(sub)
		if err := subscribe(ctx, sub, root+"+", mq.handler(3, "d")); err != nil {
			return err
		}
	}
	for round := range o.Rounds {
		e.log.Info().Str("scenario", Throughput).Int("round", round+1).Msg("round")
		g, gfail, err := gw.search(ctx, e, "gateway", o.ThroughputStart, o.ThroughputMax, o.ThroughputStep)
		if err != nil {
			return fmt.Errorf("gateway path: %w", err)
		}
		s.add("gateway max rate, zero loss", "frames/s", g.rate)
		s.add("gateway frames/s in", "frames/s", g.in)
		s.add("gateway msgs/s out", "msgs/s", g.out)
		s.add("gateway lost in first failed step", "msgs", float64(gfail.sent-gfail.got))
		if mq == nil {
			continue
		}
		m, mfail, err := mq.search(ctx, e, "mosquitto", o.ThroughputStart, o.ThroughputMax, o.ThroughputStep)
		if err != nil {
			return fmt.Errorf("mosquitto path: %w", err)
		}
		s.add("mosquitto max rate, zero loss", "msgs/s", m.rate)
		s.add("mosquitto msgs/s in", "msgs/s", m.in)
		s.add("mosquitto msgs/s out", "msgs/s", m.out)
		s.add("mosquitto lost in first failed step", "msgs", float64(mfail.sent-mfail.got))
		s.ratio("ratio gateway/mosquitto", g.rate, m.rate)
	}
	return nil
}
