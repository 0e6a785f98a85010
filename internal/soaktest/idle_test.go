package soaktest

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/gateway"
)

var (
	idleLamps  = flag.Int("idle-lamps", 10000, "how many lamps BenchmarkIdleLamps holds connected")
	idleCycles = flag.Int("idle-cycles", 5, "how many times BenchmarkIdleLamps drops and reconnects every lamp at once")
	idleHeap   = flag.String("idle-heap", "", "if set, BenchmarkIdleLamps writes the gateway's heap profile with every lamp connected to this file")
)

// gatewayProc is a gateway in a child process (this test binary, run as
// TestGatewayHelperProcess), so that its resident set size is the
// gateway's alone and not the lamps' too.
type gatewayProc struct {
	helperProc
	bridge string
}

func startGatewayProc(tb testing.TB, maxLamps int) *gatewayProc {
	tb.Helper()
	g := &gatewayProc{helperProc: startHelperProc(tb, "TestGatewayHelperProcess",
		"LAMPGW_GATEWAY_HELPER="+strconv.Itoa(maxLamps), "LAMPGW_GATEWAY_DATA="+tb.TempDir())}
	addr, err := g.do("addr")
	if err != nil {
		tb.Fatal(err)
	}
	g.bridge = addr
	return g
}

// do sends one command line and returns the helper's answer to it.
func (g *gatewayProc) do(cmd string) (string, error) {
	if _, err := fmt.Fprintln(g.in, cmd); err != nil {
		return "", err
	}
	for g.out.Scan() {
		switch line := g.out.Text(); {
		case strings.HasPrefix(line, "ok "):
			return strings.TrimPrefix(line, "ok "), nil
		case strings.HasPrefix(line, "error "):
			return "", fmt.Errorf("gateway helper: %s", strings.TrimPrefix(line, "error "))
		}
		// Anything else is the testing package's own output.
	}
	return "", fmt.Errorf("gateway helper ended: %v", g.out.Err())
}

// rss is the helper's resident set size in bytes, as the kernel counts
// it (/proc/<pid>/status), once the helper has collected garbage three
// times. An idle gateway collects every few seconds (mochi copies its
// whole retained store every second, clearExpiredRetainedMessages), and
// each collection halves the stack of an idle goroutine that uses less
// than a quarter of it, so this stands for the gateway after a few
// seconds idle. Freed memory is not forced back to the kernel
// (debug.FreeOSMemory): the collector's headroom counts.
func (g *gatewayProc) rss(tb testing.TB) int64 {
	tb.Helper()
	if _, err := g.do("gc"); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}

// mem returns the helper's Go heap and goroutine stacks in use.
func (g *gatewayProc) mem(tb testing.TB) (heap, stack int64) {
	tb.Helper()
	s, err := g.do("mem")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := fmt.Sscan(s, &heap, &stack); err != nil {
		tb.Fatalf("mem %q: %v", s, err)
	}
	return heap, stack
}

// TestGatewayHelperProcess is the gateway of startGatewayProc; it does
// nothing in a normal test run. It answers one line per command on
// stdin: addr (the lamp listener), online <n> (once n lamps are online),
// gc, goroutines, mem (heap and stacks in use, in bytes), heap <file> (a
// heap profile).
func TestGatewayHelperProcess(t *testing.T) {
	maxLamps, _ := strconv.Atoi(os.Getenv("LAMPGW_GATEWAY_HELPER"))
	if maxLamps == 0 {
		t.Skip("only run by startGatewayProc")
	}
	g, err := gateway.New(gateway.Options{
		MQTTAddr:   "127.0.0.1:0",
		BridgeAddr: "127.0.0.1:0",
		DataDir:    os.Getenv("LAMPGW_GATEWAY_DATA"),
		MaxLamps:   maxLamps,
		// As lampgw runs by default (cmd/lampgw --ha-discovery).
		HADiscovery: true,
		Logger:      zerolog.Nop(),
	})
	if err != nil {
		fmt.Printf("error %v\n", err)
		return
	}
	if err := g.Start(); err != nil {
		fmt.Printf("error %v\n", err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		g.Shutdown(ctx)
	}()
	reg := g.Registry()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		verb, arg, _ := strings.Cut(in.Text(), " ")
		var answer string
		var err error
		switch verb {
		case "addr":
			answer = g.Addrs().Bridge.String()
		case "online":
			n, _ := strconv.Atoi(arg)
			tick := time.NewTicker(2 * time.Millisecond)
			deadline := time.Now().Add(time.Minute)
			for reg.Online() != n && time.Now().Before(deadline) {
				<-tick.C
			}
			tick.Stop()
			if got := reg.Online(); got != n {
				err = fmt.Errorf("%d lamps online after a minute, want %d", got, n)
			}
		case "gc":
			for range 3 {
				runtime.GC()
			}
		case "goroutines":
			answer = strconv.Itoa(runtime.NumGoroutine())
		case "mem":
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			answer = fmt.Sprintf("%d %d", m.HeapInuse, m.StackInuse)
		case "heap":
			var f *os.File
			if f, err = os.Create(arg); err == nil {
				err = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
		} else {
			fmt.Printf("ok %s\n", answer)
		}
	}
}

// BenchmarkIdleLamps measures what an idle lamp costs the gateway: the
// gateway runs in a child process, -idle-lamps (10,000) lamps connect
// from this one (from 127.0.0.2 and up, 250 per address, under
// --max-lamps-per-addr), identify, report once and then only hold their
// sockets. Then every lamp drops at once and reconnects, -idle-cycles
// (5) times, as after power cuts. It reports
//
//   - bytes/lamp: the gateway's RSS with every lamp connected, less its
//     RSS before the first lamp, per lamp;
//   - growth%: how much that RSS grew from the first connection to the
//     last cycle's (a leak, or memory the runtime keeps);
//   - reconnect-s: the slowest cycle, from the first dial to every lamp
//     online; first-s is the first connection's.
//
// It needs twice -idle-lamps file descriptors between the two processes,
// and is too heavy for -race:
//
//	go test -run='^$' -bench=IdleLamps -benchtime=1x ./internal/soaktest
func BenchmarkIdleLamps(b *testing.B) {
	n := *idleLamps
	for range b.N {
		g := startGatewayProc(b, n+10)
		base := g.rss(b)
		heap0, stack0 := g.mem(b)
		f := &stormFleet{addr: g.bridge, n: n}
		connect := func() time.Duration {
			start := time.Now()
			if err := f.connect(); err != nil {
				b.Fatal(err)
			}
			if _, err := g.do("online " + strconv.Itoa(n)); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		first := connect()
		connected := g.rss(b)
		goroutines, _ := g.do("goroutines")
		heap1, stack1 := g.mem(b)
		if *idleHeap != "" {
			p, _ := filepath.Abs(*idleHeap)
			if _, err := g.do("heap " + p); err != nil {
				b.Fatal(err)
			}
		}
		var worst time.Duration
		var last int64
		for c := range *idleCycles {
			f.drop()
			if _, err := g.do("online 0"); err != nil {
				b.Fatal(err)
			}
			d := connect()
			worst = max(worst, d)
			last = g.rss(b)
			b.Logf("cycle %d: every lamp online after %v, RSS %.1f MB", c+1, d.Round(time.Millisecond), float64(last)/(1<<20))
		}
		f.drop()
		b.Logf("RSS %.1f MB before the lamps, %.1f MB with %d lamps (%s goroutines), %.1f MB after %d reconnections; first connection in %v",
			float64(base)/(1<<20), float64(connected)/(1<<20), n, goroutines, float64(last)/(1<<20), *idleCycles, first.Round(time.Millisecond))
		b.ReportMetric(float64(connected-base)/float64(n), "bytes/lamp")
		// Where they are: Go heap and goroutine stacks (the rest is
		// the collector's headroom, freed memory not yet returned, and
		// the runtime's own).
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/lamp")
		b.ReportMetric(float64(stack1-stack0)/float64(n), "stack-B/lamp")
		if *idleCycles > 0 {
			b.ReportMetric(100*float64(last-connected)/float64(connected), "growth%")
			b.ReportMetric(worst.Seconds(), "reconnect-s")
		}
		b.ReportMetric(first.Seconds(), "first-s")
	}
}
