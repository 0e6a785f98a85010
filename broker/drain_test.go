package broker

import (
	"context"
	"fmt"
	"testing"
)

// TestDrainSeesMochiQueue fails when a mochi upgrade renames the queue
// Drain reads, which would silently turn Drain into a no-op.
func TestDrainSeesMochiQueue(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	c := connectTCP(t, b.MQTTAddr().String(), "drain-probe")
	defer c.Disconnect(0)
	found := false
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.ID != "drain-probe" {
			continue
		}
		found = true
		if _, ok := outboundLen(cl); !ok {
			t.Fatal("outboundLen: mochi's ClientState.outbound is gone; Drain cannot see write queues")
		}
	}
	if !found {
		t.Fatal("client drain-probe not registered with mochi")
	}
}

func TestDrainDeliversBeforeClose(t *testing.T) {
	const n = 50 // below MaxClientWritesPending, so nothing is dropped
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	c := connectTCP(t, b.MQTTAddr().String(), "drain-app")
	defer c.Disconnect(0)
	got := pahoSub(t, c, "drain/#")
	for i := 0; i < n; i++ {
		if err := b.Bus().Publish("drain/x", []byte(fmt.Sprint(i)), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for i := 0; i < n; i++ {
		if m := next(t, "drain-app", got); m.payload != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q, want %q", i, m.payload, fmt.Sprint(i))
		}
	}
}
