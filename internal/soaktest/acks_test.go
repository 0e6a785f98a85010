package soaktest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lampgw/lampgw/devices"
)

// ackNext is the ack state machine as an app sees it on lamp/<id>/ack,
// one (rid, key) at a time: from each status, the statuses that may come
// next. "" is before the first ack: a command waiting for its pacing slot
// on an online lamp has had none yet. A final status has no entry, so
// nothing may follow it.
//
// queued may repeat: a frame that its connection never got to write goes
// back to the registry and is queued again if the lamp is offline by
// then (devices/commands.go, delivered). written is followed by
// unconfirmed, not superseded, when a newer value for the key is written
// before the lamp confirmed: it left, so it was not replaced unwritten.
var ackNext = map[devices.AckStatus][]devices.AckStatus{
	"":              {devices.Queued, devices.Written, devices.Superseded, devices.Expired, devices.Rejected},
	devices.Queued:  {devices.Queued, devices.Written, devices.Superseded, devices.Expired},
	devices.Written: {devices.Confirmed, devices.Unconfirmed},
}

// isFinal reports whether s ends a command (docs/protocol.md: "Every
// command with a rid ends confirmed, unconfirmed, superseded, expired or
// rejected").
func isFinal(s devices.AckStatus) bool {
	switch s {
	case devices.Confirmed, devices.Unconfirmed, devices.Superseded, devices.Expired, devices.Rejected:
		return true
	}
	return false
}

// checkAcks returns why seq, the statuses one (rid, key) got in the
// order they arrived, is not a complete history: a step ackNext does
// not allow, anything after a final status, or no final status.
func checkAcks(seq []devices.AckStatus) error {
	var prev devices.AckStatus
	for i, s := range seq {
		if !slices.Contains(ackNext[prev], s) {
			from := string(prev)
			switch {
			case prev == "":
				from = "the start"
			case isFinal(prev):
				from = "final " + from
			}
			return fmt.Errorf("ack %d: %q after %s (acks %v)", i+1, s, from, seq)
		}
		prev = s
	}
	if !isFinal(prev) {
		return fmt.Errorf("no final ack (acks %v)", seq)
	}
	return nil
}

func TestAckTable(t *testing.T) {
	const (
		q = devices.Queued
		w = devices.Written
		c = devices.Confirmed
		u = devices.Unconfirmed
		s = devices.Superseded
		e = devices.Expired
		r = devices.Rejected
	)
	tests := []struct {
		name string
		seq  []devices.AckStatus
		ok   bool
	}{
		{"online, confirmed", []devices.AckStatus{w, c}, true},
		{"online, unconfirmed", []devices.AckStatus{w, u}, true},
		{"offline, then confirmed", []devices.AckStatus{q, w, c}, true},
		{"offline, connection lost before the write", []devices.AckStatus{q, q, w, u}, true},
		{"online, connection lost before the write", []devices.AckStatus{q, w, c}, true},
		{"coalesced while waiting for its slot", []devices.AckStatus{s}, true},
		{"replaced while queued", []devices.AckStatus{q, s}, true},
		{"expired while queued", []devices.AckStatus{q, e}, true},
		{"expired while waiting for its slot", []devices.AckStatus{e}, true},
		{"rejected", []devices.AckStatus{r}, true},

		{"no ack", nil, false},
		{"queued only", []devices.AckStatus{q}, false},
		{"written only", []devices.AckStatus{w}, false},
		{"confirmed unwritten", []devices.AckStatus{c}, false},
		{"unconfirmed unwritten", []devices.AckStatus{q, u}, false},
		{"superseded after written", []devices.AckStatus{w, s}, false},
		{"expired after written", []devices.AckStatus{w, e}, false},
		{"queued after written", []devices.AckStatus{w, q, w, c}, false},
		{"written twice", []devices.AckStatus{w, w, c}, false},
		{"two finals", []devices.AckStatus{w, c, u}, false},
		{"confirmed twice", []devices.AckStatus{w, c, c}, false},
		{"rejected after queued", []devices.AckStatus{q, r}, false},
		{"unknown status", []devices.AckStatus{"pending", w, c}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAcks(tt.seq)
			if (err == nil) != tt.ok {
				t.Fatalf("checkAcks(%v): got %v, want ok=%v", tt.seq, err, tt.ok)
			}
		})
	}
}

// fakeHolder is a lamp connection that loses frames, writes them, and
// echoes them back (before or after the write callback), at random.
type fakeHolder struct {
	reg  *devices.Registry
	id   string
	rand func() float64
	wg   *sync.WaitGroup

	mu     sync.Mutex
	closed bool
	// reliable holders always write and echo, to let everything end.
	reliable bool
}

func (h *fakeHolder) Deliver(pairs []devices.Pair, done func(ok bool)) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !h.reliable && h.rand() < 0.1 {
		return false
	}
	ok := h.reliable || h.rand() < 0.8
	echo := h.rand()
	if h.reliable {
		echo = 0.5
	}
	h.wg.Go(func() {
		if ok && echo < 0.2 {
			h.reg.Report(h.id, h, pairs, nil) // the report beats the write callback
		}
		done(ok)
		if ok && echo >= 0.2 && echo < 0.9 {
			h.reg.Report(h.id, h, pairs, nil)
		}
	})
	return true
}

func (h *fakeHolder) Kick() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
}

// TestRegistryAcksFollowTheTable drives a real devices.Registry through
// random attaches, take-overs, detaches, commands, reports and lost or
// written frames, and checks every (rid, key) against ackNext: the table
// must describe what the registry does, not what we wish it did.
func TestRegistryAcksFollowTheTable(t *testing.T) {
	leakCheck(t)
	var mu sync.Mutex
	hist := make(map[string][]devices.AckStatus)
	reg := devices.NewRegistry(devices.Options{
		ConfirmTimeout: 20 * time.Millisecond,
		CommandTTL:     60 * time.Millisecond,
		MaxRate:        200,
		OnAck: func(a devices.Ack) {
			mu.Lock()
			k := a.Command.RID + "/" + a.Command.Key
			hist[k] = append(hist[k], a.Status)
			mu.Unlock()
		},
	})
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	rnd := func() float64 {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.Float64()
	}
	var wg sync.WaitGroup
	ids := []string{"a", "b", "c", "d"}
	holders := make(map[string]*fakeHolder)
	detach := func(id string) {
		if h := holders[id]; h != nil {
			h.Kick()
			reg.Detach(id, h, nil)
			holders[id] = nil
		}
	}
	var want []string
	// "z" never connects until the end, so its first command surely
	// outlives the TTL.
	if err := reg.Command("z", []devices.Command{{Pair: devices.Pair{Key: "brightness", Value: devices.Value{Text: "1", JSON: "1"}}, RID: "z1"}}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "z1/brightness")
	// A millisecond between steps lets timers fire in between: pacing,
	// confirmation deadlines and expiry all take part.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := range 1500 {
		<-tick.C
		id := ids[int(rnd()*float64(len(ids)))]
		switch r := rnd(); {
		case r < 0.1: // connect, taking over any connection still open
			h := &fakeHolder{reg: reg, id: id, rand: rnd, wg: &wg}
			if _, err := reg.Attach(id, h, nil); err != nil {
				t.Fatal(err)
			}
			holders[id] = h
		case r < 0.18:
			detach(id)
		case r < 0.3:
			if h := holders[id]; h != nil {
				v := fmt.Sprint(int(rnd() * float64(i+1)))
				reg.Report(id, h, []devices.Pair{{Key: "brightness", Value: devices.Value{Text: v, JSON: v}}}, nil)
			}
		default:
			// Values are unique: two commands with the same value in
			// flight at once are TestSameValueTwiceInFlight's case.
			rid := fmt.Sprintf("r%d", i)
			v := fmt.Sprint(i)
			cmds := []devices.Command{{Pair: devices.Pair{Key: "brightness", Value: devices.Value{Text: v, JSON: v}}, RID: rid}}
			if rnd() < 0.3 {
				s := fmt.Sprintf("s%d", i)
				cmds = append(cmds, devices.Command{Pair: devices.Pair{Key: "scene", Value: devices.Value{Text: s, JSON: `"` + s + `"`}}, RID: rid})
			}
			for _, c := range cmds {
				want = append(want, rid+"/"+c.Key)
			}
			if err := reg.Command(id, cmds); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every lamp connects for good and takes what it is sent: whatever
	// is left must end.
	for _, id := range append(ids, "z") {
		detach(id)
		h := &fakeHolder{reg: reg, id: id, rand: rnd, wg: &wg, reliable: true}
		if _, err := reg.Attach(id, h, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, k := range want {
			if s := hist[k]; (len(s) == 0 || !isFinal(s[len(s)-1])) && n < 10 {
				n++
				t.Logf("not final: %s %v", k, s)
			}
		}
	})
	until(t, wait, "every command's final ack", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range want {
			if s := hist[k]; len(s) == 0 || !isFinal(s[len(s)-1]) {
				return false
			}
		}
		return true
	})
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	seen := make(map[devices.AckStatus]int)
	for _, k := range want {
		if err := checkAcks(hist[k]); err != nil {
			t.Errorf("%s: %v", k, err)
		}
		for _, s := range hist[k] {
			seen[s]++
		}
	}
	if len(hist) != len(want) {
		t.Errorf("acks for %d (rid, key)s, want %d", len(hist), len(want))
	}
	// The scenario must reach every status the registry gives, or it
	// proves less than it claims.
	for _, s := range []devices.AckStatus{devices.Queued, devices.Written, devices.Confirmed, devices.Unconfirmed, devices.Superseded, devices.Expired} {
		if seen[s] == 0 {
			t.Errorf("no %s ack in %d commands; the scenario misses a path (seen %v)", s, len(want), seen)
		}
	}
	t.Logf("%d (rid, key)s, statuses %v", len(want), seen)
}

// echoless is a lamp connection that writes every frame and never
// reports anything back.
type echoless struct{ wg *sync.WaitGroup }

func (h echoless) Deliver(_ []devices.Pair, done func(ok bool)) bool {
	h.wg.Go(func() { done(true) })
	return true
}

func (echoless) Kick() {}

// TestSameValueTwiceInFlight: two commands with the same value for one
// key, both written before the lamp answers (a button tapped twice). Each
// must end. devices/commands.go delivered used to replace the first in
// flight without an ack when the values were equal, so it never ended.
func TestSameValueTwiceInFlight(t *testing.T) {
	leakCheck(t)
	var mu sync.Mutex
	hist := make(map[string][]devices.AckStatus)
	reg := devices.NewRegistry(devices.Options{
		ConfirmTimeout: 50 * time.Millisecond,
		MaxRate:        -1,
		OnAck: func(a devices.Ack) {
			mu.Lock()
			hist[a.Command.RID] = append(hist[a.Command.RID], a.Status)
			mu.Unlock()
		},
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	h := echoless{&wg}
	if _, err := reg.Attach("tap", h, nil); err != nil {
		t.Fatal(err)
	}
	on := devices.Pair{Key: "power", Value: devices.Value{Text: "on", JSON: `"on"`}}
	written := func(rid string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Contains(hist[rid], devices.Written)
		}
	}
	for _, rid := range []string{"tap1", "tap2"} {
		if err := reg.Command("tap", []devices.Command{{Pair: on, RID: rid}}); err != nil {
			t.Fatal(err)
		}
		until(t, wait, rid+" written", written(rid))
	}
	until(t, time.Second, "both taps' final acks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, rid := range []string{"tap1", "tap2"} {
			if s := hist[rid]; len(s) == 0 || !isFinal(s[len(s)-1]) {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, rid := range []string{"tap1", "tap2"} {
		if err := checkAcks(hist[rid]); err != nil {
			t.Errorf("%s: %v", rid, err)
		}
	}
}
