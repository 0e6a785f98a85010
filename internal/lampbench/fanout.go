package lampbench

import (
	"context"
	"strconv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// runFanout: one lamp reports to FanoutApps apps subscribed to
// lamp/+/brightness. The lamp sends in windows of FanoutWindow frames
// and sends the next window once every app has every frame so far, so
// no queue overflows and the figure is what the broker delivers, not
// what it drops.
func runFanout(ctx context.Context, e *env, s *Section) error {
	o := e.opts
	const prefix = "lbf-"
	f := newFleet(e.bridge, prefix, 1, 200)
	w, err := e.connectFleet(ctx, f, prefix)
	if err != nil {
		return err
	}
	defer quiesce(f, w)
	got := newProgress()
	h := func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			return
		}
		if _, ok := indexOf(m.Topic(), 1, prefix); ok {
			got.add(1)
		}
	}
	apps := make([]paho.Client, 0, o.FanoutApps)
	defer func() { disconnect(apps...) }()
	for i := range o.FanoutApps {
		c, err := newApp(ctx, e.mqtt, e.clientID("fan-app"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		apps = append(apps, c)
		if err := subscribe(ctx, c, "lamp/+/brightness", h); err != nil {
			return err
		}
	}
	v := 0
	var buf []byte
	for round := range o.Rounds {
		e.log.Info().Str("scenario", Fanout).Int("round", round+1).Msg("round")
		base := got.load()
		start := time.Now()
		sent := 0
		lost := int64(0)
		for sent < o.FanoutFrames {
			n := min(o.FanoutWindow, o.FanoutFrames-sent)
			buf = buf[:0]
			for range n {
				buf = appendFrame(buf, v)
				v = (v + 1) % 1024
			}
			if err := f.write(0, buf); err != nil {
				return err
			}
			sent += n
			want := base + int64(sent*o.FanoutApps)
			if !got.wait(ctx, want, 2*time.Second) {
				if err := ctx.Err(); err != nil {
					return err
				}
				lost = want - got.load()
				break
			}
		}
		took := time.Since(start)
		delivered := got.load() - base
		s.add("deliveries/s", "msgs/s", float64(delivered)/took.Seconds())
		s.add("deliveries lost", "msgs", float64(lost))
	}
	return nil
}
