package devices_test

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/testwait"
)

// ackLog records acks as "rid status" in the order the registry gave them.
type ackLog struct {
	mu   sync.Mutex
	acks []string
}

func (l *ackLog) add(a devices.Ack) {
	l.mu.Lock()
	l.acks = append(l.acks, a.Command.RID+" "+string(a.Status))
	l.mu.Unlock()
}

func (l *ackLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acks...)
}

// rc is a command with a request id.
func rc(rid string, pair devices.Pair) devices.Command {
	return devices.Command{Pair: pair, RID: rid}
}

// memStore is a devices.Store in memory.
type memStore struct {
	mu   sync.Mutex
	data map[string][]byte
	fail error
}

func (m *memStore) Put(id string, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.data == nil {
		m.data = make(map[string][]byte)
	}
	if len(b) == 0 {
		delete(m.data, id)
	} else {
		m.data[id] = append([]byte(nil), b...)
	}
	return nil
}

func (m *memStore) All(fn func(string, []byte) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, b := range m.data {
		if err := fn(id, b); err != nil {
			return err
		}
	}
	return nil
}

// TestAckStateMachine drives the registry through each path a command can
// take and checks the acks, in order.
func TestAckStateMachine(t *testing.T) {
	bright := func(n string) devices.Pair { return p("brightness", n) }
	tests := []struct {
		name string
		opts devices.Options
		run  func(t *testing.T, r *devices.Registry)
		want []string
	}{
		{
			name: "offline: queued, then written on connect, then confirmed",
			run: func(t *testing.T, r *devices.Registry) {
				r.Command("k", []devices.Command{rc("a", bright("7"))})
				h := &holder{}
				r.Attach("k", h, nil)
				waitAcks(t, r, "a written")
				r.Report("k", h, []devices.Pair{bright("7")}, nil)
			},
			want: []string{"a queued", "a written", "a confirmed"},
		},
		{
			name: "online: written, a different report confirms nothing, unconfirmed at the deadline",
			opts: devices.Options{ConfirmTimeout: 30 * time.Millisecond},
			run: func(t *testing.T, r *devices.Registry) {
				h := &holder{}
				r.Attach("k", h, nil)
				r.Command("k", []devices.Command{rc("a", bright("7"))})
				waitAcks(t, r, "a written")
				r.Report("k", h, []devices.Pair{bright("6")}, nil)
				waitAcks(t, r, "a unconfirmed")
			},
			want: []string{"a written", "a unconfirmed"},
		},
		{
			name: "offline: a newer command for the key supersedes the queued one",
			run: func(t *testing.T, r *devices.Registry) {
				r.Command("k", []devices.Command{rc("a", bright("1")), rc("a", ps("mode", "manual"))})
				r.Command("k", []devices.Command{rc("b", bright("2"))})
			},
			want: []string{"a queued", "a queued", "a superseded", "b queued"},
		},
		{
			name: "offline: expired after the TTL",
			opts: devices.Options{CommandTTL: 30 * time.Millisecond},
			run: func(t *testing.T, r *devices.Registry) {
				r.Command("k", []devices.Command{rc("a", bright("1"))})
				waitAcks(t, r, "a expired")
				if s, _ := r.Get("k"); len(s.Desired) != 0 {
					t.Errorf("desired after expiry: got %v, want none", s.Desired)
				}
			},
			want: []string{"a queued", "a expired"},
		},
		{
			name: "paced: a dragged slider writes the first and the last value",
			opts: devices.Options{MaxRate: 10},
			run: func(t *testing.T, r *devices.Registry) {
				h := &holder{}
				r.Attach("k", h, nil)
				for _, rid := range []string{"1", "2", "3", "4"} {
					r.Command("k", []devices.Command{rc(rid, bright(rid))})
				}
				waitAcks(t, r, "4 written")
				if got, want := h.deliveries(), [][]devices.Pair{{bright("1")}, {bright("4")}}; !reflect.DeepEqual(got, want) {
					t.Errorf("frames written: got %v, want %v", got, want)
				}
			},
			want: []string{"1 written", "1 unconfirmed", "2 superseded", "3 superseded", "4 written"},
		},
		{
			name: "a frame the connection never wrote is queued again",
			run: func(t *testing.T, r *devices.Registry) {
				h := &failingHolder{}
				r.Attach("k", h, nil)
				r.Command("k", []devices.Command{rc("a", bright("5"))})
				r.Detach("k", h, nil)
				h.fail() // as the session does for its queue after Detach
				waitAcks(t, r, "a queued")
				h2 := &holder{}
				r.Attach("k", h2, nil)
				waitAcks(t, r, "a written")
			},
			want: []string{"a queued", "a written"},
		},
		{
			name: "removed: pending commands expire",
			run: func(t *testing.T, r *devices.Registry) {
				r.Command("k", []devices.Command{rc("a", bright("5"))})
				r.Remove("k", nil)
			},
			want: []string{"a queued", "a expired"},
		},
		{
			name: "commands without a rid are acked too; the bridge decides what to publish",
			run: func(t *testing.T, r *devices.Registry) {
				r.Command("k", []devices.Command{{Pair: bright("5")}})
			},
			want: []string{" queued"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := &ackLog{}
			opts := tc.opts
			opts.OnAck = log.add
			r := devices.NewRegistry(opts)
			acks[r] = log
			defer delete(acks, r)
			tc.run(t, r)
			testwait.Until(t, "every ack", func() bool { return len(log.get()) >= len(tc.want) })
			// Acks of one command are in order; those of different
			// commands may interleave ("written" comes from the writer).
			if got, want := byRID(log.get()), byRID(tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("acks:\n got %q\nwant %q", log.get(), tc.want)
			}
		})
	}
}

// byRID groups "rid status" acks by rid, keeping their order.
func byRID(acks []string) map[string][]string {
	m := make(map[string][]string)
	for _, a := range acks {
		rid, status, _ := strings.Cut(a, " ")
		m[rid] = append(m[rid], status)
	}
	return m
}

// acks maps a registry under test to its ack log, for waitAcks; tests
// using it do not run in parallel.
var acks = map[*devices.Registry]*ackLog{}

// waitAcks waits until the registry's acks include want.
func waitAcks(t *testing.T, r *devices.Registry, want string) {
	t.Helper()
	testwait.Until(t, "ack "+want, func() bool {
		for _, a := range acks[r].get() {
			if a == want {
				return true
			}
		}
		return false
	})
}

// failingHolder takes frames and, when told, reports them not written,
// like a session whose connection ended with frames still queued.
type failingHolder struct {
	mu    sync.Mutex
	dones []func(bool)
}

func (h *failingHolder) Deliver(_ []devices.Pair, done func(bool)) bool {
	h.mu.Lock()
	h.dones = append(h.dones, done)
	h.mu.Unlock()
	return true
}

func (h *failingHolder) Kick() {}

func (h *failingHolder) fail() {
	h.mu.Lock()
	dones := h.dones
	h.dones = nil
	h.mu.Unlock()
	for _, d := range dones {
		d(false)
	}
}

func TestPendingCommandsStored(t *testing.T) {
	store := &memStore{}
	r, err := devices.Open(devices.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	r.Command("k", []devices.Command{rc("a", p("brightness", "9")), rc("a", ps("mode", "manual"))})
	if len(store.data) != 1 {
		t.Fatalf("stored records: got %d, want 1", len(store.data))
	}

	// A new registry over the same store has k's commands, and writes
	// them when k connects.
	log := &ackLog{}
	r2, err := devices.Open(devices.Options{Store: store, OnAck: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r2.Get("k"); !reflect.DeepEqual(s.Desired, []devices.Pair{p("brightness", "9"), ps("mode", "manual")}) {
		t.Fatalf("restored desired: got %v", s.Desired)
	}
	h := &holder{}
	r2.Attach("k", h, nil)
	if got := h.deliveries(); !reflect.DeepEqual(got, [][]devices.Pair{{p("brightness", "9"), ps("mode", "manual")}}) {
		t.Errorf("delivered after restore: got %v", got)
	}
	testwait.Until(t, "the record deleted once written", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return len(store.data) == 0
	})

	// An unreadable record is reported and skipped; a failing Put too.
	var storeErrs []string
	bad := &memStore{data: map[string][]byte{"x": []byte("{not json")}}
	r3, err := devices.Open(devices.Options{Store: bad, OnStoreError: func(id string, err error) { storeErrs = append(storeErrs, id) }})
	if err != nil {
		t.Fatal(err)
	}
	bad.fail = errors.New("disk full")
	r3.Command("y", []devices.Command{{Pair: p("brightness", "1")}})
	if want := []string{"x", "y"}; !reflect.DeepEqual(storeErrs, want) {
		t.Errorf("store errors: got %v, want %v", storeErrs, want)
	}
}

func TestCloseStopsTimers(t *testing.T) {
	log := &ackLog{}
	r := devices.NewRegistry(devices.Options{OnAck: log.add, CommandTTL: 20 * time.Millisecond, ConfirmTimeout: 20 * time.Millisecond})
	h := &holder{}
	r.Attach("on", h, nil)
	r.Command("on", []devices.Command{rc("a", p("brightness", "1"))})
	r.Command("off", []devices.Command{rc("b", p("brightness", "1"))})
	acks[r] = log
	defer delete(acks, r)
	waitAcks(t, r, "a written")
	r.Close()
	before := len(log.get())
	// Both deadlines pass; a witness registry, not closed, shows they
	// did (no sleep: its expiry is our clock).
	witness := &ackLog{}
	w := devices.NewRegistry(devices.Options{OnAck: witness.add, CommandTTL: 40 * time.Millisecond})
	w.Command("w", []devices.Command{rc("w", p("brightness", "1"))})
	testwait.Until(t, "the witness command expired", func() bool {
		for _, a := range witness.get() {
			if a == "w expired" {
				return true
			}
		}
		return false
	})
	if got := log.get(); len(got) != before {
		t.Errorf("acks after Close: got %q, want none after the first %d", got, before)
	}
	if s, _ := r.Get("off"); len(s.Desired) != 1 {
		t.Errorf("pending after Close: got %v, want kept", s.Desired)
	}
}
