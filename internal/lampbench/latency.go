package lampbench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// tracker times frames whose payload is a value 0..1023 that cycles per
// source: the sender stores each frame's send time under (source, value)
// and the receiver takes it back. Times are monotonic, from t0, and never
// leave the process.
type tracker struct {
	t0   time.Time
	sent [][1024]atomic.Int64 // send time - t0 + 1; 0: none outstanding
	lat  samples
	got  *progress
	dups atomic.Int64
}

func newTracker(sources int) *tracker {
	return &tracker{t0: time.Now(), sent: make([][1024]atomic.Int64, sources), got: newProgress()}
}

func (t *tracker) mark(i, v int) { t.sent[i][v].Store(int64(time.Since(t.t0)) + 1) }

func (t *tracker) recv(i int, payload []byte) {
	now := time.Since(t.t0)
	v, err := strconv.Atoi(string(payload))
	if err != nil || i < 0 || i >= len(t.sent) || v < 0 || v > 1023 {
		return
	}
	s := t.sent[i][v].Swap(0)
	if s == 0 {
		t.dups.Add(1)
		return
	}
	t.lat.add(now - time.Duration(s-1))
	t.got.add(1)
}

// handler returns a paho handler for topics whose level holds
// prefix<i>.
func (t *tracker) handler(level int, prefix string) paho.MessageHandler {
	return func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			return
		}
		if i, ok := indexOf(m.Topic(), level, prefix); ok {
			t.recv(i, m.Payload())
		}
	}
}

// pathResult is one path's round.
type pathResult struct {
	sent, got int
	lat       []time.Duration
}

// measure sends at rate for d, frame k from source k%sources with that
// source's next value, then waits for the stragglers (1 s without one
// ends the wait) and returns what arrived.
func (t *tracker) measure(ctx context.Context, rate float64, d time.Duration, next []int, send func(i, v int) error) (pathResult, error) {
	base := t.got.load()
	t.lat.take()
	n, _, err := pace(ctx, rate, -1, d, func(k int) error {
		i := k % len(next)
		v := next[i]
		next[i] = (v + 1) % 1024
		t.mark(i, v)
		return send(i, v)
	})
	if err != nil {
		return pathResult{}, err
	}
	t.got.wait(ctx, base+int64(n), time.Second)
	lat := t.lat.take()
	return pathResult{sent: n, got: len(lat), lat: lat}, ctx.Err()
}

// record adds a path's figures to s under name.
func (r pathResult) record(s *Section, name string) {
	s.addDur(name+" p50", percentile(r.lat, 0.50))
	s.addDur(name+" p99", percentile(r.lat, 0.99))
	s.addDur(name+" p999", percentile(r.lat, 0.999))
	s.add(name+" lost", "msgs", float64(r.sent-r.got))
}

// directPath is paho publishers and a paho subscriber on one broker.
type directPath struct {
	pubs  []paho.Client
	sub   paho.Client
	topic []string
	tr    *tracker
	next  []int
}

func (e *env) newDirectPath(ctx context.Context, addr, name string, n int) (*directPath, error) {
	p := &directPath{tr: newTracker(n), next: make([]int, n)}
	root := "lampbench/" + e.tag + "/" + name + "/"
	var err error
	if p.sub, err = newApp(ctx, addr, e.clientID(name+"-sub")); err != nil {
		return nil, err
	}
	if err := subscribe(ctx, p.sub, root+"+", p.tr.handler(3, "d")); err != nil {
		p.close()
		return nil, err
	}
	for i := range n {
		c, err := newApp(ctx, addr, e.clientID(name+"-pub"+strconv.Itoa(i)))
		if err != nil {
			p.close()
			return nil, err
		}
		p.pubs = append(p.pubs, c)
		p.topic = append(p.topic, root+"d"+strconv.Itoa(i))
	}
	return p, nil
}

func (p *directPath) measure(ctx context.Context, rate float64, d time.Duration) (pathResult, error) {
	return p.tr.measure(ctx, rate, d, p.next, func(i, v int) error {
		// QoS 0: the token completes when paho has written it; waiting
		// would serialise the publishers, which lamps are not.
		p.pubs[i].Publish(p.topic[i], 0, false, strconv.Itoa(v))
		return nil
	})
}

func (p *directPath) close() {
	disconnect(p.pubs...)
	disconnect(p.sub)
}

// runLatency: lamps report at a fixed total rate and an app times each
// report's arrival; the same rate then goes through the direct path(s).
// The paths alternate within a round so that each round's ratio compares
// the same few seconds of a noisy machine.
func runLatency(ctx context.Context, e *env, s *Section) error {
	o := e.opts
	const prefix = "lbl-"
	f := newFleet(e.bridge, prefix, o.LatencyLamps, 200)
	w, err := e.connectFleet(ctx, f, prefix)
	if err != nil {
		return err
	}
	defer quiesce(f, w)
	gw := newTracker(o.LatencyLamps)
	app, err := newApp(ctx, e.mqtt, e.clientID("lat-app"))
	if err != nil {
		return err
	}
	defer disconnect(app)
	if err := subscribe(ctx, app, "lamp/+/brightness", gw.handler(1, prefix)); err != nil {
		return err
	}
	direct, err := e.newDirectPath(ctx, e.mqtt, "direct", o.LatencyLamps)
	if err != nil {
		return err
	}
	defer direct.close()
	var mosq *directPath
	if e.mosquitto != nil {
		if mosq, err = e.newDirectPath(ctx, e.mosquitto.Addr, "mosquitto", o.LatencyLamps); err != nil {
			return err
		}
		defer mosq.close()
	}
	next := make([]int, o.LatencyLamps)
	buf := make([][]byte, o.LatencyLamps)
	for round := range o.Rounds {
		e.log.Info().Str("scenario", Latency).Int("round", round+1).Msg("round")
		g, err := gw.measure(ctx, o.LatencyRate, o.LatencyDuration, next, func(i, v int) error {
			buf[i] = appendFrame(buf[i][:0], v)
			return f.write(i, buf[i])
		})
		if err != nil {
			return fmt.Errorf("gateway path: %w", err)
		}
		d, err := direct.measure(ctx, o.LatencyRate, o.LatencyDuration)
		if err != nil {
			return fmt.Errorf("direct path: %w", err)
		}
		g.record(s, "gateway")
		d.record(s, "direct")
		s.ratio("ratio p50 gateway/direct", float64(percentile(g.lat, .5)), float64(percentile(d.lat, .5)))
		s.ratio("ratio p99 gateway/direct", float64(percentile(g.lat, .99)), float64(percentile(d.lat, .99)))
		if mosq != nil {
			m, err := mosq.measure(ctx, o.LatencyRate, o.LatencyDuration)
			if err != nil {
				return fmt.Errorf("mosquitto path: %w", err)
			}
			m.record(s, "mosquitto")
			s.ratio("ratio p50 gateway/mosquitto", float64(percentile(g.lat, .5)), float64(percentile(m.lat, .5)))
			s.ratio("ratio p99 gateway/mosquitto", float64(percentile(g.lat, .99)), float64(percentile(m.lat, .99)))
		}
	}
	return nil
}
