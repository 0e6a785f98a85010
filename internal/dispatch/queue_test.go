package dispatch

import (
	"github.com/lampgw/lampgw/internal/testwait"

	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a handler call")
		panic("unreachable")
	}
}

func TestQueueOrder(t *testing.T) {
	const n = 1000
	got := make(chan string, n)
	q := New(func(topic string, payload []byte, retained bool) { got <- string(payload) }, Options{})
	defer q.Wait()
	defer q.Stop()

	// Several producers: order holds per producer, as the bus contract says.
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				if !q.Push(Message{Topic: "t", Payload: []byte(strconv.Itoa(p) + ":" + strconv.Itoa(i))}) {
					t.Errorf("Push returned false on a running queue")
				}
			}
		}()
	}
	wg.Wait()
	next := map[string]int{}
	for range n {
		s := recv(t, got)
		p, i, _ := bytes.Cut([]byte(s), []byte(":"))
		idx, _ := strconv.Atoi(string(i))
		if want := next[string(p)]; idx != want {
			t.Fatalf("producer %s: got message %d, want %d", p, idx, want)
		}
		next[string(p)]++
	}
}

func TestQueueDropsWhenFull(t *testing.T) {
	var total atomic.Int64
	var logs bytes.Buffer
	var mu sync.Mutex
	entered := make(chan struct{})
	release := make(chan struct{})
	q := New(func(topic string, payload []byte, retained bool) {
		if topic == "block" {
			close(entered)
			<-release
		}
	}, Options{Size: 2, Drops: &total, Logger: zerolog.New(lockedWriter{&mu, &logs})})
	defer q.Wait()
	defer q.Stop()

	q.TryPush(Message{Topic: "block"})
	<-entered // the goroutine now holds "block"; the channel is empty
	results := []bool{}
	for range 5 {
		results = append(results, q.TryPush(Message{Topic: "x"}))
	}
	close(release)

	want := []bool{true, true, false, false, false}
	for i := range want {
		if results[i] != want[i] {
			t.Fatalf("TryPush results = %v, want %v", results, want)
		}
	}
	if got := q.Dropped(); got != 3 {
		t.Errorf("Dropped() = %d, want 3", got)
	}
	if got := total.Load(); got != 3 {
		t.Errorf("shared drop counter = %d, want 3", got)
	}
	mu.Lock()
	defer mu.Unlock()
	// Rate limiting: three drops in a burst give one warning line.
	if got := bytes.Count(logs.Bytes(), []byte("message dropped")); got != 1 {
		t.Errorf("drop warnings logged = %d, want 1; log:\n%s", got, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestQueuePanicRecovered(t *testing.T) {
	got := make(chan string, 4)
	q := New(func(topic string, payload []byte, retained bool) {
		if string(payload) == "boom" {
			panic("handler bug")
		}
		got <- string(payload)
	}, Options{})
	defer q.Wait()
	defer q.Stop()

	q.TryPush(Message{Payload: []byte("boom")})
	q.TryPush(Message{Payload: []byte("after")})
	if s := recv(t, got); s != "after" {
		t.Errorf("got %q, want %q", s, "after")
	}
	if n := q.Recovered(); n != 1 {
		t.Errorf("Recovered() = %d, want 1", n)
	}
}

func TestQueueStopWhileHandlerRuns(t *testing.T) {
	var calls atomic.Int64
	entered := make(chan struct{})
	release := make(chan struct{})
	q := New(func(topic string, payload []byte, retained bool) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
	}, Options{})

	q.TryPush(Message{})
	<-entered
	q.TryPush(Message{}) // queued behind the running call
	q.TryPush(Message{})
	q.Stop()
	q.Stop() // idempotent
	if q.TryPush(Message{}) {
		t.Error("TryPush after Stop = true, want false")
	}
	if q.Push(Message{}) {
		t.Error("Push after Stop = true, want false")
	}
	close(release)
	q.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("handler calls = %d, want 1 (none after Stop)", got)
	}
}

func TestQueueStopFromHandler(t *testing.T) {
	var q *Queue
	var calls atomic.Int64
	ready := make(chan struct{})
	q = New(func(topic string, payload []byte, retained bool) {
		<-ready
		calls.Add(1)
		q.Stop()
	}, Options{})
	q.TryPush(Message{})
	q.TryPush(Message{})
	close(ready)
	q.Wait() // returns only if Stop from inside the handler did not deadlock
	if got := calls.Load(); got != 1 {
		t.Errorf("handler calls = %d, want 1", got)
	}
}

func TestQueuePushWaitsForRoom(t *testing.T) {
	release := make(chan struct{})
	got := make(chan int, 10)
	q := New(func(topic string, payload []byte, retained bool) {
		<-release
		got <- len(payload)
	}, Options{Size: 1})
	defer q.Wait()
	defer q.Stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5 {
			q.Push(Message{Payload: make([]byte, i)})
		}
	}()
	close(release)
	<-done
	for i := range 5 {
		if n := recv(t, got); n != i {
			t.Fatalf("got message %d, want %d", n, i)
		}
	}
}

func TestQueuePushUnblocksOnStop(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	q := New(func(topic string, payload []byte, retained bool) { <-release }, Options{Size: 1})
	q.Push(Message{}) // taken by the goroutine, which then blocks
	testwait.Until(t, "the goroutine to take the first message", func() bool { return len(q.ch) == 0 })
	q.Push(Message{}) // fills the channel

	res := make(chan bool)
	go func() { res <- q.Push(Message{}) }()
	q.Stop()
	if ok := recv(t, res); ok {
		t.Error("Push blocked on a full queue returned true after Stop, want false")
	}
}

func TestQueueWaitGroup(t *testing.T) {
	var wg sync.WaitGroup
	qs := []*Queue{}
	for range 3 {
		qs = append(qs, New(func(string, []byte, bool) {}, Options{WG: &wg}))
	}
	for _, q := range qs {
		q.Stop()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, done)
}
