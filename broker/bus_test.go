package broker

import (
	"github.com/lampgw/lampgw/internal/testwait"

	"errors"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/bustest"
)

// testLogger sends log lines to t.Log, so they show only for failures and
// -v.
func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// startBroker starts a broker on loopback port 0 and closes it when the
// test ends.
func startBroker(t *testing.T, opts Options) *Broker {
	t.Helper()
	opts.Logger = testLogger(t)
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestInlineBusConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.Bus {
		// A network listener too: Start publishes mochi's retained $SYS
		// topics, which the $-topic case needs.
		return startBroker(t, Options{MQTTAddr: "127.0.0.1:0"}).Bus()
	})
}

func TestInlineBusDropsWhenHandlerStuck(t *testing.T) {
	b := startBroker(t, Options{BusQueueSize: 4})
	bus := b.Bus()
	entered := make(chan struct{})
	gate := make(chan struct{})
	var calls atomic.Int32
	if _, err := bus.Subscribe("drop/t", 0, func(string, []byte, bool) {
		if calls.Add(1) == 1 {
			close(entered)
			<-gate
		}
	}); err != nil {
		t.Fatal(err)
	}
	defer close(gate)

	if err := bus.Publish("drop/t", []byte("0"), 0, false); err != nil {
		t.Fatal(err)
	}
	<-entered
	// The handler holds message 0; four more fit in the queue; five drop.
	// Publish itself never blocks on the stuck handler.
	for i := 1; i <= 9; i++ {
		if err := bus.Publish("drop/t", []byte(strconv.Itoa(i)), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := bus.Dropped(); got != 5 {
		t.Errorf("Dropped() = %d, want 5", got)
	}
}

// TestInlineBusReplayNotDropped checks that a retained replay larger than
// the queue is delivered whole: Subscribe waits for room instead of
// dropping.
func TestInlineBusReplayNotDropped(t *testing.T) {
	b := startBroker(t, Options{BusQueueSize: 2})
	bus := b.Bus()
	const n = 50
	for i := range n {
		if err := bus.Publish("replay/"+strconv.Itoa(i), []byte("v"), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, n)
	if _, err := bus.Subscribe("replay/+", 0, func(topic string, _ []byte, retained bool) {
		if retained {
			got <- topic
		}
	}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range n {
		select {
		case topic := <-got:
			seen[topic] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d replayed topics, want %d", len(seen), n)
		}
	}
	if len(seen) != n || bus.Dropped() != 0 {
		t.Errorf("got %d distinct topics and %d drops, want %d and 0", len(seen), bus.Dropped(), n)
	}
}

func TestInlineBusAfterClose(t *testing.T) {
	b := startBroker(t, Options{})
	bus := b.Bus()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish("a/b", nil, 0, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: got %v, want %v", err, ErrClosed)
	}
	if _, err := bus.Subscribe("a/b", 0, func(string, []byte, bool) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want %v", err, ErrClosed)
	}
}

// TestCloseStopsBusGoroutines checks that Close leaves no goroutine
// behind: every subscription's dispatch goroutine and mochi's own.
func TestCloseStopsBusGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	b, err := New(Options{MQTTAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	bus := b.Bus()
	delivered := make(chan struct{}, 10)
	for i := range 10 {
		unsub, err := bus.Subscribe("leak/"+strconv.Itoa(i), 0, func(string, []byte, bool) { delivered <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			unsub() // some gone before Close, some ended by it
		}
	}
	for i := 1; i < 10; i += 2 {
		if err := bus.Publish("leak/"+strconv.Itoa(i), []byte("x"), 0, false); err != nil {
			t.Fatal(err)
		}
		<-delivered
	}
	connectTCP(t, b.MQTTAddr().String(), "leak-client").Disconnect(0)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	testwait.Goroutines(t, before)
}

// BenchmarkInlinePublish measures one Publish reaching one subscription's
// queue, the cost a lamp report pays on the bridge's goroutine.
func BenchmarkInlinePublish(b *testing.B) {
	br, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	bus := br.Bus()
	done := make(chan struct{}, 1)
	var n atomic.Int64
	if _, err := bus.Subscribe("lamp/+/state", 0, func(string, []byte, bool) {
		if n.Add(1) == int64(b.N) {
			done <- struct{}{}
		}
	}); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"on":true,"brightness":512}`)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := bus.Publish("lamp/kitchen/state", payload, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	if bus.Dropped() == 0 {
		<-done
	}
}
