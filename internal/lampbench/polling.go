package lampbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// change is one new brightness a polling lamp reported, and when the
// app saw it (or anything newer) by polling and by push.
type change struct {
	seq              int
	at               time.Time
	polled, pushedAt time.Time
}

// pollLamp is one lamp's changes in the current round.
type pollLamp struct {
	mu      sync.Mutex
	seq     int // last sent; its value is seq % 1024
	changes []*change
}

// latest returns the newest change whose value is v, or nil.
func (l *pollLamp) latestLocked(v int) *change {
	for i := len(l.changes) - 1; i >= 0; i-- {
		if l.changes[i].seq%1024 == v {
			return l.changes[i]
		}
	}
	return nil
}

// runPolling: lamps change brightness at random moments; one app polls
// GET /api/lamps/{id} every PollInterval, another is subscribed. A
// change's staleness is how long after the lamp sent it a poll first
// showed it or a newer value; its push latency how long until the
// subscriber got it.
func runPolling(ctx context.Context, e *env, s *Section) error {
	o := e.opts
	const prefix = "lbp-"
	f := newFleet(e.bridge, prefix, o.PollLamps, 200)
	w, err := e.connectFleet(ctx, f, prefix)
	if err != nil {
		return err
	}
	defer quiesce(f, w)
	lamps := make([]*pollLamp, o.PollLamps)
	for i := range lamps {
		lamps[i] = &pollLamp{}
	}
	app, err := newApp(ctx, e.mqtt, e.clientID("poll-push"))
	if err != nil {
		return err
	}
	defer disconnect(app)
	if err := subscribe(ctx, app, "lamp/+/brightness", func(_ paho.Client, m paho.Message) {
		now := time.Now()
		i, ok := indexOf(m.Topic(), 1, prefix)
		v, err := strconv.Atoi(string(m.Payload()))
		if m.Retained() || !ok || i < 0 || i >= len(lamps) || err != nil {
			return
		}
		l := lamps[i]
		l.mu.Lock()
		if c := l.latestLocked(v); c != nil && c.pushedAt.IsZero() {
			c.pushedAt = now
		}
		l.mu.Unlock()
	}); err != nil {
		return err
	}
	for i := range lamps {
		// The first value is not a change; it gives every poll a value.
		if err := f.write(i, appendFrame(nil, 0)); err != nil {
			return err
		}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.PollLamps}}
	defer client.CloseIdleConnections()

	for round := range o.Rounds {
		e.log.Info().Str("scenario", Polling).Int("round", round+1).Msg("round")
		for _, l := range lamps {
			l.mu.Lock()
			l.changes = nil
			l.mu.Unlock()
		}
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(lamps))
		for i, l := range lamps {
			wg.Go(func() {
				if err := changeLamp(rctx, f, i, l, o.PollInterval, o.PollDuration); err != nil {
					errs <- err
				}
			})
			wg.Go(func() {
				if err := pollLampLoop(rctx, client, e.http, f.ids[i], l, o.PollInterval, o.PollDuration+2*o.PollInterval); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		cancel()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		var polled, pushed samples
		total, missedPoll, missedPush := 0, 0, 0
		for _, l := range lamps {
			l.mu.Lock()
			for _, c := range l.changes {
				total++
				if c.polled.IsZero() {
					missedPoll++
				} else {
					polled.add(c.polled.Sub(c.at))
				}
				if c.pushedAt.IsZero() {
					missedPush++
				} else {
					pushed.add(c.pushedAt.Sub(c.at))
				}
			}
			l.mu.Unlock()
		}
		p, q := polled.take(), pushed.take()
		s.addDur("poll staleness p50", percentile(p, .5))
		s.addDur("poll staleness p99", percentile(p, .99))
		s.addDur("push latency p50", percentile(q, .5))
		s.addDur("push latency p99", percentile(q, .99))
		s.add("changes", "changes", float64(total))
		s.add("changes never polled", "changes", float64(missedPoll))
		s.add("changes never pushed", "changes", float64(missedPush))
	}
	return nil
}

// changeLamp reports a new brightness for lamp i at random moments,
// 0.5 to 1.5 intervals apart, for d.
func changeLamp(ctx context.Context, f *fleet, i int, l *pollLamp, interval, d time.Duration) error {
	end := time.Now().Add(d)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		gap := interval/2 + rand.N(interval)
		if time.Now().Add(gap).After(end) {
			return nil
		}
		t.Reset(gap)
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
		l.mu.Lock()
		l.seq++
		c := &change{seq: l.seq, at: time.Now()}
		l.changes = append(l.changes, c)
		l.mu.Unlock()
		if err := f.write(i, appendFrame(nil, c.seq%1024)); err != nil {
			return err
		}
	}
}

// pollLampLoop polls id every interval for d, starting at a random
// phase, and marks every change up to the value it shows as seen.
func pollLampLoop(ctx context.Context, client *http.Client, addr, id string, l *pollLamp, interval, d time.Duration) error {
	t := time.NewTimer(rand.N(interval))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return nil
	}
	url := "http://" + addr + "/api/lamps/" + id
	_, _, err := pace(ctx, 1/interval.Seconds(), -1, d, func(int) error {
		v, err := getBrightness(ctx, client, url)
		if err != nil {
			return err
		}
		now := time.Now()
		l.mu.Lock()
		defer l.mu.Unlock()
		if seen := l.latestLocked(v); seen != nil {
			for _, c := range l.changes {
				if c.seq <= seen.seq && c.polled.IsZero() {
					c.polled = now
				}
			}
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func getBrightness(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var lamp struct {
		Reported struct {
			Brightness *int `json:"brightness"`
		} `json:"reported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&lamp); err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	if lamp.Reported.Brightness == nil {
		return -1, nil
	}
	return *lamp.Reported.Brightness, nil
}
