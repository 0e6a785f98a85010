package soaktest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/gateway"
)

// stormLamps is 9,999 so that with the steady lamp the gateway holds
// 10,000 devices, its registry's size (devices.Options.MaxDevices, which
// gateway.Options does not set): one more device would be refused.
var stormLamps = flag.Int("storm-lamps", 9999, "how many lamps BenchmarkReconnectStorm connects at once")

const (
	// stormCI is TestReconnectStorm's fleet: under -race, where a
	// process may run at most 8128 goroutines and the gateway needs two
	// per lamp.
	stormCI = 1500
	// stormPerAddr lamps dial from each loopback address, under the
	// default --max-lamps-per-addr of 256.
	stormPerAddr = 250
	// stormEvery is the steady lamp's report interval.
	stormEvery = 10 * time.Millisecond
)

// stormFleet is n lamps that dial from 127.0.0.2 and up, say HELLO and
// report once, and then only hold their sockets, as lamps between two
// reports do.
type stormFleet struct {
	addr  string
	n     int
	conns []net.Conn
}

// connect dials every lamp at once and returns when each has sent its
// HELLO, or the first error.
func (f *stormFleet) connect() error {
	f.conns = make([]net.Conn, f.n)
	start := make(chan struct{})
	errs := make(chan error, f.n)
	var wg sync.WaitGroup
	for i := range f.n {
		wg.Go(func() {
			d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(i/stormPerAddr/250), byte(2+i/stormPerAddr%250))}}
			<-start
			c, err := d.Dial("tcp", f.addr)
			if err == nil {
				c.SetWriteDeadline(time.Now().Add(30 * time.Second))
				_, err = fmt.Fprintf(c, "HELLO storm-%d\nbrightness=%d\n", i, i%1024)
			}
			if err != nil {
				errs <- fmt.Errorf("lamp %d: %w", i, err)
				if c != nil {
					c.Close()
				}
				return
			}
			f.conns[i] = c
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	return <-errs
}

// drop resets every connection at once, as a power cut does.
func (f *stormFleet) drop() {
	for _, c := range f.conns {
		if c != nil {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}
	f.conns = nil
}

// fleet is what the storm measurement asks of a fleet, in this process
// or in a helper process.
type fleet interface {
	connect() error
	drop() error
}

type localFleet struct{ stormFleet }

func (f *localFleet) drop() error { f.stormFleet.drop(); return nil }

// remoteFleet is a stormFleet in a child process (this test binary, run
// as TestStormHelperProcess): each process may hold only so many file
// descriptors (ulimit -n), and 10,000 lamps need 10,000 on each side.
// helperProc is this test binary run again as a helper process (one
// Test*HelperProcess function), talked to by lines on stdin and stdout.
type helperProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startHelperProc starts the helper test run with env added, and waits
// for it when the test ends.
func startHelperProc(tb testing.TB, run string, env ...string) helperProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("%s: %v", run, err)
		}
	})
	return helperProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
}

type remoteFleet struct{ helperProc }

func startRemoteFleet(tb testing.TB, addr string, n int) *remoteFleet {
	tb.Helper()
	return &remoteFleet{startHelperProc(tb, "TestStormHelperProcess", "LAMPGW_STORM_HELPER="+addr, "LAMPGW_STORM_LAMPS="+strconv.Itoa(n))}
}

func (f *remoteFleet) do(verb string) error {
	if _, err := fmt.Fprintln(f.in, verb); err != nil {
		return err
	}
	for f.out.Scan() {
		switch line := f.out.Text(); {
		case line == "ok":
			return nil
		case strings.HasPrefix(line, "error "):
			return errors.New(strings.TrimPrefix(line, "error "))
		}
		// Anything else is the testing package's own output.
	}
	return fmt.Errorf("storm helper ended: %v", f.out.Err())
}

func (f *remoteFleet) connect() error { return f.do("connect") }
func (f *remoteFleet) drop() error    { return f.do("drop") }

// TestStormHelperProcess is the remote fleet; it does nothing in a
// normal test run.
func TestStormHelperProcess(t *testing.T) {
	addr := os.Getenv("LAMPGW_STORM_HELPER")
	if addr == "" {
		t.Skip("only run by startRemoteFleet")
	}
	n, _ := strconv.Atoi(os.Getenv("LAMPGW_STORM_LAMPS"))
	f := &stormFleet{addr: addr, n: n}
	defer f.drop()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var err error
		switch in.Text() {
		case "connect":
			err = f.connect()
		case "drop":
			f.drop()
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
		} else {
			fmt.Println("ok")
		}
	}
}

// stormResult is one storm's figures.
type stormResult struct {
	admitted            time.Duration // from the first dial to the last lamp online
	p50, p99, worst     time.Duration // the steady lamp's report delays meanwhile
	lost                int           // steady reports the app never got
	watcherGot, watcher int           // availability messages an app on lamp/+/availability got, of those published
}

func (r stormResult) String() string {
	return fmt.Sprintf("all online after %v; steady lamp's reports: p50 %v, p99 %v, max %v, %d lost; lamp/+/availability app got %d of %d",
		r.admitted.Round(time.Millisecond), r.p50, r.p99, r.worst, r.lost, r.watcherGot, r.watcher)
}

// reconnectStorm measures, on a gateway with n lamps' worth of room, n
// lamps connecting at once (first as new devices, then again after all
// of them dropped at once, as after a power cut) while a steady lamp
// reports every stormEvery to an app that timestamps each report.
func reconnectStorm(tb testing.TB, n int, remote bool) (first, again stormResult) {
	g, addrs := startGateway(tb, func(o *gateway.Options) {
		o.MaxLamps = n + 10
	})
	reg := g.Registry()

	// The steady lamp and its app.
	var sentAt [1000]atomic.Int64
	var (
		mu     sync.Mutex
		delays []time.Duration
		got    int
	)
	app := connectMQTT(tb, addrs.MQTT, "storm-app", nil)
	subscribe(tb, app, map[string]byte{"lamp/steady/brightness": 0}, func(_ paho.Client, m paho.Message) {
		v, err := strconv.Atoi(string(m.Payload()))
		if err != nil || v < 0 || v >= len(sentAt) {
			return
		}
		d := time.Since(time.Unix(0, sentAt[v].Load()))
		mu.Lock()
		delays = append(delays, d)
		got++
		mu.Unlock()
	})
	var onlines atomic.Int64
	watcher := connectMQTT(tb, addrs.MQTT, "storm-watcher", nil)
	subscribe(tb, watcher, map[string]byte{"lamp/+/availability": 0}, func(_ paho.Client, m paho.Message) {
		if string(m.Payload()) == "online" && strings.HasPrefix(m.Topic(), "lamp/storm-") {
			onlines.Add(1)
		}
	})
	steady := dialLamp(tb, "127.0.0.1", addrs.Bridge)
	steady.send(tb, "HELLO steady\n")
	ctx, cancel := context.WithCancel(context.Background())
	var sent atomic.Int64
	var reporter sync.WaitGroup
	reporter.Go(func() {
		tick := time.NewTicker(stormEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			v := i % len(sentAt)
			sentAt[v].Store(time.Now().UnixNano())
			steady.conn.SetWriteDeadline(time.Now().Add(wait))
			if _, err := fmt.Fprintf(steady.conn, "brightness=%d\n", v); err != nil {
				return
			}
			sent.Add(1)
		}
	})
	defer func() {
		cancel()
		reporter.Wait()
	}()

	var f fleet
	if remote {
		f = startRemoteFleet(tb, addrs.Bridge.String(), n)
	} else {
		lf := &localFleet{stormFleet{addr: addrs.Bridge.String(), n: n}}
		tb.Cleanup(lf.stormFleet.drop)
		f = lf
	}
	online := func(want bool) func() bool {
		return func() bool {
			for i := range n {
				if d, _ := reg.Get("storm-" + strconv.Itoa(i)); d.Online != want {
					return false
				}
			}
			return true
		}
	}
	measure := func() stormResult {
		mu.Lock()
		delays, got = delays[:0], 0
		mu.Unlock()
		sent0 := sent.Load()
		onlines.Store(0)
		start := time.Now()
		if err := f.connect(); err != nil {
			tb.Fatalf("storm: %v", err)
		}
		until(tb, 60*time.Second, fmt.Sprintf("%d lamps online", n), online(true))
		r := stormResult{admitted: time.Since(start), watcher: n}
		// Every report sent so far must arrive: the last ones within a
		// tick or two.
		sentN := int(sent.Load() - sent0)
		deadline := time.Now().Add(wait)
		tick := time.NewTicker(5 * time.Millisecond)
		for {
			mu.Lock()
			all := got >= sentN
			mu.Unlock()
			if all || time.Now().After(deadline) {
				break
			}
			<-tick.C
		}
		tick.Stop()
		mu.Lock()
		r.p50, r.p99, r.worst = quantiles(delays)
		r.lost = max(0, sentN-got)
		mu.Unlock()
		r.watcherGot = int(onlines.Load())
		return r
	}
	first = measure()
	if err := f.drop(); err != nil {
		tb.Fatal(err)
	}
	until(tb, 60*time.Second, fmt.Sprintf("%d lamps offline", n), online(false))
	again = measure()
	return first, again
}

// TestReconnectStorm connects 1,500 lamps at once, twice, and checks
// that a steady lamp's reports keep reaching an app meanwhile, promptly.
// BenchmarkReconnectStorm does the same with 10,000.
func TestReconnectStorm(t *testing.T) {
	leakCheck(t)
	first, again := reconnectStorm(t, stormCI, false)
	t.Logf("%d new lamps at once: %v", stormCI, first)
	t.Logf("%d lamps again after a power cut: %v", stormCI, again)
	for _, r := range []stormResult{first, again} {
		if r.worst > 5*time.Second || r.lost > 0 {
			t.Errorf("the steady lamp: %d reports lost, the slowest took %v to reach the app during the storm; want none lost, none over 5s", r.lost, r.worst)
		}
	}
}

// BenchmarkReconnectStorm is TestReconnectStorm at -storm-lamps (10,000),
// the lamps in a helper process. Too heavy for -race (over 8128
// goroutines), so:
//
//	go test -run='^$' -bench=ReconnectStorm -benchtime=1x ./internal/soaktest
func BenchmarkReconnectStorm(b *testing.B) {
	for range b.N {
		first, again := reconnectStorm(b, *stormLamps, true)
		b.Logf("%d new lamps at once: %v", *stormLamps, first)
		b.Logf("%d lamps again after a power cut: %v", *stormLamps, again)
		b.ReportMetric(first.admitted.Seconds(), "admit-s")
		b.ReportMetric(float64(first.worst.Milliseconds()), "steady-max-ms")
		b.ReportMetric(again.admitted.Seconds(), "readmit-s")
		b.ReportMetric(float64(again.worst.Milliseconds()), "steady-max-again-ms")
	}
}
