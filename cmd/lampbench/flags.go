package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/lampgw/lampgw/internal/flagenv"
	"github.com/lampgw/lampgw/internal/lampbench"
)

const envPrefix = "LAMPBENCH_"

var logLevels = []string{"debug", "info", "warn", "error"}

// options is everything lampbench was told, checked.
type options struct {
	JSON       bool
	LogLevel   string
	CPUProfile string
	Bench      lampbench.Options
}

// flagValues are the flags as typed.
type flagValues struct {
	only                       string
	json                       bool
	cpuProfile                 string
	logLevel                   string
	target                     string
	mqttPort, bridgePort, http int
	targetPid                  int
	b                          lampbench.Options
}

func defaults() flagValues {
	return flagValues{logLevel: "info", mqttPort: 1883, bridgePort: 7000, http: 8080, b: lampbench.Defaults()}
}

// newFlagSet binds v's fields to flags whose defaults are v's values. The
// set is silent: callers print usage and errors.
func newFlagSet(v *flagValues) *flag.FlagSet {
	fs := flag.NewFlagSet("lampbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	b := &v.b
	fs.StringVar(&v.only, "only", v.only, "comma-separated `scenarios` to run: "+strings.Join(lampbench.Scenarios, ",")+"; empty: all")
	fs.IntVar(&b.Rounds, "rounds", b.Rounds, "rounds per scenario; each figure has its median, min and max")
	fs.BoolVar(&b.Mosquitto, "mosquitto", b.Mosquitto, "also measure the direct paths through a Mosquitto that lampbench starts on loopback")
	fs.BoolVar(&v.json, "json", v.json, "print the report as JSON instead of a table")
	fs.StringVar(&v.cpuProfile, "cpuprofile", v.cpuProfile, "write a CPU profile of the whole run, in-process gateway included, to `file` (go tool pprof)")
	fs.StringVar(&v.logLevel, "log-level", v.logLevel, "progress on stderr: "+strings.Join(logLevels, "|"))
	fs.StringVar(&v.target, "target", v.target, "`host` of a running gateway to measure instead of an in-process one")
	fs.IntVar(&v.mqttPort, "mqtt-port", v.mqttPort, "the target's MQTT `port`")
	fs.IntVar(&v.bridgePort, "bridge-port", v.bridgePort, "the target's lamp `port`")
	fs.IntVar(&v.http, "http-port", v.http, "the target's HTTP `port`")
	fs.IntVar(&v.targetPid, "target-pid", v.targetPid, "the target's process id, for the idle scenario's RSS; 0: no RSS figures")
	fs.IntVar(&b.LatencyLamps, "latency-lamps", b.LatencyLamps, "latency: lamps")
	fs.Float64Var(&b.LatencyRate, "latency-rate", b.LatencyRate, "latency: frames per second across all lamps")
	fs.DurationVar(&b.LatencyDuration, "latency-duration", b.LatencyDuration, "latency: how long each path is measured per round")
	fs.IntVar(&b.ThroughputLamps, "throughput-lamps", b.ThroughputLamps, "throughput: lamps (and raw MQTT publishers for Mosquitto)")
	fs.Float64Var(&b.ThroughputStart, "throughput-start", b.ThroughputStart, "throughput: first offered rate, frames/s")
	fs.DurationVar(&b.ThroughputStep, "throughput-step", b.ThroughputStep, "throughput: length of each step of the search")
	fs.Float64Var(&b.ThroughputMax, "throughput-max", b.ThroughputMax, "throughput: highest rate tried, frames/s")
	fs.IntVar(&b.CommandCount, "command-count", b.CommandCount, "command: commands per round, one at a time")
	fs.IntVar(&b.CommandLamps, "command-lamps", b.CommandLamps, "command: lamps the commands go to in turn")
	fs.IntVar(&b.FanoutApps, "fanout-apps", b.FanoutApps, "fanout: apps subscribed to lamp/+/brightness")
	fs.IntVar(&b.FanoutFrames, "fanout-frames", b.FanoutFrames, "fanout: frames per round")
	fs.IntVar(&b.FanoutWindow, "fanout-window", b.FanoutWindow, "fanout: frames sent before waiting for every app")
	fs.IntVar(&b.IdleLamps, "idle-lamps", b.IdleLamps, "idle: connected idle lamps")
	fs.IntVar(&b.IdleCycles, "idle-cycles", b.IdleCycles, "idle: times every lamp disconnects and reconnects at once")
	fs.IntVar(&b.IdlePerAddr, "idle-per-addr", b.IdlePerAddr, "idle: lamps per source address 127.0.1.x")
	fs.Float64Var(&b.LampAdmitRate, "lamp-admit-rate", b.LampAdmitRate, "idle: the gateway process's --lamp-admit-rate; 0: lampgw's default, <0: none")
	fs.IntVar(&b.PollLamps, "poll-lamps", b.PollLamps, "polling: lamps, each polled by the app")
	fs.DurationVar(&b.PollInterval, "poll-interval", b.PollInterval, "polling: how often the app polls each lamp")
	fs.DurationVar(&b.PollDuration, "poll-duration", b.PollDuration, "polling: how long the lamps change per round")
	return fs
}

// parseArgs reads args (without the program name) and the environment
// through getenv, a flag beating its variable, and checks the result. It
// returns flag.ErrHelp for -h, and otherwise an error of one line.
func parseArgs(args []string, getenv func(string) string) (options, error) {
	v := defaults()
	fs := newFlagSet(&v)
	envErr := flagenv.Apply(fs, envPrefix, getenv)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return options{}, flag.ErrHelp
	case err != nil:
		return options{}, err
	case envErr != nil:
		return options{}, envErr
	case fs.NArg() > 0:
		return options{}, fmt.Errorf("unexpected argument %q: lampbench takes only flags", fs.Arg(0))
	}
	return v.check()
}

// check validates what the flag package cannot; the sizes are checked
// by lampbench.Run, whose ErrOptions main reports as a bad flag.
func (v flagValues) check() (options, error) {
	o := options{JSON: v.json, LogLevel: strings.ToLower(v.logLevel), CPUProfile: v.cpuProfile, Bench: v.b}
	if !slices.Contains(logLevels, o.LogLevel) {
		return o, fmt.Errorf("log-level: must be one of %s, got %q", strings.Join(logLevels, ", "), v.logLevel)
	}
	o.Bench.Only = nil
	for s := range strings.SplitSeq(v.only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(lampbench.Scenarios, s) {
			return o, fmt.Errorf("only: unknown scenario %q, want some of %s", s, strings.Join(lampbench.Scenarios, ","))
		}
		o.Bench.Only = append(o.Bench.Only, s)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"mqtt-port", v.mqttPort}, {"bridge-port", v.bridgePort}, {"http-port", v.http}} {
		if p.port < 1 || p.port > 65535 {
			return o, fmt.Errorf("%s: must be 1..65535, got %d", p.name, p.port)
		}
	}
	if v.target != "" {
		if strings.ContainsAny(v.target, ":/") && net.ParseIP(v.target) == nil {
			return o, fmt.Errorf("target: must be a host without a port (the ports are flags), got %q", v.target)
		}
		addr := func(port int) string { return net.JoinHostPort(v.target, strconv.Itoa(port)) }
		o.Bench.Target = &lampbench.Target{MQTT: addr(v.mqttPort), Bridge: addr(v.bridgePort), HTTP: addr(v.http), Pid: v.targetPid}
	} else if v.targetPid != 0 {
		return o, errors.New("target-pid: needs --target")
	}
	if v.targetPid < 0 {
		return o, fmt.Errorf("target-pid: must be a process id, got %d", v.targetPid)
	}
	return o, nil
}

// printUsage writes the help text: every flag with its variable and
// default.
func printUsage(w io.Writer) {
	v := defaults()
	fs := newFlagSet(&v)
	fmt.Fprint(w, `Usage: lampbench [flags]

lampbench measures lampgw (in-process, or --target) with lamps on raw TCP
and apps on MQTT, and prints a table of every figure's median, min and
max over --rounds rounds.

Every flag can also be set by an environment variable (LAMPBENCH_ + the
flag in upper snake case); a flag beats the environment.

`)
	flagenv.PrintTable(w, fs, envPrefix)
}
