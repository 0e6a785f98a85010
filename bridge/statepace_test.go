package bridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/bridge"
)

// TestStateInterval checks lamp/<id>/state under a burst of reports:
// every value goes out at once and in order, the state of the first
// report at once, the states within the interval are held, and only the
// latest goes out when it ends. When the lamp then disconnects, a state
// still held goes out before the offline.
func TestStateInterval(t *testing.T) {
	// Long, so the whole burst falls inside it even on a slow machine.
	e := newEnv(t, bridge.Options{StateInterval: 24 * time.Hour})
	l := e.dial(context.Background(), true)
	l.send(t, "HELLO burst\n")
	e.expect(t, online("burst"))

	for i := 1; i <= 5; i++ {
		l.send(t, fmt.Sprintf("brightness=%d\n", i))
	}
	e.expect(t, value("burst", "brightness", "1"), state("burst", `{"brightness":1}`))
	for i := 2; i <= 5; i++ {
		e.expect(t, value("burst", "brightness", fmt.Sprint(i)))
	}
	// Held, not published: the next publish is the flush at the end.
	l.conn.Close()
	e.expect(t, state("burst", `{"brightness":5}`), offline("burst"))
}

// TestStateIntervalEnds checks the held state goes out when the
// interval ends, without a further report or a disconnect.
func TestStateIntervalEnds(t *testing.T) {
	e := newEnv(t, bridge.Options{StateInterval: 20 * time.Millisecond})
	l := e.dial(context.Background(), true)
	l.send(t, "HELLO burst\n")
	e.expect(t, online("burst"))
	l.send(t, "brightness=1\nbrightness=2\nbrightness=3\n")
	var states []string
	for len(states) == 0 || states[len(states)-1] != `{"brightness":3}` {
		if m := e.next(t); strings.HasSuffix(m.topic, "/state") {
			states = append(states, m.payload)
		}
	}
	// The first at once, the latest when the interval ends. (The one
	// between is held too unless the machine stalled for an interval
	// between two frames; TestStateInterval checks the holding.)
	if states[0] != `{"brightness":1}` {
		t.Errorf("states %q, want the first one first", states)
	}
}
