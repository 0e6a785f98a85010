package bustest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lampgw/lampgw/internal/testwait"
)

// Bus is the bridge's Bus interface, declared again here so the suite
// does not import the bridge (the interface belongs to its consumer).
type Bus interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
	Subscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) (unsubscribe func(), err error)
}

// timeout bounds every wait; generous because -race on two cores is slow.
const timeout = 10 * time.Second

// Run runs the conformance cases against buses made by newBus, which is
// called once per case and must register the bus's cleanup with t.
func Run(t *testing.T, newBus func(t *testing.T) Bus) {
	cases := []struct {
		name string
		run  func(t *testing.T, bus Bus)
	}{
		{"RetainedOnSubscribe", testRetainedOnSubscribe},
		{"RetainedReplayOnlyToNewSubscription", testReplayOnlyToNew},
		{"RetainedParentOfHash", testRetainedParentOfHash},
		{"RetainedClear", testRetainedClear},
		{"Wildcards", testWildcards},
		{"WildcardsSkipDollarTopics", testDollarTopics},
		{"OrderPerPublisher", testOrder},
		{"PayloadIsolation", testPayloadIsolation},
		{"Unsubscribe", testUnsubscribe},
		{"UnsubscribeWhileHandlerRuns", testUnsubscribeWhileRunning},
		{"UnsubscribeFromHandler", testUnsubscribeFromHandler},
		{"IdenticalFiltersIndependent", testIdenticalFilters},
		{"PanickingHandler", testPanickingHandler},
		{"HandlerMayPublish", testHandlerMayPublish},
		{"InvalidArguments", testInvalidArguments},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newBus(t))
		})
	}
}

// msg is one handler call as recorded.
type msg struct {
	Topic    string
	Payload  string
	Retained bool
}

func (m msg) String() string {
	return fmt.Sprintf("{%s %q retained=%v}", m.Topic, m.Payload, m.Retained)
}

// recorder is a handler that records its calls and wakes waiters.
type recorder struct {
	mu     sync.Mutex
	msgs   []msg
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) handle(topic string, payload []byte, retained bool) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg{topic, string(payload), retained})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until cond holds for the calls recorded so far.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]msg) bool) []msg {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := r.all(); cond(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; got %v", what, r.all())
		}
	}
}

// waitPayload waits for a call with payload p and returns all calls.
func (r *recorder) waitPayload(t *testing.T, p string) []msg {
	t.Helper()
	return r.waitFor(t, fmt.Sprintf("payload %q", p), func(ms []msg) bool {
		return slices.ContainsFunc(ms, func(m msg) bool { return m.Payload == p })
	})
}

// prefix returns a topic prefix no other case or run uses.
func prefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "bustest/" + hex.EncodeToString(b)
}

func publish(t *testing.T, bus Bus, topic, payload string, qos byte, retain bool) {
	t.Helper()
	if err := bus.Publish(topic, []byte(payload), qos, retain); err != nil {
		t.Fatalf("Publish(%q, %q): %v", topic, payload, err)
	}
}

func subscribe(t *testing.T, bus Bus, filter string, h func(string, []byte, bool)) func() {
	t.Helper()
	unsub, err := bus.Subscribe(filter, 1, h)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", filter, err)
	}
	t.Cleanup(unsub)
	return unsub
}

func checkMsgs(t *testing.T, who string, got, want []msg) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", who, got, want)
	}
}

func testRetainedOnSubscribe(t *testing.T, bus Bus) {
	topic := prefix(t) + "/state"
	publish(t, bus, topic, "on", 1, true)

	r := newRecorder()
	subscribe(t, bus, topic, r.handle)
	r.waitPayload(t, "on")
	// Live messages are never "retained", even when their publisher set
	// retain [MQTT-3.3.1-9].
	publish(t, bus, topic, "off", 1, true)
	publish(t, bus, topic, "plain", 1, false)
	got := r.waitPayload(t, "plain")
	checkMsgs(t, "subscriber", got, []msg{
		{topic, "on", true},
		{topic, "off", false},
		{topic, "plain", false},
	})
}

// testReplayOnlyToNew checks that a subscription's retained replay goes to
// it alone, not to an existing overlapping subscription. Over MQTT 3.1.1
// the replayed PUBLISH carries no subscription, so an adapter that routes
// by filter alone gets this wrong.
func testReplayOnlyToNew(t *testing.T, bus Bus) {
	p := prefix(t)
	publish(t, bus, p+"/a", "1", 1, true)

	older, newer := newRecorder(), newRecorder()
	subscribe(t, bus, p+"/#", older.handle)
	older.waitPayload(t, "1")
	// Retained after the older subscription was made: it gets this live,
	// and must not get it again when the newer one's replay comes.
	publish(t, bus, p+"/b", "2", 1, true)
	older.waitPayload(t, "2")
	subscribe(t, bus, p+"/+", newer.handle)
	newer.waitFor(t, "both replays", func(ms []msg) bool { return len(ms) >= 2 })
	publish(t, bus, p+"/a", "marker", 1, false)

	checkMsgs(t, "older subscription", older.waitPayload(t, "marker"), []msg{
		{p + "/a", "1", true},
		{p + "/b", "2", false},
		{p + "/a", "marker", false},
	})
	got := newer.waitPayload(t, "marker")
	replay := slices.Clone(got[:len(got)-1])
	slices.SortFunc(replay, func(a, b msg) int { return strings.Compare(a.Topic, b.Topic) })
	checkMsgs(t, "newer subscription replay", replay, []msg{{p + "/a", "1", true}, {p + "/b", "2", true}})
	checkMsgs(t, "newer subscription live", got[len(got)-1:], []msg{{p + "/a", "marker", false}})
}

// testRetainedParentOfHash checks that "x/#" replays the retained message
// of "x" itself [MQTT-4.7.1-2], once, and gets live "x" once.
func testRetainedParentOfHash(t *testing.T, bus Bus) {
	p := prefix(t)
	publish(t, bus, p+"/x", "parent", 1, true)
	publish(t, bus, p+"/x/y", "child", 1, true)

	r := newRecorder()
	subscribe(t, bus, p+"/x/#", r.handle)
	r.waitFor(t, "both replays", func(ms []msg) bool { return len(ms) >= 2 })
	publish(t, bus, p+"/x", "marker", 1, false)
	got := r.waitPayload(t, "marker")

	replay := slices.Clone(got[:len(got)-1])
	slices.SortFunc(replay, func(a, b msg) int { return strings.Compare(a.Topic, b.Topic) })
	checkMsgs(t, "replay", replay, []msg{{p + "/x", "parent", true}, {p + "/x/y", "child", true}})
	checkMsgs(t, "live", got[len(got)-1:], []msg{{p + "/x", "marker", false}})
}

func testRetainedClear(t *testing.T, bus Bus) {
	topic := prefix(t) + "/state"
	publish(t, bus, topic, "v", 1, true)

	live := newRecorder()
	subscribe(t, bus, topic, live.handle)
	live.waitPayload(t, "v")
	// An empty retained message clears the store [MQTT-3.3.1-10] and is
	// still delivered to current subscribers.
	publish(t, bus, topic, "", 1, true)
	got := live.waitFor(t, "the empty message", func(ms []msg) bool { return len(ms) >= 2 })
	checkMsgs(t, "current subscriber", got, []msg{{topic, "v", true}, {topic, "", false}})

	later := newRecorder()
	subscribe(t, bus, topic, later.handle)
	publish(t, bus, topic, "m", 1, false)
	checkMsgs(t, "later subscriber", later.waitPayload(t, "m"), []msg{{topic, "m", false}})
}

// testWildcards subscribes overlapping filters on one bus and checks each
// handler gets exactly the topics its filter matches, each once. Filters
// and topics are relative to a random prefix P; "" is P itself. The
// expectations are written out by hand, independent of any Match
// implementation.
func testWildcards(t *testing.T, bus Bus) {
	topics := []string{"", "a", "a/b", "a/b/c", "a/x/c", "a/b/c/d", "b", "b/c", "a/b/set"}
	filters := []struct {
		filter string
		want   []string
	}{
		{"#", []string{"", "a", "a/b", "a/b/c", "a/x/c", "a/b/c/d", "b", "b/c", "a/b/set"}},
		{"a/#", []string{"a", "a/b", "a/b/c", "a/x/c", "a/b/c/d", "a/b/set"}}, // includes "a" [MQTT-4.7.1-2]
		{"a/+/#", []string{"a/b", "a/b/c", "a/x/c", "a/b/c/d", "a/b/set"}},
		{"a/+", []string{"a/b"}},
		{"a/+/c", []string{"a/b/c", "a/x/c"}},
		{"+/c", []string{"b/c"}},
		{"+", []string{"a", "b"}},
		{"+/+/+", []string{"a/b/c", "a/x/c", "a/b/set"}},
		{"+/+/set", []string{"a/b/set"}},
		{"a/b/c", []string{"a/b/c"}},
		{"a/b/c", []string{"a/b/c"}}, // the same filter twice: independent
	}
	p := prefix(t)
	abs := func(rel string) string {
		if rel == "" {
			return p
		}
		return p + "/" + rel
	}

	recs := make([]*recorder, len(filters))
	for i, f := range filters {
		recs[i] = newRecorder()
		subscribe(t, bus, abs(f.filter), recs[i].handle)
	}
	for _, topic := range topics {
		publish(t, bus, abs(topic), "m", 1, false)
	}
	// One marker per filter, published last, on a topic it matches; once
	// a handler has its marker it has had everything published before.
	for i, f := range filters {
		publish(t, bus, abs(f.want[0]), "marker"+strconv.Itoa(i), 1, false)
	}
	for i, f := range filters {
		got := recs[i].waitPayload(t, "marker"+strconv.Itoa(i))
		var rel []string
		for _, m := range got {
			if strings.HasPrefix(m.Payload, "marker") {
				continue
			}
			if m.Retained {
				t.Errorf("filter %q: %v arrived as retained, want live", f.filter, m)
			}
			rel = append(rel, strings.TrimPrefix(strings.TrimPrefix(m.Topic, p), "/"))
		}
		slices.Sort(rel)
		want := slices.Sorted(slices.Values(f.want))
		if !slices.Equal(rel, want) {
			t.Errorf("filter %q: got %q, want %q", f.filter, rel, want)
		}
	}
}

// testDollarTopics checks that wildcard-first filters never see $-topics
// [MQTT-4.7.2-1], neither replayed nor live. Every broker under test keeps
// a retained $SYS/broker/uptime and republishes it about once a second
// (mochi's default; the mosquitto harness sets sys_interval 1), so the
// case waits for one live $SYS message. The $SYS subscription is exact,
// not "$SYS/#": mochi's wildcard retained scan races with its own $SYS
// ticker (mochi-mqtt/server#200) and -race would report mochi, not us.
func testDollarTopics(t *testing.T, bus Bus) {
	filters := []string{"#", "+/#", "+/+/+"}
	recs := make([]*recorder, len(filters))
	for i, filter := range filters {
		recs[i] = newRecorder()
		subscribe(t, bus, filter, recs[i].handle)
	}
	sys := newRecorder()
	subscribe(t, bus, "$SYS/broker/uptime", sys.handle)
	sys.waitFor(t, "a live $SYS message", func(ms []msg) bool {
		return slices.ContainsFunc(ms, func(m msg) bool { return !m.Retained })
	})

	// The live $SYS message reached every matching subscription before
	// this marker was published.
	marker := prefix(t) + "/marker"
	publish(t, bus, marker, "marker", 1, false)
	for i, filter := range filters {
		for _, m := range recs[i].waitPayload(t, "marker") {
			if strings.HasPrefix(m.Topic, "$") {
				t.Errorf("filter %q got %v, want no $-topics", filter, m)
			}
		}
	}
}

func testOrder(t *testing.T, bus Bus) {
	const n = 1000
	topic := prefix(t) + "/seq"
	r := newRecorder()
	subscribe(t, bus, topic, r.handle)
	for i := range n {
		publish(t, bus, topic, strconv.Itoa(i), 1, false)
	}
	got := r.waitPayload(t, strconv.Itoa(n-1))
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m.Payload != strconv.Itoa(i) {
			t.Fatalf("message %d: got payload %q, want %q", i, m.Payload, strconv.Itoa(i))
		}
	}
}

// testPayloadIsolation checks that neither the publisher reusing its
// buffer nor one handler writing to its payload changes what anyone else
// sees. Under -race a shared slice is also reported as a data race.
func testPayloadIsolation(t *testing.T, bus Bus) {
	topic := prefix(t) + "/iso"
	mutated := make(chan struct{})
	var once sync.Once
	writer, reader := newRecorder(), newRecorder()
	subscribe(t, bus, topic, func(topic string, payload []byte, retained bool) {
		writer.handle(topic, payload, retained)
		for i := range payload {
			payload[i] = 'X'
		}
		once.Do(func() { close(mutated) })
	})
	subscribe(t, bus, topic, func(topic string, payload []byte, retained bool) {
		select {
		case <-mutated: // read only after the other handler wrote to its copy
		case <-time.After(timeout):
		}
		reader.handle(topic, payload, retained)
	})

	buf := []byte("original")
	if err := bus.Publish(topic, buf, 1, true); err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 'Z'
	}
	checkMsgs(t, "writing handler", writer.waitFor(t, "a message", func(ms []msg) bool { return len(ms) > 0 }),
		[]msg{{topic, "original", false}})
	checkMsgs(t, "reading handler", reader.waitFor(t, "a message", func(ms []msg) bool { return len(ms) > 0 }),
		[]msg{{topic, "original", false}})

	// The retained store kept its own copy, and a replayed payload is the
	// handler's own too: writing to it leaves the store intact.
	for i := range 2 {
		later := newRecorder()
		subscribe(t, bus, topic, func(topic string, payload []byte, retained bool) {
			later.handle(topic, payload, retained)
			for i := range payload {
				payload[i] = 'Y'
			}
		})
		checkMsgs(t, fmt.Sprintf("later subscriber %d", i+1),
			later.waitFor(t, "the replay", func(ms []msg) bool { return len(ms) > 0 }),
			[]msg{{topic, "original", true}})
	}
}

func testUnsubscribe(t *testing.T, bus Bus) {
	topic := prefix(t) + "/u"
	gone, stays := newRecorder(), newRecorder()
	unsub := subscribe(t, bus, topic, gone.handle)
	subscribe(t, bus, topic, stays.handle)

	publish(t, bus, topic, "1", 1, false)
	gone.waitPayload(t, "1")
	stays.waitPayload(t, "1")
	unsub()
	unsub() // idempotent
	publish(t, bus, topic, "2", 1, false)
	stays.waitPayload(t, "2")
	checkMsgs(t, "unsubscribed handler", gone.all(), []msg{{topic, "1", false}})
}

// testUnsubscribeWhileRunning calls unsubscribe while the handler is
// blocked with messages queued behind it: unsubscribe must return without
// waiting for the handler, and none of the queued messages may be
// delivered after it returned.
func testUnsubscribeWhileRunning(t *testing.T, bus Bus) {
	topic := prefix(t) + "/u"
	entered := make(chan struct{})
	gate := make(chan struct{})
	var calls, late atomic.Int32
	var unsubscribed atomic.Bool
	unsub := subscribe(t, bus, topic, func(string, []byte, bool) {
		if unsubscribed.Load() {
			late.Add(1)
		}
		if calls.Add(1) == 1 {
			close(entered)
			<-gate
		}
	})
	marker := newRecorder()
	subscribe(t, bus, topic, marker.handle)

	for _, p := range []string{"1", "2", "3"} {
		publish(t, bus, topic, p, 1, false)
	}
	marker.waitPayload(t, "3") // all three were handed to both subscriptions
	select {
	case <-entered:
	case <-time.After(timeout):
		t.Fatal("handler never called")
	}

	done := make(chan struct{})
	go func() {
		unsub()
		unsubscribed.Store(true)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		close(gate)
		t.Fatal("unsubscribe waited for the running handler")
	}
	close(gate)
	publish(t, bus, topic, "4", 1, false)
	marker.waitPayload(t, "4")
	if n := late.Load(); n != 0 {
		t.Errorf("handler called %d times after unsubscribe returned, want 0", n)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler calls = %d, want 1", n)
	}
}

func testUnsubscribeFromHandler(t *testing.T, bus Bus) {
	topic := prefix(t) + "/u"
	ready := make(chan struct{})
	var unsub func()
	var calls atomic.Int32
	unsub = subscribe(t, bus, topic, func(string, []byte, bool) {
		<-ready
		calls.Add(1)
		unsub()
	})
	close(ready)
	marker := newRecorder()
	subscribe(t, bus, topic, marker.handle)

	publish(t, bus, topic, "1", 1, false)
	publish(t, bus, topic, "2", 1, false)
	marker.waitPayload(t, "2")
	// Each subscription has its own hand-off, so the self-unsubscribing
	// handler may not have run yet for "1"; wait for it. A second call
	// would have to come from "2", already queued when it ran.
	testwait.Until(t, "the handler's first call", func() bool { return calls.Load() >= 1 })
	publish(t, bus, topic, "3", 1, false)
	marker.waitPayload(t, "3")
	if n := calls.Load(); n != 1 {
		t.Errorf("handler calls = %d, want 1", n)
	}
}

func testIdenticalFilters(t *testing.T, bus Bus) {
	topic := prefix(t) + "/same"
	first, second := newRecorder(), newRecorder()
	unsubFirst := subscribe(t, bus, topic, first.handle)
	subscribe(t, bus, topic, second.handle)

	publish(t, bus, topic, "1", 1, false)
	checkMsgs(t, "first", first.waitPayload(t, "1"), []msg{{topic, "1", false}})
	checkMsgs(t, "second", second.waitPayload(t, "1"), []msg{{topic, "1", false}})
	unsubFirst()
	publish(t, bus, topic, "2", 1, false)
	checkMsgs(t, "second after first left", second.waitPayload(t, "2"),
		[]msg{{topic, "1", false}, {topic, "2", false}})
}

func testPanickingHandler(t *testing.T, bus Bus) {
	topic := prefix(t) + "/p"
	r, other := newRecorder(), newRecorder()
	subscribe(t, bus, topic, func(topic string, payload []byte, retained bool) {
		if string(payload) == "boom" {
			panic("handler bug")
		}
		r.handle(topic, payload, retained)
	})
	subscribe(t, bus, topic, other.handle)

	publish(t, bus, topic, "boom", 1, false)
	publish(t, bus, topic, "ok", 1, false)
	checkMsgs(t, "panicking subscription", r.waitPayload(t, "ok"), []msg{{topic, "ok", false}})
	checkMsgs(t, "other subscription", other.waitPayload(t, "ok"),
		[]msg{{topic, "boom", false}, {topic, "ok", false}})
}

// testHandlerMayPublish publishes from a handler and waits for the
// result. An adapter that ran handlers on its network goroutine would
// deadlock waiting for the acknowledgement of that publish.
func testHandlerMayPublish(t *testing.T, bus Bus) {
	p := prefix(t)
	errs := make(chan error, 1)
	subscribe(t, bus, p+"/ping", func(topic string, payload []byte, retained bool) {
		errs <- bus.Publish(p+"/pong", payload, 1, false)
	})
	pong := newRecorder()
	subscribe(t, bus, p+"/pong", pong.handle)

	publish(t, bus, p+"/ping", "hello", 1, false)
	checkMsgs(t, "pong", pong.waitPayload(t, "hello"), []msg{{p + "/pong", "hello", false}})
	if err := <-errs; err != nil {
		t.Errorf("Publish from handler: %v", err)
	}
}

func testInvalidArguments(t *testing.T, bus Bus) {
	h := func(string, []byte, bool) {}
	subs := []struct {
		name   string
		filter string
		qos    byte
		h      func(string, []byte, bool)
	}{
		{"empty filter", "", 0, h},
		{"hash not last", "a/#/b", 0, h},
		{"partial wildcard", "a/b+", 0, h},
		{"qos 3", "a/b", 3, h},
		{"nil handler", "a/b", 0, nil},
	}
	for _, tc := range subs {
		unsub, err := bus.Subscribe(tc.filter, tc.qos, tc.h)
		if err == nil {
			unsub()
			t.Errorf("Subscribe %s: got nil error, want one", tc.name)
		}
	}
	pubs := []struct {
		name  string
		topic string
		qos   byte
	}{
		{"empty topic", "", 0},
		{"wildcard", "a/+", 0},
		{"hash", "a/#", 0},
		{"qos 3", "a/b", 3},
		{"dollar", "$SYS/fake", 0},
	}
	for _, tc := range pubs {
		if err := bus.Publish(tc.topic, []byte("x"), tc.qos, false); err == nil {
			t.Errorf("Publish %s: got nil error, want one", tc.name)
		}
	}
}
