package bridge

import (
	"time"

	"github.com/lampgw/lampgw/topics"
)

// DefaultStateInterval is Options.StateInterval's zero value.
const DefaultStateInterval = 100 * time.Millisecond

// pendingState is a lamp's state JSON held back by the state interval,
// and the timer that publishes it.
type pendingState struct {
	b     []byte
	timer *time.Timer
}

// publishState publishes a lamp's whole state on lamp/<id>/state, at most
// once per Options.StateInterval: a change after a quiet spell goes out
// at once, changes within the interval are held and the latest of them
// goes out when it ends. Each report's values go out at once on their own
// topics regardless. A chatty lamp (a dragged slider, a noisy sensor)
// thus costs the broker one state publish per interval, not one per
// frame: the state is a second retained publish of every report, and on
// a small box it competes with the first for the CPU.
func (c *session) publishState(state []byte) {
	s := c.srv
	iv := s.opts.StateInterval
	if iv < 0 {
		s.publish(topics.State(s.opts.Prefix, c.id), state, true)
		return
	}
	now := time.Now()
	c.stateMu.Lock()
	if c.stateNext == nil && now.Sub(c.stateAt) >= iv {
		c.stateAt = now
		c.stateMu.Unlock()
		s.publish(topics.State(s.opts.Prefix, c.id), state, true)
		return
	}
	if c.stateNext == nil {
		c.stateNext = &pendingState{}
		c.stateNext.timer = time.AfterFunc(iv-now.Sub(c.stateAt), c.flushState)
	}
	// state is the registry's, built for this call; keep a copy.
	c.stateNext.b = append(c.stateNext.b[:0], state...)
	c.stateMu.Unlock()
}

// flushState publishes the held state: the interval ended, or the
// connection did (see endState).
func (c *session) flushState() {
	c.stateMu.Lock()
	p := c.stateNext
	c.stateNext = nil
	c.stateAt = time.Now()
	c.stateMu.Unlock()
	if p != nil && len(p.b) > 0 {
		s := c.srv
		s.publish(topics.State(s.opts.Prefix, c.id), p.b, true)
	}
}

// endState settles a held state when the connection ends: it goes out
// now, so the lamp's last state is kept, unless another connection speaks
// for the lamp now (take-over, another bridge), whose reports are newer.
func (c *session) endState(superseded bool) {
	c.stateMu.Lock()
	p := c.stateNext
	if p != nil {
		p.timer.Stop()
	}
	if superseded {
		c.stateNext = nil
	}
	c.stateMu.Unlock()
	if p != nil && !superseded {
		c.flushState()
	}
}
