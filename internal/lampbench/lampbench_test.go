package lampbench_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/engine"
	"github.com/lampgw/lampgw/internal/lampbench"
)

// TestMain runs this test binary as lampbench's child process when the
// idle scenario starts one (see spawn).
func TestMain(m *testing.M) {
	if mode := os.Getenv("LAMPBENCH_TEST_CHILD"); mode != "" {
		args := strings.Fields(os.Getenv("LAMPBENCH_TEST_CHILD_ARGS"))
		if err := lampbench.Child(context.Background(), mode, args, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func spawn(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAMPBENCH_TEST_CHILD="+mode, "LAMPBENCH_TEST_CHILD_ARGS="+strings.Join(args, " "))
	return cmd
}

// tiny are sizes that run every scenario in seconds under -race.
func tiny(t *testing.T) lampbench.Options {
	return lampbench.Options{
		Rounds:          2,
		LatencyLamps:    4,
		LatencyRate:     200,
		LatencyDuration: 300 * time.Millisecond,
		ThroughputLamps: 20,
		ThroughputStart: 500,
		ThroughputStep:  200 * time.Millisecond,
		ThroughputMax:   2000,
		CommandCount:    50,
		CommandLamps:    3,
		FanoutApps:      5,
		FanoutFrames:    200,
		FanoutWindow:    20,
		IdleLamps:       50,
		IdleCycles:      1,
		IdlePerAddr:     20,
		PollLamps:       3,
		PollInterval:    100 * time.Millisecond,
		PollDuration:    time.Second,
		Spawn:           spawn,
		Logger:          zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
}

// rounds returns the figure's values, failing t if it is missing or has
// not one value per round.
func rounds(t *testing.T, r *lampbench.Report, scenario, name string, n int) []float64 {
	t.Helper()
	f := r.Figure(scenario, name)
	if f == nil {
		t.Fatalf("%s: no figure %q", scenario, name)
	}
	if len(f.Rounds) != n {
		t.Fatalf("%s %q: got %d rounds, want %d", scenario, name, len(f.Rounds), n)
	}
	for _, v := range f.Rounds {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("%s %q: got %v", scenario, name, f.Rounds)
		}
	}
	return f.Rounds
}

func zero(t *testing.T, r *lampbench.Report, scenario, name string, n int) {
	t.Helper()
	for i, v := range rounds(t, r, scenario, name, n) {
		if v != 0 {
			t.Errorf("%s %q round %d: got %v, want 0", scenario, name, i+1, v)
		}
	}
}

func ordered(t *testing.T, r *lampbench.Report, scenario string, n int, names ...string) {
	t.Helper()
	vals := make([][]float64, len(names))
	for i, name := range names {
		vals[i] = rounds(t, r, scenario, name, n)
	}
	for round := range n {
		if vals[0][round] <= 0 {
			t.Errorf("%s %q round %d: got %v, want > 0", scenario, names[0], round+1, vals[0][round])
		}
		for i := 1; i < len(names); i++ {
			if vals[i][round] < vals[i-1][round] {
				t.Errorf("%s round %d: %s %v < %s %v", scenario, round+1, names[i], vals[i][round], names[i-1], vals[i-1][round])
			}
		}
	}
}

// TestEveryScenario runs every scenario at tiny sizes against a real
// in-process gateway, a gateway process and a real Mosquitto, and checks
// that the figures are consistent: no loss at low rates, counts that
// match, percentiles in order, ratios of the same round's figures.
func TestEveryScenario(t *testing.T) {
	p, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir()})
	engine.Require(t, err) // skip without mosquitto unless CI is set
	p.Close()

	o := tiny(t)
	o.Mosquitto = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := lampbench.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	t.Logf("\n%s", table.String())
	for _, s := range r.Failed() {
		t.Errorf("%s failed: %s", s.Name, s.Err)
	}
	if len(r.Scenarios) != len(lampbench.Scenarios) {
		t.Fatalf("got %d scenarios, want %d", len(r.Scenarios), len(lampbench.Scenarios))
	}
	const n = 2

	for _, path := range []string{"gateway", "direct", "mosquitto"} {
		zero(t, r, lampbench.Latency, path+" lost", n)
		ordered(t, r, lampbench.Latency, n, path+" p50", path+" p99", path+" p999")
	}
	gw, dr := rounds(t, r, lampbench.Latency, "gateway p50", n), rounds(t, r, lampbench.Latency, "direct p50", n)
	mq := rounds(t, r, lampbench.Latency, "mosquitto p50", n)
	ratio, mratio := rounds(t, r, lampbench.Latency, "ratio p50 gateway/direct", n), rounds(t, r, lampbench.Latency, "ratio p50 gateway/mosquitto", n)
	for i := range n {
		if want := gw[i] / dr[i]; math.Abs(ratio[i]-want) > 1e-9*want {
			t.Errorf("round %d: ratio got %v, want %v / %v = %v", i+1, ratio[i], gw[i], dr[i], want)
		}
		if want := gw[i] / mq[i]; math.Abs(mratio[i]-want) > 1e-9*want {
			t.Errorf("round %d: mosquitto ratio got %v, want %v", i+1, mratio[i], want)
		}
	}

	for _, path := range []string{"gateway", "mosquitto"} {
		best := rounds(t, r, lampbench.Throughput, path+" max rate, zero loss", n)
		in := rounds(t, r, lampbench.Throughput, map[string]string{"gateway": "gateway frames/s in", "mosquitto": "mosquitto msgs/s in"}[path], n)
		out := rounds(t, r, lampbench.Throughput, path+" msgs/s out", n)
		for i := range n {
			// Some step passed: at least start/8 arrived whole, and the
			// step's own send rate backs its verdict (the delivery
			// rate may dip below it by one late message).
			if best[i] < o.ThroughputStart/8 || in[i] < 0.95*best[i] || out[i] <= 0 {
				t.Errorf("%s round %d: best %v frames/s with %v in, %v out", path, i+1, best[i], in[i], out[i])
			}
		}
	}
	tr := rounds(t, r, lampbench.Throughput, "ratio gateway/mosquitto", n)
	gb, mb := rounds(t, r, lampbench.Throughput, "gateway max rate, zero loss", n), rounds(t, r, lampbench.Throughput, "mosquitto max rate, zero loss", n)
	for i := range n {
		if tr[i] != gb[i]/mb[i] {
			t.Errorf("round %d: throughput ratio got %v, want %v", i+1, tr[i], gb[i]/mb[i])
		}
	}

	zero(t, r, lampbench.Command, "commands lost", n)
	ordered(t, r, lampbench.Command, n, "app /set to lamp socket p50", "app /set to lamp socket p99")

	zero(t, r, lampbench.Fanout, "deliveries lost", n)
	for i, v := range rounds(t, r, lampbench.Fanout, "deliveries/s", n) {
		if v <= 0 {
			t.Errorf("fanout round %d: %v deliveries/s", i+1, v)
		}
	}

	// RSS moves with the garbage collector; 50 lamps are too few for its
	// sign to mean anything, so only presence is checked.
	for _, name := range []string{"gateway RSS per lamp", "RSS growth after cycles", "baseline: plain Go server RSS per conn"} {
		rounds(t, r, lampbench.Idle, name, n)
	}
	for i, v := range rounds(t, r, lampbench.Idle, "gateway CPU with every lamp idle", n) {
		if v < 0 || v > float64(100*runtime.NumCPU()) {
			t.Errorf("idle CPU round %d: %v %% of a core with %d cores", i+1, v, runtime.NumCPU())
		}
	}
	for _, name := range []string{"first connect: all online after", "reconnect: all online after"} {
		for i, v := range rounds(t, r, lampbench.Idle, name, n) {
			if v <= 0 {
				t.Errorf("idle %s round %d: %v ms", name, i+1, v)
			}
		}
	}

	zero(t, r, lampbench.Polling, "changes never polled", n)
	zero(t, r, lampbench.Polling, "changes never pushed", n)
	ordered(t, r, lampbench.Polling, n, "push latency p50", "poll staleness p50")
	ordered(t, r, lampbench.Polling, n, "poll staleness p50", "poll staleness p99")
	for i, v := range rounds(t, r, lampbench.Polling, "changes", n) {
		if v < 3 {
			t.Errorf("polling round %d: %v changes, want some per lamp", i+1, v)
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil || !bytes.Contains(js.Bytes(), []byte(`"name": "latency"`)) {
		t.Errorf("json: %v\n%s", err, js.String())
	}
}

// TestFailedScenarioIsReported: a scenario that cannot run is recorded in
// its section and the others still run.
func TestFailedScenarioIsReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nobody listens there now
	o := tiny(t)
	o.Rounds = 1
	o.Only = []string{lampbench.Command, lampbench.Fanout}
	o.Target = &lampbench.Target{MQTT: dead, Bridge: dead, HTTP: dead}
	r, err := lampbench.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.Failed()); got != 2 {
		t.Fatalf("got %d failed scenarios, want 2: %+v", got, r.Scenarios)
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	if !strings.Contains(table.String(), "FAILED") {
		t.Errorf("table does not say FAILED:\n%s", table.String())
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*lampbench.Options)
	}{
		{"unknown scenario", func(o *lampbench.Options) { o.Only = []string{"latncy"} }},
		{"negative rounds", func(o *lampbench.Options) { o.Rounds = -1 }},
		{"too many idle lamps per address", func(o *lampbench.Options) { o.IdlePerAddr = 300 }},
		{"max below start", func(o *lampbench.Options) { o.ThroughputStart, o.ThroughputMax = 10, 5 }},
		{"bad target", func(o *lampbench.Options) { o.Target = &lampbench.Target{MQTT: "nohost"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tiny(t)
			tt.edit(&o)
			_, err := lampbench.Run(context.Background(), o)
			if !errors.Is(err, lampbench.ErrOptions) {
				t.Errorf("got %v, want ErrOptions", err)
			}
		})
	}
}
