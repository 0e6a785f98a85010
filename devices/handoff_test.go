package devices_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/testwait"
)

// handoffRegistry is a registry with a store and an ack log.
func handoffRegistry(t *testing.T) (*devices.Registry, *memStore, *ackLog) {
	t.Helper()
	st, log := &memStore{}, &ackLog{}
	r, err := devices.Open(devices.Options{Store: st, OnAck: log.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, st, log
}

func (m *memStore) get(id string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data[id]
}

// TestHandoffMovesPendingCommands plays a lamp moving between two bridges
// on one broker: A queued a command while the lamp was away, B restores
// A's record and writes it when the lamp connects there, and A lets the
// lamp go without ending the command or deleting its record.
func TestHandoffMovesPendingCommands(t *testing.T) {
	a, stA, logA := handoffRegistry(t)
	b, stB, logB := handoffRegistry(t)

	if err := a.Command("k", []devices.Command{rc("x", p("brightness", "7"))}); err != nil {
		t.Fatal(err)
	}
	rec := stA.get("k")
	if len(rec) == 0 {
		t.Fatal("A stored no record for its queued command")
	}
	if err := b.Restore("k", rec); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	// The same record again (a retained replay after a reconnect) must
	// not queue the command twice.
	if err := b.Restore("k", rec); err != nil {
		t.Fatalf("Restore again: %v", err)
	}
	h := &holder{}
	b.Attach("k", h, nil)
	testwait.Until(t, "B writes the command", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.delivered) > 0
	})
	h.mu.Lock()
	got := h.delivered
	h.mu.Unlock()
	if want := [][]devices.Pair{{p("brightness", "7")}}; !reflect.DeepEqual(got, want) {
		t.Errorf("B wrote %v, want %v", got, want)
	}
	testwait.Until(t, "B's record cleared after the write", func() bool { return len(stB.get("k")) == 0 })
	testwait.Until(t, "B acks written", func() bool {
		for _, s := range logB.get() {
			if s == "x written" {
				return true
			}
		}
		return false
	})

	if _, ok := a.Release("k"); !ok {
		t.Fatal("A did not know the lamp")
	}
	if _, ok := a.Get("k"); ok {
		t.Error("A still knows the lamp after Release")
	}
	if got, want := logA.get(), []string{"x queued"}; !reflect.DeepEqual(got, want) {
		t.Errorf("A's acks %q, want %q: Release must not end the command", got, want)
	}
	if len(stA.get("k")) == 0 {
		t.Error("Release deleted A's record; it belongs to the bridge holding the lamp now")
	}
	if _, ok := a.Release("k"); ok {
		t.Error("Release of an unknown lamp reported true")
	}
}

// TestRestoreKeepsNewerCommand: a record's command older than one pending
// here for the same key is not taken; a newer one supersedes it.
func TestRestoreKeepsNewerCommand(t *testing.T) {
	a, stA, _ := handoffRegistry(t)
	b, stB, logB := handoffRegistry(t)
	t0 := time.Now()
	a.Command("k", []devices.Command{{Pair: p("brightness", "1"), RID: "old", At: t0}})
	b.Command("k", []devices.Command{{Pair: p("brightness", "2"), RID: "new", At: t0.Add(time.Second)}})
	if err := b.Restore("k", stA.get("k")); err != nil {
		t.Fatal(err)
	}
	if got, want := logB.get(), []string{"new queued"}; !reflect.DeepEqual(got, want) {
		t.Errorf("B's acks %q, want %q: the older restored command must not replace the newer", got, want)
	}

	c, _, logC := handoffRegistry(t)
	c.Command("k", []devices.Command{{Pair: p("brightness", "0"), RID: "older", At: t0.Add(-time.Second)}})
	if err := c.Restore("k", stB.get("k")); err != nil {
		t.Fatal(err)
	}
	if got, want := logC.get(), []string{"older queued", "older superseded"}; !reflect.DeepEqual(got, want) {
		t.Errorf("C's acks %q, want %q", got, want)
	}
}

func TestRestoreRefusesGarbage(t *testing.T) {
	r, _, log := handoffRegistry(t)
	if err := r.Restore("k", []byte("{not json")); err == nil {
		t.Error("Restore took a record that is not JSON")
	}
	if _, ok := r.Get("k"); ok || len(log.get()) != 0 {
		t.Error("a bad record changed the registry")
	}
}
