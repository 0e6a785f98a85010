package lampbench

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestCPUTime: cpuTime read from /proc agrees with getrusage for this
// process, after it has burned some CPU.
func TestCPUTime(t *testing.T) {
	pid := os.Getpid()
	t0, err := cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until /proc shows 200 ms more, at most 10 s of wall time.
	deadline := time.Now().Add(10 * time.Second)
	var now time.Duration
	for now < t0+200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("cpuTime went from %v to %v in 10 s of spinning", t0, now)
		}
		for i := 0; i < 1_000_000; i++ {
			sink += i
		}
		if now, err = cpuTime(pid); err != nil {
			t.Fatal(err)
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	rusage := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now, err = cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// /proc counts whole ticks (10 ms) and was read after getrusage.
	if d := rusage - now; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("cpuTime %v, getrusage %v", now, rusage)
	}
}

var sink int
