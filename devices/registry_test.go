package devices_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lampgw/lampgw/devices"
)

// holder is a devices.Holder that records what the registry did to it.
// Calls are also appended to log, when set, so tests can check the order
// of announce callbacks and deliveries.
type holder struct {
	name string
	log  *eventLog

	mu        sync.Mutex
	refuse    bool // Deliver returns false, like a closed or full session
	delivered [][]devices.Pair
	kicks     int
	onKick    func()
}

func (h *holder) Deliver(pairs []devices.Pair, done func(ok bool)) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log.add(h.name + " deliver " + fmtPairs(pairs))
	if h.refuse {
		return false
	}
	h.delivered = append(h.delivered, append([]devices.Pair(nil), pairs...))
	// As a session's writer does: later, on another goroutine.
	go done(true)
	return true
}

// command sends pairs as one command without a request id.
func command(r *devices.Registry, id string, pairs ...devices.Pair) error {
	cmds := make([]devices.Command, len(pairs))
	for i, p := range pairs {
		cmds[i] = devices.Command{Pair: p}
	}
	return r.Command(id, cmds)
}

func (h *holder) Kick() {
	h.mu.Lock()
	h.kicks++
	onKick := h.onKick
	h.mu.Unlock()
	h.log.add(h.name + " kick")
	if onKick != nil {
		onKick()
	}
}

func (h *holder) setRefuse(b bool) {
	h.mu.Lock()
	h.refuse = b
	h.mu.Unlock()
}

func (h *holder) deliveries() [][]devices.Pair {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]devices.Pair(nil), h.delivered...)
}

func (h *holder) kickCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.kicks
}

// eventLog is an ordered record of callbacks; a nil *eventLog ignores
// everything.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func fmtPairs(pairs []devices.Pair) string {
	s := ""
	for i, p := range pairs {
		if i > 0 {
			s += " "
		}
		s += p.Key + "=" + p.Value.Text
	}
	return s
}

// p makes a pair with a numeric value (Text and JSON the same).
func p(key, num string) devices.Pair { return devices.Pair{Key: key, Value: v(num, num)} }

// ps makes a pair with a string value.
func ps(key, s string) devices.Pair { return devices.Pair{Key: key, Value: v(s, `"`+s+`"`)} }

// publishRecorder collects what Report asks to publish.
type publishRecorder struct {
	calls   int
	changed []devices.Pair
	state   string
}

func (r *publishRecorder) reset() { *r = publishRecorder{} }

func (r *publishRecorder) publish(changed []devices.Pair, state []byte) {
	r.calls++
	r.changed = append([]devices.Pair(nil), changed...)
	r.state = string(state)
}

func TestAttachDetach(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	h := &holder{name: "h"}
	announced := 0
	tookOver, err := r.Attach("kitchen", h, func() { announced++ })
	if err != nil || tookOver {
		t.Fatalf("Attach: got (%v, %v), want (false, nil)", tookOver, err)
	}
	if announced != 1 {
		t.Errorf("announce calls after Attach: got %d, want 1", announced)
	}
	if s, ok := r.Get("kitchen"); !ok || !s.Online {
		t.Errorf("Get after Attach: got (%+v, %v), want online", s, ok)
	}

	t.Run("same holder again is not a take-over", func(t *testing.T) {
		tookOver, err := r.Attach("kitchen", h, nil)
		if err != nil || tookOver {
			t.Errorf("Attach: got (%v, %v), want (false, nil)", tookOver, err)
		}
		if got := h.kickCount(); got != 0 {
			t.Errorf("kicks: got %d, want 0", got)
		}
	})

	t.Run("detach by holder", func(t *testing.T) {
		detached := 0
		if got := r.Detach("kitchen", h, func() { detached++ }); !got {
			t.Errorf("Detach: got %v, want true", got)
		}
		if detached != 1 {
			t.Errorf("announce calls after Detach: got %d, want 1", detached)
		}
		if s, _ := r.Get("kitchen"); s.Online {
			t.Errorf("Online after Detach: got %v, want false", s.Online)
		}
	})

	t.Run("detach again", func(t *testing.T) {
		detached := 0
		if got := r.Detach("kitchen", h, func() { detached++ }); got {
			t.Errorf("Detach: got %v, want false", got)
		}
		if detached != 0 {
			t.Errorf("announce calls: got %d, want 0", detached)
		}
	})

	t.Run("detach unknown id", func(t *testing.T) {
		if got := r.Detach("nobody", h, func() { t.Error("announce ran for an unknown id") }); got {
			t.Errorf("Detach: got %v, want false", got)
		}
		if _, ok := r.Get("nobody"); ok {
			t.Errorf("Get(nobody) after Detach: got known, want unknown")
		}
	})
}

func TestAttachTakeOver(t *testing.T) {
	var log eventLog
	r := devices.NewRegistry(devices.Options{})
	old := &holder{name: "old", log: &log}
	nu := &holder{name: "new", log: &log}
	if _, err := r.Attach("kitchen", old, func() { log.add("online old") }); err != nil {
		t.Fatal(err)
	}
	tookOver, err := r.Attach("kitchen", nu, func() { log.add("online new") })
	if err != nil || !tookOver {
		t.Fatalf("second Attach: got (%v, %v), want (true, nil)", tookOver, err)
	}
	if got := old.kickCount(); got != 1 {
		t.Errorf("old holder kicks: got %d, want 1", got)
	}
	if got := nu.kickCount(); got != 0 {
		t.Errorf("new holder kicks: got %d, want 0", got)
	}
	// The old connection ends after being kicked: it must not announce
	// offline for a lamp that is online on the new connection.
	if got := r.Detach("kitchen", old, func() { log.add("offline old") }); got {
		t.Errorf("Detach by old holder: got %v, want false", got)
	}
	if s, _ := r.Get("kitchen"); !s.Online {
		t.Errorf("Online after old Detach: got %v, want true", s.Online)
	}
	// Its late reports are dropped too.
	var pub publishRecorder
	if refused := r.Report("kitchen", old, []devices.Pair{p("brightness", "1")}, pub.publish); refused != nil {
		t.Errorf("Report by old holder refused: got %v, want nil", refused)
	}
	if pub.calls != 0 {
		t.Errorf("publish calls for old holder's report: got %d, want 0", pub.calls)
	}
	if got := r.Detach("kitchen", nu, func() { log.add("offline new") }); !got {
		t.Errorf("Detach by new holder: got %v, want true", got)
	}
	want := []string{"online old", "online new", "old kick", "offline new"}
	if got := log.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("events: got %q, want %q", got, want)
	}
}

// TestKickOutsideLock checks that Kick runs outside the device lock: a
// holder whose Kick ends its session synchronously (as bridge sessions
// may) calls Detach from inside Kick, which would deadlock otherwise.
func TestKickOutsideLock(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	old := &holder{name: "old"}
	detached := make(chan bool, 1)
	old.onKick = func() { detached <- r.Detach("kitchen", old, nil) }
	if _, err := r.Attach("kitchen", old, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Attach("kitchen", &holder{name: "new"}, nil)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Attach did not return: Kick ran under the device lock")
	}
	if got := <-detached; got {
		t.Errorf("Detach from Kick: got %v, want false", got)
	}
}

func TestReportChangeDetection(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	h := &holder{name: "h"}
	if _, err := r.Attach("kitchen", h, nil); err != nil {
		t.Fatal(err)
	}
	var pub publishRecorder
	// Each step runs in order on the same registry.
	steps := []struct {
		name        string
		reattach    bool
		pairs       []devices.Pair
		wantCalls   int
		wantChanged []devices.Pair
		wantState   string
	}{
		{
			name:        "first report publishes everything",
			pairs:       []devices.Pair{p("brightness", "512"), p("ambient", "830"), ps("mode", "auto")},
			wantCalls:   1,
			wantChanged: []devices.Pair{p("brightness", "512"), p("ambient", "830"), ps("mode", "auto")},
			wantState:   `{"ambient":830,"brightness":512,"mode":"auto"}`,
		},
		{
			name:      "same values publish nothing",
			pairs:     []devices.Pair{p("brightness", "512"), ps("mode", "auto")},
			wantCalls: 0,
		},
		{
			name:        "only the changed key",
			pairs:       []devices.Pair{p("brightness", "600"), p("ambient", "830")},
			wantCalls:   1,
			wantChanged: []devices.Pair{p("brightness", "600")},
			wantState:   `{"ambient":830,"brightness":600,"mode":"auto"}`,
		},
		{
			name:        "new key sorted into state",
			pairs:       []devices.Pair{ps("b_scene", "x"), {Key: "a_flag", Value: v("true", "true")}},
			wantCalls:   1,
			wantChanged: []devices.Pair{ps("b_scene", "x"), {Key: "a_flag", Value: v("true", "true")}},
			wantState:   `{"a_flag":true,"ambient":830,"b_scene":"x","brightness":600,"mode":"auto"}`,
		},
		{
			name:        "first report after re-attach is published unchanged",
			reattach:    true,
			pairs:       []devices.Pair{p("brightness", "600")},
			wantCalls:   1,
			wantChanged: []devices.Pair{p("brightness", "600")},
			wantState:   `{"a_flag":true,"ambient":830,"b_scene":"x","brightness":600,"mode":"auto"}`,
		},
		{
			name:        "other keys are still first on the new connection",
			pairs:       []devices.Pair{p("brightness", "600"), p("ambient", "830")},
			wantCalls:   1,
			wantChanged: []devices.Pair{p("ambient", "830")},
			wantState:   `{"a_flag":true,"ambient":830,"b_scene":"x","brightness":600,"mode":"auto"}`,
		},
		{
			name:      "empty report",
			pairs:     nil,
			wantCalls: 0,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.reattach {
				r.Detach("kitchen", h, nil)
				h = &holder{name: "h2"}
				if _, err := r.Attach("kitchen", h, nil); err != nil {
					t.Fatal(err)
				}
			}
			pub.reset()
			if refused := r.Report("kitchen", h, st.pairs, pub.publish); len(refused) != 0 {
				t.Fatalf("refused: got %v, want none", refused)
			}
			if pub.calls != st.wantCalls {
				t.Fatalf("publish calls: got %d, want %d", pub.calls, st.wantCalls)
			}
			if st.wantCalls == 0 {
				return
			}
			if !reflect.DeepEqual(pub.changed, st.wantChanged) {
				t.Errorf("changed: got %v, want %v", pub.changed, st.wantChanged)
			}
			if pub.state != st.wantState {
				t.Errorf("state: got %s, want %s", pub.state, st.wantState)
			}
			if !json.Valid([]byte(pub.state)) {
				t.Errorf("state %s is not valid JSON", pub.state)
			}
		})
	}

	t.Run("snapshot holds reported values", func(t *testing.T) {
		s, ok := r.Get("kitchen")
		if !ok {
			t.Fatal("Get: got unknown, want known")
		}
		if got, want := s.Reported["brightness"], v("600", "600"); got != want {
			t.Errorf("Reported[brightness]: got %+v, want %+v", got, want)
		}
		// A snapshot is a copy.
		s.Reported["brightness"] = v("1", "1")
		if s2, _ := r.Get("kitchen"); s2.Reported["brightness"] != v("600", "600") {
			t.Errorf("Reported after mutating a snapshot: got %+v, want 600", s2.Reported["brightness"])
		}
	})
}

func TestReportUnknownOrNotHolder(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	var pub publishRecorder
	h := &holder{name: "h"}
	if refused := r.Report("ghost", h, []devices.Pair{p("brightness", "1")}, pub.publish); refused != nil {
		t.Errorf("refused: got %v, want nil", refused)
	}
	if pub.calls != 0 {
		t.Errorf("publish calls for an unknown id: got %d, want 0", pub.calls)
	}
	if _, ok := r.Get("ghost"); ok {
		t.Errorf("Get(ghost): got known, want unknown: a report must not create a device")
	}
	if _, err := r.Attach("kitchen", h, nil); err != nil {
		t.Fatal(err)
	}
	r.Report("kitchen", &holder{name: "stranger"}, []devices.Pair{p("brightness", "1")}, pub.publish)
	if pub.calls != 0 {
		t.Errorf("publish calls for a stranger's report: got %d, want 0", pub.calls)
	}
}

func TestReportMaxKeys(t *testing.T) {
	r := devices.NewRegistry(devices.Options{MaxKeys: 2})
	h := &holder{name: "h"}
	if _, err := r.Attach("kitchen", h, nil); err != nil {
		t.Fatal(err)
	}
	var pub publishRecorder
	refused := r.Report("kitchen", h, []devices.Pair{p("a", "1"), p("b", "2"), p("c", "3")}, pub.publish)
	if want := []devices.Pair{p("c", "3")}; !reflect.DeepEqual(refused, want) {
		t.Errorf("refused: got %v, want %v", refused, want)
	}
	if want := []devices.Pair{p("a", "1"), p("b", "2")}; !reflect.DeepEqual(pub.changed, want) {
		t.Errorf("changed: got %v, want %v", pub.changed, want)
	}
	if want := `{"a":1,"b":2}`; pub.state != want {
		t.Errorf("state: got %s, want %s", pub.state, want)
	}

	pub.reset()
	refused = r.Report("kitchen", h, []devices.Pair{p("d", "4"), p("a", "5")}, pub.publish)
	if want := []devices.Pair{p("d", "4")}; !reflect.DeepEqual(refused, want) {
		t.Errorf("refused with a known key changing: got %v, want %v", refused, want)
	}
	if want := []devices.Pair{p("a", "5")}; !reflect.DeepEqual(pub.changed, want) {
		t.Errorf("changed: got %v, want %v", pub.changed, want)
	}

	// Keys are remembered across connections, so the limit still holds.
	r.Detach("kitchen", h, nil)
	h2 := &holder{name: "h2"}
	r.Attach("kitchen", h2, nil)
	pub.reset()
	refused = r.Report("kitchen", h2, []devices.Pair{p("e", "1")}, pub.publish)
	if want := []devices.Pair{p("e", "1")}; !reflect.DeepEqual(refused, want) {
		t.Errorf("refused after reconnect: got %v, want %v", refused, want)
	}
	if pub.calls != 0 {
		t.Errorf("publish calls: got %d, want 0", pub.calls)
	}
}

func TestMaxDevices(t *testing.T) {
	r := devices.NewRegistry(devices.Options{MaxDevices: 2})
	if _, err := r.Attach("a", &holder{}, nil); err != nil {
		t.Fatalf("Attach(a): %v", err)
	}
	if err := command(r, "b", p("brightness", "1")); err != nil {
		t.Fatalf("Command(b): %v", err)
	}
	t.Run("command a third", func(t *testing.T) {
		err := command(r, "c", p("brightness", "1"))
		if !errors.Is(err, devices.ErrTooManyDevices) {
			t.Errorf("got %v, want %v", err, devices.ErrTooManyDevices)
		}
	})
	t.Run("known devices still work", func(t *testing.T) {
		if _, err := r.Attach("b", &holder{}, nil); err != nil {
			t.Errorf("Attach(b): got %v, want nil", err)
		}
		if err := command(r, "a", p("brightness", "1")); err != nil {
			t.Errorf("Command(a): got %v, want nil", err)
		}
	})
	t.Run("no room while every device is online", func(t *testing.T) {
		announced := false
		_, err := r.Attach("d", &holder{}, func() { announced = true })
		if !errors.Is(err, devices.ErrTooManyDevices) || announced {
			t.Errorf("Attach(d): got (%v, announced %v), want (%v, false)", err, announced, devices.ErrTooManyDevices)
		}
	})
	if got, want := r.IDs(), []string{"a", "b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("IDs: got %v, want %v", got, want)
	}
}

// TestEviction: a lamp that identifies in a full registry makes room by
// forgetting the offline device seen longest ago, preferring one with no
// pending commands.
func TestEviction(t *testing.T) {
	now := time.Unix(0, 0)
	r := devices.NewRegistry(devices.Options{MaxDevices: 3, Now: func() time.Time { return now }})
	visit := func(id string, stay bool) {
		t.Helper()
		h := &holder{}
		if _, err := r.Attach(id, h, nil); err != nil {
			t.Fatalf("Attach(%s): %v", id, err)
		}
		if !stay {
			r.Detach(id, h, nil)
		}
		now = now.Add(time.Second)
	}
	visit("with-command", false) // seen longest ago
	visit("old", false)
	visit("online", true)
	if err := command(r, "with-command", p("brightness", "1")); err != nil {
		t.Fatal(err)
	}

	// "with-command" was seen longest ago but holds a command: "old" goes.
	visit("new", true)
	if got, want := r.IDs(), []string{"new", "online", "with-command"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after first eviction: got %v, want %v", got, want)
	}
	// Now only the device with a command is offline: it goes next.
	visit("newer", true)
	if got, want := r.IDs(), []string{"new", "newer", "online"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after second eviction: got %v, want %v", got, want)
	}
	// Everyone is online: no room.
	if _, err := r.Attach("newest", &holder{}, nil); !errors.Is(err, devices.ErrTooManyDevices) {
		t.Fatalf("Attach(newest): got %v, want %v", err, devices.ErrTooManyDevices)
	}
}

func TestCommand(t *testing.T) {
	unpaced := devices.Options{MaxRate: -1}
	t.Run("delivered to the holder", func(t *testing.T) {
		r := devices.NewRegistry(unpaced)
		h := &holder{}
		r.Attach("kitchen", h, nil)
		cmd := []devices.Pair{p("brightness", "700"), ps("mode", "manual")}
		if err := command(r, "kitchen", cmd...); err != nil {
			t.Fatalf("Command: %v", err)
		}
		if got, want := h.deliveries(), [][]devices.Pair{cmd}; !reflect.DeepEqual(got, want) {
			t.Errorf("deliveries: got %v, want %v", got, want)
		}
		if s, _ := r.Get("kitchen"); len(s.Desired) != 0 {
			t.Errorf("desired: got %v, want none", s.Desired)
		}
	})

	t.Run("offline kept as desired, newest per key, first order", func(t *testing.T) {
		var log eventLog
		r := devices.NewRegistry(unpaced)
		cmds := [][]devices.Pair{
			{p("brightness", "100"), ps("mode", "auto")},
			{ps("power", "on")},
			{ps("mode", "manual"), p("brightness", "200")},
		}
		for _, c := range cmds {
			if err := command(r, "kitchen", c...); err != nil {
				t.Fatalf("Command(%v): %v", c, err)
			}
		}
		want := []devices.Pair{p("brightness", "200"), ps("mode", "manual"), ps("power", "on")}
		s, ok := r.Get("kitchen")
		if !ok || s.Online {
			t.Fatalf("Get: got (%+v, %v), want known and offline", s, ok)
		}
		if !reflect.DeepEqual(s.Desired, want) {
			t.Errorf("desired: got %v, want %v", s.Desired, want)
		}

		h := &holder{name: "h", log: &log}
		if _, err := r.Attach("kitchen", h, func() { log.add("online") }); err != nil {
			t.Fatal(err)
		}
		wantEvents := []string{"online", "h deliver brightness=200 mode=manual power=on"}
		if got := log.get(); !reflect.DeepEqual(got, wantEvents) {
			t.Errorf("events: got %q, want %q", got, wantEvents)
		}
		if s, _ := r.Get("kitchen"); len(s.Desired) != 0 {
			t.Errorf("desired after flush: got %v, want none", s.Desired)
		}
		// Flushed once only.
		r.Detach("kitchen", h, nil)
		h2 := &holder{name: "h2"}
		r.Attach("kitchen", h2, nil)
		if got := h2.deliveries(); len(got) != 0 {
			t.Errorf("deliveries on second attach: got %v, want none", got)
		}
	})

	t.Run("refusing holder keeps desired", func(t *testing.T) {
		r := devices.NewRegistry(devices.Options{})
		h := &holder{refuse: true}
		r.Attach("kitchen", h, nil)
		command(r, "kitchen", p("brightness", "1"))
		command(r, "kitchen", ps("mode", "auto"), p("brightness", "2"))
		want := []devices.Pair{p("brightness", "2"), ps("mode", "auto")}
		if s, _ := r.Get("kitchen"); !reflect.DeepEqual(s.Desired, want) {
			t.Errorf("desired: got %v, want %v", s.Desired, want)
		}

		// Once it accepts again, the next command carries what was kept;
		// the refusals spent none of the lamp's write rate.
		h.setRefuse(false)
		command(r, "kitchen", ps("power", "on"))
		wantDelivered := [][]devices.Pair{{p("brightness", "2"), ps("mode", "auto"), ps("power", "on")}}
		if got := h.deliveries(); !reflect.DeepEqual(got, wantDelivered) {
			t.Errorf("deliveries: got %v, want %v", got, wantDelivered)
		}
		if s, _ := r.Get("kitchen"); len(s.Desired) != 0 {
			t.Errorf("desired: got %v, want none", s.Desired)
		}
	})

	t.Run("attach to a refusing holder keeps desired", func(t *testing.T) {
		r := devices.NewRegistry(unpaced)
		command(r, "kitchen", p("brightness", "5"))
		r.Attach("kitchen", &holder{refuse: true}, nil)
		want := []devices.Pair{p("brightness", "5")}
		if s, _ := r.Get("kitchen"); !reflect.DeepEqual(s.Desired, want) {
			t.Errorf("desired: got %v, want %v", s.Desired, want)
		}
		h := &holder{}
		r.Attach("kitchen", h, nil)
		if got := h.deliveries(); !reflect.DeepEqual(got, [][]devices.Pair{want}) {
			t.Errorf("deliveries: got %v, want %v", got, [][]devices.Pair{want})
		}
	})
}

func TestLastSeen(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	r := devices.NewRegistry(devices.Options{Now: func() time.Time { return now }})
	h := &holder{}
	r.Attach("kitchen", h, nil)
	if s, _ := r.Get("kitchen"); !s.LastSeen.Equal(now) {
		t.Errorf("LastSeen after Attach: got %v, want %v", s.LastSeen, now)
	}
	now = now.Add(time.Minute)
	r.Report("kitchen", h, []devices.Pair{p("brightness", "1")}, nil)
	if s, _ := r.Get("kitchen"); !s.LastSeen.Equal(now) {
		t.Errorf("LastSeen after Report: got %v, want %v", s.LastSeen, now)
	}
}

// TestRegistryConcurrent hammers a few devices from many goroutines. Run
// with -race. Callbacks run under the device lock, so each device's event
// log is in the order things happened to it; the test checks that the
// log makes sense: never offline twice in a row, and reports only
// published while online.
func TestRegistryConcurrent(t *testing.T) {
	const (
		ids        = 4
		goroutines = 16
		rounds     = 200
	)
	r := devices.NewRegistry(devices.Options{MaxKeys: 8})
	logs := make([]*eventLog, ids)
	for i := range logs {
		logs[i] = &eventLog{}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range rounds {
				i := (g + n) % ids
				id := fmt.Sprintf("lamp%d", i)
				log := logs[i]
				switch g % 3 {
				case 0, 1: // a lamp connecting, reporting, leaving
					h := &holder{refuse: n%5 == 0}
					if _, err := r.Attach(id, h, func() { log.add("online") }); err != nil {
						t.Error(err)
						return
					}
					for k := range 3 {
						r.Report(id, h, []devices.Pair{p(fmt.Sprintf("k%d", (n+k)%10), fmt.Sprint(n))}, func(changed []devices.Pair, state []byte) {
							if !json.Valid(state) {
								t.Errorf("state %s is not valid JSON", state)
							}
							log.add("report")
						})
					}
					r.Detach(id, h, func() { log.add("offline") })
				case 2: // an app commanding
					if err := command(r, id, p("brightness", fmt.Sprint(n))); err != nil {
						t.Error(err)
						return
					}
					r.Get(id)
					r.IDs()
				}
			}
		}()
	}
	wg.Wait()

	for i, log := range logs {
		online := false
		for j, e := range log.get() {
			switch e {
			case "online":
				online = true
			case "offline":
				if !online {
					t.Fatalf("lamp%d event %d: got offline while offline", i, j)
				}
				online = false
			case "report":
				if !online {
					t.Fatalf("lamp%d event %d: got a report published while offline", i, j)
				}
			}
		}
		if online {
			t.Errorf("lamp%d: got online at the end, want offline (every holder detached)", i)
		}
		s, _ := r.Get(fmt.Sprintf("lamp%d", i))
		if s.Online {
			t.Errorf("lamp%d snapshot: got online, want offline", i)
		}
		if len(s.Reported) > 8 {
			t.Errorf("lamp%d reported keys: got %d, want at most 8", i, len(s.Reported))
		}
	}
}
