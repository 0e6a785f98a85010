package lampbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/engine"
)

// env is what every scenario measures against.
type env struct {
	opts *Options
	log  zerolog.Logger
	// mqtt, bridge and http are the gateway's addresses.
	mqtt, bridge, http string
	// mosquitto is the Mosquitto broker for the direct figures; nil
	// without Options.Mosquitto.
	mosquitto *engine.Proc
	// tag makes client ids unique to this run, so that two lampbenches
	// against one target do not take over each other's sessions.
	tag string
}

// clientID is a unique MQTT client id for role.
func (e *env) clientID(role string) string { return "lampbench-" + e.tag + "-" + role }

// Run measures every selected scenario and returns the report. A
// scenario that fails is recorded in its section (Report.Failed) and the
// others still run; the error is for options and for what every
// scenario needs (the gateway, Mosquitto) failing to start.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	r := &Report{Started: time.Now(), Rounds: opts.Rounds, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Revision: revision()}
	e := &env{opts: &opts, log: opts.Logger, tag: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	if t := opts.Target; t != nil {
		e.mqtt, e.bridge, e.http = t.MQTT, t.Bridge, t.HTTP
		r.Target = "target mqtt " + t.MQTT + " bridge " + t.Bridge + " http " + t.HTTP
	} else {
		g, err := startGateway(0, 0)
		if err != nil {
			return nil, err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g.Shutdown(sctx)
		}()
		a := g.Addrs()
		e.mqtt, e.bridge, e.http = a.MQTT.String(), a.Bridge.String(), a.HTTP.String()
		r.Target = "in-process gateway"
	}
	if opts.Mosquitto && (opts.runs(Latency) || opts.runs(Throughput)) {
		dir, err := os.MkdirTemp("", "lampbench-mosquitto-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		p, err := engine.StartMosquitto(ctx, engine.MosquittoOptions{Dir: dir})
		if err != nil {
			return nil, fmt.Errorf("lampbench: mosquitto: %w", err)
		}
		defer p.Close()
		e.mosquitto = p
	}
	for _, name := range Scenarios {
		if !opts.runs(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		s := &Section{Name: name}
		r.Scenarios = append(r.Scenarios, s)
		e.log.Info().Str("scenario", name).Msg("start")
		sctx, cancel := context.WithTimeout(ctx, e.budget(name))
		err := scenarioFuncs[name](sctx, e, s)
		cancel()
		if err != nil {
			s.Err = oneLine(err)
			e.log.Warn().Str("scenario", name).Err(err).Msg("failed")
		}
	}
	r.Seconds = time.Since(r.Started).Seconds()
	r.finish()
	return r, nil
}

var scenarioFuncs = map[string]func(context.Context, *env, *Section) error{
	Latency:    runLatency,
	Throughput: runThroughput,
	Command:    runCommand,
	Fanout:     runFanout,
	Idle:       runIdle,
	Polling:    runPolling,
}

// budget bounds a scenario's run: generous against its nominal length,
// so that only a stuck scenario hits it.
func (e *env) budget(name string) time.Duration {
	o := e.opts
	per := time.Minute
	switch name {
	case Latency:
		per += 3 * 4 * o.LatencyDuration
	case Throughput:
		per += 2 * 20 * 4 * o.ThroughputStep
	case Idle:
		per += time.Duration(o.IdleCycles+2) * (30*time.Second + time.Duration(o.IdleLamps)*time.Millisecond)
	case Polling:
		per += 2*o.PollDuration + 4*o.PollInterval
	}
	return time.Duration(o.Rounds) * per
}

// startGateway starts an in-process gateway on loopback with the pacing
// limits off, as gateway/bench_test.go does: a benchmark sends far past
// --lamp-frame-rate and --lamp-max-rate, and paced it would measure the
// pacing. maxLamps and admitRate of 0 keep lampgw's defaults.
func startGateway(maxLamps int, admitRate float64) (*gateway.Gateway, error) {
	g, err := gateway.New(gateway.Options{
		MQTTAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		LampFrameRate: -1, LampMaxRate: -1,
		MaxLamps: maxLamps, LampAdmitRate: admitRate,
		Logger: zerolog.Nop(),
	})
	if err != nil {
		return nil, fmt.Errorf("lampbench: gateway: %w", err)
	}
	if err := g.Start(); err != nil {
		return nil, fmt.Errorf("lampbench: gateway: %w", err)
	}
	return g, nil
}

// revision is the VCS revision lampbench was built from, if known.
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// oneLine flattens err for a table cell and an exit message.
func oneLine(err error) string {
	s := err.Error()
	out := make([]rune, 0, len(s))
	for _, c := range s {
		if c == '\n' || c == '\r' {
			c = ' '
		}
		out = append(out, c)
	}
	return string(out)
}

// errLoss is a round whose messages did not all arrive where loss is not
// a figure.
var errLoss = errors.New("lampbench: messages lost")
