package lampbench

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// percentile returns the q-quantile (0..1) of sorted by the nearest-rank
// method; 0 for no samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// samples collects durations from several goroutines.
type samples struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *samples) add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// take returns the samples sorted and starts a new collection.
func (s *samples) take() []time.Duration {
	s.mu.Lock()
	d := s.d
	s.d = nil
	s.mu.Unlock()
	slices.Sort(d)
	return d
}

// progress is a counter that a waiter can wait on reaching a goal,
// without polling: the goroutine whose add reaches the goal wakes it.
type progress struct {
	n    atomic.Int64
	goal atomic.Int64 // 1<<62 when nobody waits
	mu   sync.Mutex
	wake chan struct{}
}

func newProgress() *progress {
	p := &progress{}
	p.goal.Store(1 << 62)
	return p
}

func (p *progress) add(d int64) {
	if p.n.Add(d) < p.goal.Load() {
		return
	}
	p.mu.Lock()
	if p.wake != nil && p.n.Load() >= p.goal.Load() {
		close(p.wake)
		p.wake = nil
		p.goal.Store(1 << 62)
	}
	p.mu.Unlock()
}

func (p *progress) load() int64 { return p.n.Load() }

// wait returns once the count reaches goal (true), or when it has not
// grown for quiet, or ctx ends (false). Each wait is bounded by quiet
// past the last growth and by ctx.
func (p *progress) wait(ctx context.Context, goal int64, quiet time.Duration) bool {
	for {
		// The goal is published before the count is read, so an add
		// that this read misses sees the goal and wakes us.
		p.mu.Lock()
		wake := make(chan struct{})
		p.wake = wake
		p.goal.Store(goal)
		seen := p.n.Load()
		if seen >= goal {
			p.wake = nil
			p.goal.Store(1 << 62)
			p.mu.Unlock()
			return true
		}
		p.mu.Unlock()
		t := time.NewTimer(quiet)
		select {
		case <-wake:
			t.Stop()
			return true
		case <-ctx.Done():
			t.Stop()
			p.cancel()
			return false
		case <-t.C:
		}
		p.cancel()
		if p.n.Load() == seen {
			return p.n.Load() >= goal
		}
	}
}

func (p *progress) cancel() {
	p.mu.Lock()
	p.wake = nil
	p.goal.Store(1 << 62)
	p.mu.Unlock()
}

// pace calls send(k) for k = 0, 1, ... at rate calls a second from the
// calling goroutine until n calls are made, d has passed since the start
// (if n < 0), send fails or ctx ends. When it falls behind it calls send
// back to back until it has caught up: the schedule, not the previous
// call, sets each call's time. It returns the calls made and how long
// they took.
func pace(ctx context.Context, rate float64, n int, d time.Duration, send func(k int) error) (int, time.Duration, error) {
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	k := 0
	for ; n < 0 || k < n; k++ {
		due := time.Duration(float64(k) / rate * float64(time.Second))
		if n < 0 && due >= d {
			break
		}
		if wait := due - time.Since(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return k, time.Since(start), ctx.Err()
			}
		} else if err := ctx.Err(); err != nil {
			return k, time.Since(start), err
		}
		if err := send(k); err != nil {
			return k, time.Since(start), err
		}
	}
	return k, time.Since(start), nil
}
