package soaktest

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/gateway"
)

var (
	soakFor  = flag.Duration("soak", 0, "how long TestSoak flaps lamps and sends commands; 0 means a short run for CI")
	soakSeed = flag.Uint64("soak-seed", 1, "seed of TestSoak's flapping and commands")
)

const (
	soakLamps = 500
	soakApps  = 4
	// soakShort is the flapping phase without -soak: long enough for
	// every lamp to flap a few times, short enough for CI under -race.
	soakShort = 6 * time.Second
	// soakLate lamps stay away from the first connection until the
	// flapping ends, so that commands expire for sure.
	soakLate = 10
	// soakConfirm and soakTTL are the gateway's --confirm-timeout and
	// --command-ttl: a lamp that stays away longer than soakTTL (some
	// do) has its commands expire.
	soakConfirm = 1500 * time.Millisecond
	soakTTL     = 3 * time.Second
	// soakTick is how often each app sends a command (or a burst).
	soakTick = 20 * time.Millisecond
	// soakMaxBrightness: brightness values are unique per lamp, drawn
	// from 0..1022; 1023 is every lamp's value at power-on.
	soakMaxBrightness = 1023
)

// soakLamp is a lamp's firmware: it applies every command frame and
// reports its whole state back, as lampsim does. Unlike lampsim it drops
// its connection when told to, and it remembers every value it applied,
// so that the end of the soak can check the gateway's acks against what
// the lamp really did.
type soakLamp struct {
	id   string
	addr string
	rng  *rand.Rand // its flapping; only run uses it
	// late lamps leave at once and stay away until the flapping ends.
	late bool
	// nextB and nextS number the brightness and scene values commanded
	// to this lamp, which are therefore unique.
	nextB, nextS atomic.Int64

	mu      sync.Mutex
	state   map[string]string
	applied map[string][]string // every value applied, by key, in order
	errs    []string            // lines from the gateway that were not commands
	conns   map[net.Conn]struct{}
	dials   int
	flaps   map[string]int
}

func newSoakLamp(n int, addr string, seed uint64) *soakLamp {
	return &soakLamp{
		id:      fmt.Sprintf("soak-%d", n),
		addr:    addr,
		rng:     rand.New(rand.NewPCG(seed, uint64(n))),
		state:   map[string]string{"brightness": strconv.Itoa(soakMaxBrightness), "scene": "boot"},
		applied: make(map[string][]string),
		conns:   make(map[net.Conn]struct{}),
		flaps:   make(map[string]int),
	}
}

// reportLocked is the lamp's whole state as one text frame.
func (l *soakLamp) reportLocked() string {
	keys := make([]string, 0, len(l.state))
	for k := range l.state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + l.state[k])
	}
	b.WriteByte('\n')
	return b.String()
}

// run keeps the lamp connecting and dropping its connection at random
// until calm is closed, then keeps it connected until ctx ends.
func (l *soakLamp) run(ctx context.Context, calm <-chan struct{}, readers *sync.WaitGroup) {
	defer l.closeAll(false)
	if l.late {
		l.closeAll(false)
		select {
		case <-ctx.Done():
			return
		case <-calm:
		}
	}
	timer := time.NewTimer(0)
	<-timer.C
	pause := func(d time.Duration) (calmed, done bool) {
		timer.Reset(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return false, true
		case <-calm:
			return true, false
		case <-timer.C:
			return false, false
		}
	}
	for {
		if !l.connect(ctx, readers, pause) {
			return
		}
		// Online for 0.2 s plus an exponential time, 1.5 s on average.
		calmed, done := pause(200*time.Millisecond + time.Duration(l.rng.ExpFloat64()*float64(1500*time.Millisecond)))
		if done {
			return
		}
		if calmed {
			<-ctx.Done()
			return
		}
		switch r := l.rng.Float64(); {
		case r < 0.2:
			// The lamp reboots faster than TCP notices: a new connection
			// while the old one is still open, which the gateway closes
			// (take-over).
			l.flap("takeover")
			continue
		case r < 0.4:
			l.flap("reset")
			l.closeAll(true)
		default:
			l.flap("close")
			l.closeAll(false)
		}
		// Offline for a moment, or (one time in ten) longer than the
		// command TTL.
		off := 20*time.Millisecond + time.Duration(l.rng.Float64()*float64(500*time.Millisecond))
		if l.rng.Float64() < 0.1 {
			off = soakTTL + time.Duration(l.rng.Float64()*float64(1500*time.Millisecond))
		}
		if _, done := pause(off); done {
			return
		}
	}
}

func (l *soakLamp) flap(how string) {
	l.mu.Lock()
	l.flaps[how]++
	l.mu.Unlock()
}

// connect dials the gateway, says HELLO and reports the lamp's state, as
// firmware does after every (re)connection; it retries a failed dial
// after a pause. It returns false when ctx ends first.
func (l *soakLamp) connect(ctx context.Context, readers *sync.WaitGroup, pause func(time.Duration) (bool, bool)) bool {
	d := net.Dialer{Timeout: wait}
	for {
		c, err := d.DialContext(ctx, "tcp", l.addr)
		if ctx.Err() != nil {
			if c != nil {
				c.Close()
			}
			return false
		}
		if err != nil {
			l.mu.Lock()
			l.errs = append(l.errs, "dial: "+err.Error())
			l.mu.Unlock()
			if _, done := pause(20 * time.Millisecond); done {
				return false
			}
			continue
		}
		l.mu.Lock()
		l.dials++
		l.conns[c] = struct{}{}
		c.SetWriteDeadline(time.Now().Add(wait))
		_, err = c.Write([]byte("HELLO " + l.id + "\n" + l.reportLocked()))
		l.mu.Unlock()
		if err != nil {
			// The gateway refused or dropped it at once; the reader
			// finds out and forgets it.
			l.mu.Lock()
			l.errs = append(l.errs, "hello: "+err.Error())
			l.mu.Unlock()
		}
		readers.Go(func() { l.read(c) })
		return true
	}
}

// read applies every command frame on c and reports the new state back,
// until c ends.
func (l *soakLamp) read(c net.Conn) {
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		l.mu.Lock()
		if strings.HasPrefix(line, "ERR ") {
			l.errs = append(l.errs, line)
			l.mu.Unlock()
			continue
		}
		for _, pair := range strings.Fields(line) {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				l.errs = append(l.errs, "not a command: "+line)
				continue
			}
			if ignored(k, v) {
				continue
			}
			l.state[k] = v
			if l.applied != nil {
				l.applied[k] = append(l.applied[k], v)
			}
		}
		// Under mu: reports leave in the order of the states they show.
		c.SetWriteDeadline(time.Now().Add(wait))
		c.Write([]byte(l.reportLocked()))
		l.mu.Unlock()
	}
}

// ignored reports whether the lamp ignores key=value, as firmware whose
// dimmer has coarser steps keeps its brightness for some values: the
// report that follows still shows the old value, so the command must not
// be confirmed.
func ignored(key, value string) bool {
	n, err := strconv.Atoi(value)
	return key == "brightness" && err == nil && n%19 == 7
}

// closeAll closes every connection of the lamp; abort sends a TCP RST
// instead of a FIN, as a lamp that loses power and comes back does.
func (l *soakLamp) closeAll(abort bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if tc, ok := c.(*net.TCPConn); ok && abort {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// forget drops the lamp's history of applied values.
func (l *soakLamp) forget() {
	l.mu.Lock()
	l.applied = nil
	l.mu.Unlock()
}

func (l *soakLamp) snapshot() (state map[string]string, applied map[string][]string, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	state = make(map[string]string, len(l.state))
	for k, v := range l.state {
		state[k] = v
	}
	applied = make(map[string][]string, len(l.applied))
	for k, v := range l.applied {
		applied[k] = slices.Clone(v)
	}
	return state, applied, slices.Clone(l.errs)
}

// soakCmd is one key of one command an app sent.
type soakCmd struct {
	lamp, key, value string
	rid              string // "" for a plain command
	topic            string
	seq              int64 // the order its app published in
}

// soakBook records what the apps sent and the acks they got.
type soakBook struct {
	mu sync.Mutex
	// sent by "lamp/key/value" (values are unique per lamp and key);
	// byRID by "rid/key", rejected commands under "rid/".
	sent  map[string]*soakCmd
	byRID map[string]*soakCmd
	want  []string // every "rid/key" that must end
	acks  map[string][]devices.AckStatus
	// confirmed holds, by "lamp/key", the confirmed values in the order
	// their acks arrived.
	confirmed map[string][]string
	strays    []string
	seq       int64
	counts    map[string]int
}

func newSoakBook() *soakBook {
	return &soakBook{
		sent:      make(map[string]*soakCmd),
		byRID:     make(map[string]*soakCmd),
		acks:      make(map[string][]devices.AckStatus),
		confirmed: make(map[string][]string),
		counts:    make(map[string]int),
	}
}

// record notes cmds, one command's keys, before it is published, so
// that an ack can never arrive before its command is known.
func (b *soakBook) record(kind string, cmds ...*soakCmd) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.counts[kind]++
	for _, c := range cmds {
		c.seq = b.seq
		if c.value != "" {
			b.sent[c.lamp+"/"+c.key+"/"+c.value] = c
		}
		if c.rid != "" {
			b.byRID[c.rid+"/"+c.key] = c
			b.want = append(b.want, c.rid+"/"+c.key)
		}
	}
}

// onAck is every app's handler for lamp/<id>/ack.
func (b *soakBook) onAck(_ paho.Client, m paho.Message) {
	var a struct {
		RID    string `json:"rid"`
		Key    string `json:"key"`
		Status string `json:"status"`
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := json.Unmarshal(m.Payload(), &a); err != nil {
		b.strays = append(b.strays, fmt.Sprintf("%s %q: %v", m.Topic(), m.Payload(), err))
		return
	}
	k := a.RID + "/" + a.Key
	c := b.byRID[k]
	if c == nil || m.Topic() != "lamp/"+c.lamp+"/ack" {
		b.strays = append(b.strays, fmt.Sprintf("%s %s", m.Topic(), m.Payload()))
		return
	}
	b.acks[k] = append(b.acks[k], devices.AckStatus(a.Status))
	if devices.AckStatus(a.Status) == devices.Confirmed {
		b.confirmed[c.lamp+"/"+c.key] = append(b.confirmed[c.lamp+"/"+c.key], c.value)
	}
}

// pending returns how many (rid, key)s have no final ack yet.
func (b *soakBook) pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, k := range b.want {
		if s := b.acks[k]; len(s) == 0 || !isFinal(s[len(s)-1]) {
			n++
		}
	}
	return n
}

// soakApp is a phone app commanding its share of the lamps and
// listening to their acks only: an app subscribed to lamp/# would get
// every report of 500 flapping lamps and overflow the broker's queue for
// it (broker.DefaultMaxClientWritesPending), which TestSlowSubscriber
// covers.
type soakApp struct {
	n     int
	c     paho.Client
	lamps []*soakLamp
	rng   *rand.Rand
	book  *soakBook
	rids  int
}

func (a *soakApp) rid() string {
	a.rids++
	return fmt.Sprintf("a%d-%d", a.n, a.rids)
}

// brightness returns the lamp's next unique brightness, or "" when they
// are used up (a long soak).
func brightness(l *soakLamp) string {
	if n := l.nextB.Add(1) - 1; n < soakMaxBrightness {
		return strconv.FormatInt(n, 10)
	}
	return ""
}

func scene(l *soakLamp) string { return "s" + strconv.FormatInt(l.nextS.Add(1), 10) }

// send publishes one random command to l: JSON with a rid (the most),
// an invalid one with a rid (rejected), or a plain value without.
func (a *soakApp) send(l *soakLamp) error {
	pub := func(topic, payload string) error {
		if tok := a.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
			return fmt.Errorf("publish %s: %v", topic, tok.Error())
		}
		return nil
	}
	set := "lamp/" + l.id + "/set"
	switch r := a.rng.Float64(); {
	case r < 0.03:
		rid := a.rid()
		a.book.record("invalid", &soakCmd{lamp: l.id, rid: rid, topic: set})
		return pub(set, `{"brightness":5000,"rid":"`+rid+`"}`)
	case r < 0.6:
		rid := a.rid()
		obj := map[string]any{"rid": rid}
		var cmds []*soakCmd
		if v := brightness(l); v != "" {
			obj["brightness"], _ = strconv.Atoi(v)
			cmds = append(cmds, &soakCmd{lamp: l.id, key: "brightness", value: v, rid: rid, topic: set})
		}
		if len(cmds) == 0 || a.rng.Float64() < 0.3 {
			v := scene(l)
			obj["scene"] = v
			cmds = append(cmds, &soakCmd{lamp: l.id, key: "scene", value: v, rid: rid, topic: set})
		}
		payload, _ := json.Marshal(obj)
		a.book.record("rid", cmds...)
		return pub(set, string(payload))
	case r < 0.8:
		if v := brightness(l); v != "" {
			topic := "lamp/" + l.id + "/brightness/set"
			a.book.record("plain", &soakCmd{lamp: l.id, key: "brightness", value: v, topic: topic})
			return pub(topic, v)
		}
		fallthrough
	default:
		v, topic := scene(l), "lamp/"+l.id+"/scene/set"
		a.book.record("plain", &soakCmd{lamp: l.id, key: "scene", value: v, topic: topic})
		return pub(topic, v)
	}
}

// run sends a command (one time in ten a burst of five to one lamp, a
// slider being dragged) every soakTick until stop is closed.
func (a *soakApp) run(t testing.TB, stop <-chan struct{}) {
	t.Helper()
	tick := time.NewTicker(soakTick)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		l := a.lamps[a.rng.IntN(len(a.lamps))]
		n := 1
		if a.rng.Float64() < 0.1 {
			n = 5
		}
		for range n {
			if err := a.send(l); err != nil {
				t.Errorf("app %d: %v", a.n, err)
				return
			}
		}
	}
}

// TestSoak runs 500 lamps that connect, drop and take over their
// connections at random while four apps send them random commands, most
// with request ids. Then the lamps calm down and reconnect, each app
// sends one last command per lamp as a barrier, and the test checks:
//
//   - every (rid, key) got exactly one final ack, after acks in an order
//     ackNext allows;
//   - a confirmed value was applied by its lamp, and a superseded or
//     expired one never was;
//   - each lamp holds the value of the last command confirmed for each
//     key, or of a command it applied after that one and that was not
//     published before it on the same topic;
//   - the gateway's view of each lamp is what the lamp holds;
//   - the heap in use at the end is within a generous bound of the heap
//     at the start, and no goroutine outlives the test.
//
// -soak=5m flaps for five minutes instead of a few seconds.
func TestSoak(t *testing.T) {
	leakCheck(t)
	flapFor := soakShort
	if *soakFor > 0 {
		flapFor = *soakFor
	}
	g, addrs := startGateway(t, func(o *gateway.Options) {
		o.ConfirmTimeout = soakConfirm
		o.CommandTTL = soakTTL
		// Take-overs hold two connections per lamp for a moment, all
		// from 127.0.0.1.
		o.MaxLampsPerAddr = 4 * soakLamps
		o.MaxLamps = 4 * soakLamps
	})
	sys := watchSys(t, addrs.MQTT)

	ctx, cancel := context.WithCancel(context.Background())
	calm := make(chan struct{})
	var lampsWG, readers sync.WaitGroup
	defer func() {
		cancel()
		lampsWG.Wait()
		readers.Wait()
	}()
	lamps := make([]*soakLamp, soakLamps)
	for i := range lamps {
		lamps[i] = newSoakLamp(i+1, addrs.Bridge.String(), *soakSeed)
		lamps[i].late = i < soakLate
	}

	book := newSoakBook()
	apps := make([]*soakApp, soakApps)
	for i := range apps {
		a := &soakApp{n: i, rng: rand.New(rand.NewPCG(*soakSeed, uint64(1000+i))), book: book}
		a.c = connectMQTT(t, addrs.MQTT, fmt.Sprintf("soak-app%d", i), nil)
		filters := make(map[string]byte)
		for j := i; j < len(lamps); j += soakApps {
			a.lamps = append(a.lamps, lamps[j])
			filters["lamp/"+lamps[j].id+"/ack"] = 1
		}
		subscribe(t, a.c, filters, book.onAck)
		apps[i] = a
	}

	reg := g.Registry()
	allOnline := func() bool {
		for _, l := range lamps {
			if d, ok := reg.Get(l.id); !ok || !d.Online {
				return false
			}
		}
		return true
	}
	// First every lamp connects once, calm, for the heap's baseline.
	calmStart := make(chan struct{})
	close(calmStart)
	var first sync.WaitGroup
	for _, l := range lamps {
		first.Go(func() {
			if !l.connect(ctx, &readers, func(time.Duration) (bool, bool) { return false, ctx.Err() != nil }) {
				return
			}
		})
	}
	first.Wait()
	until(t, 30*time.Second, "every lamp online", allOnline)
	heapStart := heapInuse()
	goroutinesStart := runtime.NumGoroutine()
	started := time.Now()

	for _, l := range lamps {
		// The first connection is taken over by the flapping one.
		lampsWG.Go(func() { l.run(ctx, calm, &readers) })
	}
	stop := make(chan struct{})
	var appsWG sync.WaitGroup
	for _, a := range apps {
		appsWG.Go(func() { a.run(t, stop) })
	}
	flapTimer := time.NewTimer(flapFor)
	<-flapTimer.C
	close(stop)
	appsWG.Wait()
	sys.fresh(t, 3*time.Second)
	droppedFlapping := sys.get("messages/dropped")
	close(calm)
	sent := time.Since(started)

	// The barrier: one last command per lamp, which the lamp confirms
	// only after it applied everything written before it.
	until(t, 30*time.Second, "every lamp online again", allOnline)
	sys.fresh(t, 3*time.Second)
	droppedCalm := sys.get("messages/dropped")
	// Paced: one app commanding 125 lamps back to back loses acks to the
	// broker's per-client queue (TestAckBurst), which is not what this
	// test is about.
	var barrier sync.WaitGroup
	for _, a := range apps {
		barrier.Go(func() {
			tick := time.NewTicker(4 * time.Millisecond)
			defer tick.Stop()
			for _, l := range a.lamps {
				<-tick.C
				rid := "sync-" + l.id
				book.record("sync", &soakCmd{lamp: l.id, key: "sync", value: "end", rid: rid, topic: "lamp/" + l.id + "/set"})
				if tok := a.c.Publish("lamp/"+l.id+"/set", 1, false, `{"sync":"end","rid":"`+rid+`"}`); !tok.WaitTimeout(wait) || tok.Error() != nil {
					t.Errorf("barrier for %s: %v", l.id, tok.Error())
					return
				}
			}
		})
	}
	barrier.Wait()
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		deadline := time.Now().Add(soakTTL + soakConfirm + 10*time.Second)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for book.pending() > 0 && time.Now().Before(deadline) {
			<-tick.C
		}
	}()
	<-ended
	settled := time.Since(started) - sent
	sys.fresh(t, 3*time.Second)
	dropped := sys.get("messages/dropped")
	if n := book.pending(); n > 0 {
		t.Errorf("%d (rid, key)s without a final ack; the broker dropped %d messages for slow clients", n, dropped)
	}

	checkSoak(t, lamps, book, reg)

	// Every lamp has one connection again, as at the start, plus its
	// run goroutine: the connections that flapped must be gone.
	goroutinesWant := goroutinesStart + soakLamps + 20
	until(t, wait, fmt.Sprintf("at most %d goroutines (%d before the flapping)", goroutinesWant, goroutinesStart), func() bool {
		return runtime.NumGoroutine() <= goroutinesWant
	})
	t.Logf("%d lamps flapped for %v: %d connections, flaps %v", soakLamps, sent.Round(time.Millisecond), sumDials(lamps), sumFlaps(lamps))
	t.Logf("commands: %v; all acks final %v after the last one", book.counts, settled.Round(time.Millisecond))
	t.Logf("broker: %d messages dropped for slow clients: %d while flapping, %d more as the lamps came back, %d more after the barrier",
		dropped, droppedFlapping, droppedCalm-droppedFlapping, dropped-droppedCalm)

	// The heap without the test's own records, which grow with the
	// commands sent, against the heap before anything flapped.
	for _, l := range lamps {
		l.forget()
	}
	*book = soakBook{}
	heapEnd := heapInuse()
	t.Logf("heap in use: %d KiB at the start, %d KiB at the end", heapStart>>10, heapEnd>>10)
	if heapEnd > 2*heapStart+16<<20 {
		t.Errorf("heap in use grew from %d KiB to %d KiB, want at most twice plus 16 MiB", heapStart>>10, heapEnd>>10)
	}
}

func sumDials(lamps []*soakLamp) int {
	n := 0
	for _, l := range lamps {
		l.mu.Lock()
		n += l.dials
		l.mu.Unlock()
	}
	return n
}

func sumFlaps(lamps []*soakLamp) map[string]int {
	m := make(map[string]int)
	for _, l := range lamps {
		l.mu.Lock()
		for k, v := range l.flaps {
			m[k] += v
		}
		l.mu.Unlock()
	}
	return m
}

// checkSoak holds TestSoak's checks on what the apps saw and the lamps
// did. It reports at most a few failures of each kind, and their count.
func checkSoak(t *testing.T, lamps []*soakLamp, book *soakBook, reg *devices.Registry) {
	t.Helper()
	failures := make(map[string]int)
	fail := func(kind, format string, args ...any) {
		t.Helper()
		if failures[kind]++; failures[kind] <= 5 {
			t.Errorf(kind+": "+format, args...)
		}
	}
	defer func() {
		for kind, n := range failures {
			if n > 5 {
				t.Errorf("%s: %d in all", kind, n)
			}
		}
	}()

	book.mu.Lock()
	defer book.mu.Unlock()
	for _, s := range book.strays {
		fail("stray ack", "%s", s)
	}
	statuses := make(map[devices.AckStatus]int)
	final := make(map[string]devices.AckStatus) // by "rid/key"
	for _, k := range book.want {
		seq := book.acks[k]
		if len(seq) == 0 {
			fail("no ack", "%s: command %+v never acked", k, *book.byRID[k])
			continue
		}
		if err := checkAcks(seq); err != nil {
			fail("ack order", "%s: %v", k, err)
		}
		final[k] = seq[len(seq)-1]
		statuses[seq[len(seq)-1]]++
	}
	t.Logf("final acks: %v", statuses)

	type lampView struct {
		state   map[string]string
		applied map[string][]string
	}
	views := make(map[string]lampView, len(lamps))
	for _, l := range lamps {
		state, applied, errs := l.snapshot()
		views[l.id] = lampView{state, applied}
		for _, e := range errs {
			fail("lamp got an error", "%s: %s", l.id, e)
		}
		// The gateway's view is the lamp's, after the barrier.
		if d, ok := reg.Get(l.id); !ok {
			fail("registry", "%s unknown", l.id)
		} else {
			for k, v := range state {
				if got := d.Reported[k].Text; got != v {
					fail("registry", "%s %s: gateway has %q, lamp holds %q", l.id, k, got, v)
				}
			}
		}
		for k, vs := range applied {
			seen := make(map[string]bool, len(vs))
			for _, v := range vs {
				if seen[v] {
					fail("applied twice", "%s %s=%s", l.id, k, v)
				}
				seen[v] = true
			}
		}
	}

	// What the lamp did with each command, by its final ack.
	for k, s := range final {
		c := book.byRID[k]
		if c.key == "" {
			continue // rejected before it had keys
		}
		applied := slices.Contains(views[c.lamp].applied[c.key], c.value)
		switch s {
		case devices.Confirmed:
			if !applied {
				fail("confirmed, never applied", "%s: %s=%s on %s", k, c.key, c.value, c.lamp)
			}
		case devices.Superseded, devices.Expired, devices.Rejected:
			if applied {
				fail(string(s)+", yet applied", "%s: %s=%s on %s", k, c.key, c.value, c.lamp)
			}
		}
	}

	// The lamp holds the last confirmed value, or one applied after it
	// that was not published before it on the same topic.
	after := make(map[string]int)
	for _, l := range lamps {
		v := views[l.id]
		for key, confirmed := range book.confirmed {
			lampID, k, _ := strings.Cut(key, "/")
			if lampID != l.id || len(confirmed) == 0 {
				continue
			}
			x, y := confirmed[len(confirmed)-1], v.state[k]
			if x == y {
				continue
			}
			cx, cy := book.sent[l.id+"/"+k+"/"+x], book.sent[l.id+"/"+k+"/"+y]
			hist := v.applied[k]
			ix, iy := slices.Index(hist, x), slices.Index(hist, y)
			switch {
			case cy == nil:
				fail("final value", "%s %s: holds %q, which nobody sent, after %q was confirmed", l.id, k, y, x)
			case iy < ix:
				fail("final value", "%s %s: holds %q, applied before the confirmed %q", l.id, k, y, x)
			case cy.topic == cx.topic && cy.seq < cx.seq:
				fail("final value", "%s %s: %q, published before the confirmed %q on %s, overwrote it", l.id, k, y, x, cx.topic)
			case cy.rid != "" && final[cy.rid+"/"+k] == devices.Confirmed:
				fail("final value", "%s %s: %q and %q both confirmed, acks not in the order applied", l.id, k, x, y)
			case cy.rid == "":
				after["a plain command"]++
			default:
				after["a command acked "+string(final[cy.rid+"/"+k])]++
			}
		}
	}
	t.Logf("lamp keys holding a value applied after the last confirmed one: %v", after)
	if statuses[devices.Confirmed] == 0 || statuses[devices.Superseded] == 0 || statuses[devices.Expired] == 0 || statuses[devices.Rejected] == 0 {
		t.Errorf("final acks %v: want confirmed, superseded, expired and rejected ones, the soak missed its point", statuses)
	}
}
