package lampbench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// availWatch follows lamp/<prefix><i>/availability for lamps 0..n-1 and
// wakes a waiter once every one of them said "online" after the last
// reset and has not said "offline" since.
type availWatch struct {
	prefix string
	cs     []paho.Client

	mu     sync.Mutex
	ok     []bool
	count  int
	done   chan struct{}
	doneAt time.Time
}

// availPerClient is how many lamps one watching client follows. The
// broker drops messages for a client whose queue (1,024) is full, and a
// fleet reconnecting at once sends two messages per lamp within a
// second: each client subscribes to its lamps' exact topics, so no burst
// can overflow it.
const availPerClient = 200

// watchAvailability subscribes new clients at addr. Retained messages
// (a previous run's last word) are ignored: only what happens from now on
// counts.
func watchAvailability(ctx context.Context, addr, clientID, prefix string, n int) (*availWatch, error) {
	w := &availWatch{prefix: prefix, ok: make([]bool, n), done: make(chan struct{})}
	for first := 0; first < n; first += availPerClient {
		c, err := newApp(ctx, addr, clientID+strconv.Itoa(first/availPerClient))
		if err != nil {
			w.close()
			return nil, err
		}
		w.cs = append(w.cs, c)
		filters := make(map[string]byte)
		for i := first; i < min(n, first+availPerClient); i++ {
			filters["lamp/"+prefix+strconv.Itoa(i)+"/availability"] = 0
		}
		err = waitToken(ctx, c.SubscribeMultiple(filters, w.handle))
		if err == nil {
			err = barrier(ctx, c)
		}
		if err != nil {
			w.close()
			return nil, fmt.Errorf("subscribe availability: %w", err)
		}
	}
	return w, nil
}

func (w *availWatch) handle(_ paho.Client, m paho.Message) {
	if m.Retained() {
		return
	}
	i, ok := indexOf(m.Topic(), 1, w.prefix)
	if !ok || i < 0 || i >= len(w.ok) {
		return
	}
	online := string(m.Payload()) == "online"
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case online && !w.ok[i]:
		w.ok[i] = true
		w.count++
		if w.count == len(w.ok) && w.doneAt.IsZero() {
			w.doneAt = time.Now()
			close(w.done)
		}
	case !online && w.ok[i]:
		w.ok[i] = false
		w.count--
	}
}

// reset starts a new generation: every lamp must say online again.
func (w *availWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.ok)
	w.count = 0
	w.done = make(chan struct{})
	w.doneAt = time.Time{}
}

// wait returns when every lamp was seen online, or an error after
// timeout.
func (w *availWatch) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	w.mu.Lock()
	done := w.done
	w.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.doneAt, nil
	case <-t.C:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Time{}, fmt.Errorf("%d of %d lamps online after %v", w.count, len(w.ok), timeout)
}

func (w *availWatch) close() { disconnect(w.cs...) }

// waitOffline returns once no lamp is online, or after timeout.
func (w *availWatch) waitOffline(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		n := w.count
		w.mu.Unlock()
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d lamps still online after %v", n, timeout)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// quiesce drops f and waits until the gateway has published every
// lamp's offline, so that the next scenario starts on a quiet gateway:
// its figures are its own, and its subscriptions do not meet a burst of
// retained publishes (mochi-mqtt v2.7.9 reads a topic's retained path
// without the lock its writer holds, which -race reports).
func quiesce(f *fleet, w *availWatch) {
	f.drop()
	w.waitOffline(context.Background(), 10*time.Second)
	w.close()
}

// connectFleet dials f and waits until its lamps are online.
func (e *env) connectFleet(ctx context.Context, f *fleet, prefix string) (*availWatch, error) {
	w, err := watchAvailability(ctx, e.mqtt, e.clientID(prefix+"avail"), prefix, len(f.ids))
	if err != nil {
		return nil, err
	}
	if err := f.dial(ctx, 64); err != nil {
		w.close()
		return nil, err
	}
	// Identification is paced (--lamp-admit-rate).
	if _, err := w.wait(ctx, 30*time.Second+time.Duration(len(f.ids))*time.Millisecond); err != nil {
		w.close()
		f.close()
		return nil, err
	}
	return w, nil
}
