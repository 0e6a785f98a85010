package lampbench

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// received is a command line a lamp read, and when.
type received struct {
	line string
	at   time.Time
}

// readLines reads lamp i's socket until it closes, sending each line
// with its arrival time on ch (dropped if nobody keeps up).
func readLines(f *fleet, i int, ch chan<- received) {
	r := bufio.NewReader(f.conns[i])
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		select {
		case ch <- received{strings.TrimSpace(line), time.Now()}:
		default:
		}
	}
}

// runCommand: an app publishes lamp/<id>/brightness/set, one command at
// a time, and the lamp times the bytes on its socket.
func runCommand(ctx context.Context, e *env, s *Section) error {
	o := e.opts
	const prefix = "lbc-"
	f := newFleet(e.bridge, prefix, o.CommandLamps, 200)
	w, err := e.connectFleet(ctx, f, prefix)
	if err != nil {
		return err
	}
	chs := make([]chan received, len(f.ids))
	var readers sync.WaitGroup
	for i := range chs {
		chs[i] = make(chan received, 16)
		readers.Go(func() { readLines(f, i, chs[i]) })
	}
	// Closing the sockets ends the readers.
	defer readers.Wait()
	defer quiesce(f, w)
	app, err := newApp(ctx, e.mqtt, e.clientID("cmd-app"))
	if err != nil {
		return err
	}
	defer disconnect(app)
	topics := make([]string, len(f.ids))
	for i, id := range f.ids {
		topics[i] = "lamp/" + id + "/brightness/set"
	}
	next := make([]int, len(f.ids))
	const maxLost = 10
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for round := range o.Rounds {
		e.log.Info().Str("scenario", Command).Int("round", round+1).Msg("round")
		var lat samples
		lost := 0
		for k := range o.CommandCount {
			i := k % len(f.ids)
			// A new value each time: the bridge writes a command equal
			// to what it is still waiting to see confirmed as is, but
			// a new one is never in doubt.
			v := next[i]
			next[i] = (v + 1) % 1024
			want := "brightness=" + strconv.Itoa(v)
			start := time.Now()
			app.Publish(topics[i], 0, false, strconv.Itoa(v))
			timer.Reset(2 * time.Second)
		wait:
			for {
				select {
				case r := <-chs[i]:
					if r.line == want {
						lat.add(r.at.Sub(start))
						break wait
					}
				case <-timer.C:
					if lost++; lost >= maxLost {
						return fmt.Errorf("%w: %d commands reached no lamp within 2 s", errLoss, lost)
					}
					break wait
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			timer.Stop() // Go 1.23+: no stale tick survives Stop
		}
		d := lat.take()
		s.addDur("app /set to lamp socket p50", percentile(d, .5))
		s.addDur("app /set to lamp socket p99", percentile(d, .99))
		s.add("commands lost", "cmds", float64(lost))
	}
	return nil
}
