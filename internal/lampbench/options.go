package lampbench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Scenario names, in the order Run runs them.
const (
	Latency    = "latency"
	Throughput = "throughput"
	Command    = "command"
	Fanout     = "fanout"
	Idle       = "idle"
	Polling    = "polling"
)

// Scenarios lists every scenario in running order.
var Scenarios = []string{Latency, Throughput, Command, Fanout, Idle, Polling}

// Target is an already running gateway to measure instead of one started
// in-process. Pid, if not 0, is its process, whose RSS the idle scenario
// reads; without it idle reports no memory figures.
type Target struct {
	MQTT, Bridge, HTTP string
	Pid                int
}

// Options say what Run measures and how hard. Zero sizes mean the
// defaults of Defaults; cmd/lampbench fills them from flags.
type Options struct {
	// Only lists the scenarios to run; empty means all.
	Only []string
	// Rounds is how often each scenario repeats; each figure is reported
	// with its median, min and max over the rounds.
	Rounds int
	// Mosquitto adds the same direct paths through a Mosquitto broker
	// that Run starts on a free loopback port (internal/engine).
	Mosquitto bool
	// Target, if not nil, is measured instead of an in-process gateway.
	Target *Target

	// Latency: LatencyRate frames a second spread over LatencyLamps
	// lamps, for LatencyDuration per path and round.
	LatencyLamps    int
	LatencyRate     float64
	LatencyDuration time.Duration

	// Throughput: ThroughputLamps lamps; the offered rate starts at
	// ThroughputStart and each step lasts ThroughputStep; no rate above
	// ThroughputMax is tried.
	ThroughputLamps int
	ThroughputStart float64
	ThroughputStep  time.Duration
	ThroughputMax   float64

	// Command: CommandCount commands per round, one at a time, spread
	// over CommandLamps lamps.
	CommandCount int
	CommandLamps int

	// Fanout: FanoutFrames frames of one lamp to FanoutApps apps, in
	// windows of FanoutWindow frames.
	FanoutApps   int
	FanoutFrames int
	FanoutWindow int

	// Idle: IdleLamps lamps from source addresses 127.0.1.1 and up,
	// IdlePerAddr each, then IdleCycles reconnects of all of them.
	// IdlePerAddr is 100 by default so that a fleet reconnecting while
	// the gateway has not yet seen its old connections end stays under
	// --max-lamps-per-addr (256): old and new together, 200 an address.
	IdleLamps   int
	IdleCycles  int
	IdlePerAddr int
	// LampAdmitRate is the --lamp-admit-rate of the gateway process the
	// idle scenario starts: 0 is lampgw's default, < 0 no limit.
	LampAdmitRate float64

	// Polling: PollLamps lamps change at random moments for PollDuration
	// per round; an app polls each every PollInterval.
	PollLamps    int
	PollInterval time.Duration
	PollDuration time.Duration

	// Spawn returns the command that runs a child process of lampbench
	// (see Child): mode is "serve" or "serve-tcp", args its flags. The
	// idle scenario needs it unless Target is set.
	Spawn func(mode string, args ...string) *exec.Cmd
	// Logger hears progress at info.
	Logger zerolog.Logger
	// Stderr receives a child process's stderr; nil discards it.
	Stderr io.Writer
}

// Defaults are the sizes from issue 7.
func Defaults() Options {
	return Options{
		Rounds:          3,
		LatencyLamps:    100,
		LatencyRate:     2000,
		LatencyDuration: 5 * time.Second,
		ThroughputLamps: 1000,
		ThroughputStart: 4000,
		ThroughputStep:  time.Second,
		ThroughputMax:   400000,
		CommandCount:    5000,
		CommandLamps:    10,
		FanoutApps:      50,
		FanoutFrames:    5000,
		FanoutWindow:    100,
		IdleLamps:       10000,
		IdleCycles:      5,
		IdlePerAddr:     100,
		PollLamps:       10,
		PollInterval:    time.Second,
		PollDuration:    10 * time.Second,
	}
}

// ErrOptions is the family of invalid options.
var ErrOptions = errors.New("lampbench: invalid options")

// maxIdleLamps bounds IdleLamps by what 250 source addresses of 200 hold
// and what one process may open here (ulimit -n 20000).
const maxIdleLamps = 18000

// fill replaces zero sizes with the defaults and checks the result.
func (o *Options) fill() error {
	d := Defaults()
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&o.Rounds, d.Rounds)
	setInt(&o.LatencyLamps, d.LatencyLamps)
	setInt(&o.ThroughputLamps, d.ThroughputLamps)
	setInt(&o.CommandCount, d.CommandCount)
	setInt(&o.CommandLamps, d.CommandLamps)
	setInt(&o.FanoutApps, d.FanoutApps)
	setInt(&o.FanoutFrames, d.FanoutFrames)
	setInt(&o.FanoutWindow, d.FanoutWindow)
	setInt(&o.IdleLamps, d.IdleLamps)
	setInt(&o.IdleCycles, d.IdleCycles)
	setInt(&o.IdlePerAddr, d.IdlePerAddr)
	setInt(&o.PollLamps, d.PollLamps)
	for _, f := range []struct {
		p *float64
		v float64
	}{{&o.LatencyRate, d.LatencyRate}, {&o.ThroughputStart, d.ThroughputStart}, {&o.ThroughputMax, d.ThroughputMax}} {
		if *f.p == 0 {
			*f.p = f.v
		}
	}
	for _, f := range []struct {
		p *time.Duration
		v time.Duration
	}{{&o.LatencyDuration, d.LatencyDuration}, {&o.ThroughputStep, d.ThroughputStep}, {&o.PollInterval, d.PollInterval}, {&o.PollDuration, d.PollDuration}} {
		if *f.p == 0 {
			*f.p = f.v
		}
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, a...))
	}
	for _, s := range o.Only {
		if !slices.Contains(Scenarios, s) {
			return bad("unknown scenario %q, want some of %s", s, strings.Join(Scenarios, ","))
		}
	}
	switch {
	case o.Rounds < 1 || o.Rounds > 100:
		return bad("rounds must be 1..100, got %d", o.Rounds)
	case o.LatencyLamps < 1 || o.LatencyLamps > 10000:
		return bad("latency lamps must be 1..10000, got %d", o.LatencyLamps)
	case o.LatencyRate <= 0 || o.LatencyRate > 1e6:
		return bad("latency rate must be in (0, 1e6], got %v", o.LatencyRate)
	case o.LatencyDuration <= 0:
		return bad("latency duration must be positive, got %v", o.LatencyDuration)
	case o.ThroughputLamps < 1 || o.ThroughputLamps > 10000:
		return bad("throughput lamps must be 1..10000, got %d", o.ThroughputLamps)
	case o.ThroughputStart <= 0 || o.ThroughputMax < o.ThroughputStart:
		return bad("throughput start must be positive and at most the max, got %v and %v", o.ThroughputStart, o.ThroughputMax)
	case o.ThroughputStep <= 0:
		return bad("throughput step must be positive, got %v", o.ThroughputStep)
	case o.CommandCount < 1 || o.CommandLamps < 1 || o.CommandLamps > 1000:
		return bad("command count must be positive and command lamps 1..1000, got %d and %d", o.CommandCount, o.CommandLamps)
	case o.FanoutApps < 1 || o.FanoutApps > 1000 || o.FanoutFrames < 1 || o.FanoutWindow < 1:
		return bad("fanout apps must be 1..1000, frames and window positive, got %d, %d, %d", o.FanoutApps, o.FanoutFrames, o.FanoutWindow)
	case o.IdleLamps < 1 || o.IdleLamps > maxIdleLamps:
		return bad("idle lamps must be 1..%d, got %d", maxIdleLamps, o.IdleLamps)
	case o.IdleCycles < 0 || o.IdleCycles > 100:
		return bad("idle cycles must be 0..100, got %d", o.IdleCycles)
	case o.IdlePerAddr < 1 || o.IdlePerAddr > 256 || (o.IdleLamps+o.IdlePerAddr-1)/o.IdlePerAddr > 250:
		return bad("idle lamps per address must be 1..256 and need at most 250 addresses, got %d per address for %d lamps", o.IdlePerAddr, o.IdleLamps)
	case o.PollLamps < 1 || o.PollLamps > 1000 || o.PollInterval <= 0 || o.PollDuration <= 0:
		return bad("poll lamps must be 1..1000, interval and duration positive, got %d, %v, %v", o.PollLamps, o.PollInterval, o.PollDuration)
	}
	if t := o.Target; t != nil {
		for _, a := range []struct{ name, addr string }{{"mqtt", t.MQTT}, {"bridge", t.Bridge}, {"http", t.HTTP}} {
			if _, _, err := net.SplitHostPort(a.addr); err != nil {
				return bad("target %s address %q: %v", a.name, a.addr, err)
			}
		}
	}
	return nil
}

// runs reports whether scenario s is selected.
func (o *Options) runs(s string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, s)
}
