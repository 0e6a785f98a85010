// Package testwait holds the waits lampgw's tests share: polling a
// condition with a deadline, and checking that goroutines ended. Tests
// never sleep to wait for something; where no signal exists they poll
// here, and fail with what they waited for once the deadline passes.
package testwait

import (
	"runtime"
	"testing"
	"time"
)

// Timeout bounds every wait in this package.
const Timeout = 5 * time.Second

// Until polls cond every millisecond until it holds, failing t with what
// after Timeout.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Timeout, what)
		}
		<-tick.C
	}
}

// Goroutines waits until no more than before goroutines run, failing t
// with every goroutine's stack after Timeout. Take before with
// runtime.NumGoroutine at the start of the test.
func Goroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: got %d, want <= %d\n%s",
				runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}
