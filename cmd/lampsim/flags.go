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
	"time"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/flagenv"
	"github.com/lampgw/lampgw/internal/lampsim"
	"github.com/lampgw/lampgw/topics"
)

// Flag names; each is also the environment variable LAMPSIM_<NAME>.
const (
	flagCount         = "count"
	flagGateway       = "gateway"
	flagListen        = "listen"
	flagDialect       = "dialect"
	flagEOL           = "eol"
	flagIDPrefix      = "id-prefix"
	flagInterval      = "interval"
	flagHeartbeat     = "heartbeat"
	flagDay           = "day"
	flagSeed          = "seed"
	flagBrightnessMax = "brightness-max"
	flagLogLevel      = "log-level"
)

const envPrefix = "LAMPSIM_"

// maxCount bounds --count: each lamp holds a socket and three goroutines,
// and lampgw admits 10000 lamp connections by default.
const maxCount = 10000

// maxBrightnessMax is the devices file's limit for brightness_max.
const maxBrightnessMax = 65535

var (
	dialects  = map[string]bridge.Dialect{"text": bridge.DialectText, "json": bridge.DialectJSON}
	eols      = map[string]string{"lf": "\n", "crlf": "\r\n", "cr": "\r"}
	logLevels = []string{"debug", "info", "warn", "error"}
)

// options is everything lampsim was told, checked.
type options struct {
	// Gateway is the gateway's lamp address for dial-in mode; "" in
	// server mode.
	Gateway string
	// Listen is the first lamp's address for server mode; "" in dial-in
	// mode.
	Listen   string
	LogLevel string
	// Sim is handed to lampsim as it is, Logger aside.
	Sim lampsim.Options
}

// flagValues are the flags as typed, before they are checked and turned
// into options.
type flagValues struct {
	count           int
	gateway, listen string
	dialect, eol    string
	idPrefix        string
	interval, hbeat time.Duration
	day             time.Duration
	seed            uint64
	brightnessMax   int
	logLevel        string
}

func defaults() flagValues {
	return flagValues{
		count:         1,
		dialect:       "text",
		eol:           "lf",
		idPrefix:      lampsim.DefaultIDPrefix,
		interval:      lampsim.DefaultInterval,
		hbeat:         lampsim.DefaultHeartbeat,
		day:           lampsim.DefaultDay,
		brightnessMax: devices.DefaultBrightnessMax,
		logLevel:      "info",
	}
}

// newFlagSet binds v's fields to flags whose defaults are v's values. The
// set is silent: callers print usage and errors.
func newFlagSet(v *flagValues) *flag.FlagSet {
	fs := flag.NewFlagSet("lampsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.IntVar(&v.count, flagCount, v.count, fmt.Sprintf("how many lamps, 1..%d", maxCount))
	fs.StringVar(&v.gateway, flagGateway, v.gateway, "dial-in mode: the gateway's lamp `host:port`; each lamp says HELLO <id> first")
	fs.StringVar(&v.listen, flagListen, v.listen, "server mode: lamp 1 listens on `host:port`, the next on port+1, ...; no HELLO")
	fs.StringVar(&v.dialect, flagDialect, v.dialect, "`dialect` of reports: text|json")
	fs.StringVar(&v.eol, flagEOL, v.eol, "line `ending`: lf|crlf|cr")
	fs.StringVar(&v.idPrefix, flagIDPrefix, v.idPrefix, "lamp ids are `prefix` followed by 1, 2, ...")
	fs.DurationVar(&v.interval, flagInterval, v.interval, "how often a lamp reads its light sensor (`duration`)")
	fs.DurationVar(&v.hbeat, flagHeartbeat, v.hbeat, "a lamp reports its unchanged state after this much silence (`duration`)")
	fs.DurationVar(&v.day, flagDay, v.day, "length of a simulated day (`duration`); 10m shows the whole curve in 10 minutes")
	fs.Uint64Var(&v.seed, flagSeed, v.seed, "`seed` of the sensor noise; the same seed repeats a run")
	fs.IntVar(&v.brightnessMax, flagBrightnessMax, v.brightnessMax, fmt.Sprintf("top of the brightness range, 1..%d (some ESP8266 cores use 255)", maxBrightnessMax))
	fs.StringVar(&v.logLevel, flagLogLevel, v.logLevel, "`level`: "+strings.Join(logLevels, "|"))
	return fs
}

// envName is the environment variable of a flag: LAMPSIM_ and the flag in
// upper snake case, the rule lampgw's LAMPGW_ variables follow.
func envName(flagName string) string { return flagenv.Name(envPrefix, flagName) }

// parseArgs reads args (without the program name) and the environment
// through getenv, a flag beating its variable, and checks the result. It
// returns flag.ErrHelp for -h or --help, and otherwise an error of one
// line that starts with the flag it is about.
func parseArgs(args []string, getenv func(string) string) (options, error) {
	v := defaults()
	fs := newFlagSet(&v)
	// The environment goes first, through Set, so that the flags parsed
	// next override it. getenv, not os.Getenv, keeps this a pure function
	// that tests (and the Docker test checking compose files) can call.
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
		return options{}, fmt.Errorf("unexpected argument %q: lampsim takes only flags", fs.Arg(0))
	}
	return v.check()
}

// check validates what the flag package cannot and builds the options.
func (v flagValues) check() (options, error) {
	o := options{Gateway: v.gateway, Listen: v.listen, LogLevel: strings.ToLower(v.logLevel)}
	switch {
	case v.gateway == "" && v.listen == "":
		return o, fmt.Errorf("one of --%s (lamps dial in) or --%s (lamps wait for the gateway) is required", flagGateway, flagListen)
	case v.gateway != "" && v.listen != "":
		return o, fmt.Errorf("--%s and --%s exclude each other: run two lampsims for both", flagGateway, flagListen)
	case v.count < 1 || v.count > maxCount:
		return o, fmt.Errorf("%s: must be between 1 and %d, got %d", flagCount, maxCount, v.count)
	}
	if v.gateway != "" {
		if port, err := splitPort(v.gateway); err != nil || port == 0 {
			return o, fmt.Errorf("%s: must be host:port with a port 1..65535, like 127.0.0.1:7000; got %q", flagGateway, v.gateway)
		}
	} else {
		port, err := splitPort(v.listen)
		switch {
		case err != nil:
			return o, fmt.Errorf("%s: must be host:port with a numeric port, like :8888; got %q", flagListen, v.listen)
		case port == 0 && v.count > 1:
			return o, fmt.Errorf("%s: port 0 (any free port) works for --%s 1 only; give the first of %d ports", flagListen, flagCount, v.count)
		case port+v.count-1 > 65535:
			return o, fmt.Errorf("%s: %d lamps from port %d need ports up to %d, past 65535", flagListen, v.count, port, port+v.count-1)
		}
	}
	dialect, ok := dialects[strings.ToLower(v.dialect)]
	if !ok {
		return o, fmt.Errorf("%s: must be text or json, got %q", flagDialect, v.dialect)
	}
	eol, ok := eols[strings.ToLower(v.eol)]
	if !ok {
		return o, fmt.Errorf("%s: must be lf, crlf or cr, got %q", flagEOL, v.eol)
	}
	// The longest id is the last; if it is valid, all are.
	if last := v.idPrefix + strconv.Itoa(v.count); v.idPrefix == "" || !topics.ValidID(last) {
		return o, fmt.Errorf("%s: ids must match ^[A-Za-z0-9_-]{1,64}$ and the prefix must not be empty; %q makes %q", flagIDPrefix, v.idPrefix, last)
	}
	switch {
	case v.interval <= 0:
		return o, fmt.Errorf("%s: must be positive, got %v", flagInterval, v.interval)
	case v.hbeat < v.interval:
		return o, fmt.Errorf("%s: must be at least --%s (%v), got %v", flagHeartbeat, flagInterval, v.interval, v.hbeat)
	case v.day <= 0:
		return o, fmt.Errorf("%s: must be positive, got %v", flagDay, v.day)
	case v.brightnessMax < 1 || v.brightnessMax > maxBrightnessMax:
		return o, fmt.Errorf("%s: must be between 1 and %d, got %d", flagBrightnessMax, maxBrightnessMax, v.brightnessMax)
	}
	if !slices.Contains(logLevels, o.LogLevel) {
		return o, fmt.Errorf("%s: must be one of %s, got %q", flagLogLevel, strings.Join(logLevels, ", "), v.logLevel)
	}
	o.Sim = lampsim.Options{
		Count:         v.count,
		IDPrefix:      v.idPrefix,
		Dialect:       dialect,
		EOL:           eol,
		BrightnessMax: v.brightnessMax,
		Interval:      v.interval,
		Heartbeat:     v.hbeat,
		Day:           v.day,
		Seed:          v.seed,
	}
	return o, nil
}

// splitPort returns addr's numeric port.
func splitPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	return int(n), err
}

// printUsage writes the help text: every flag with its variable and
// default.
func printUsage(w io.Writer) {
	v := defaults()
	fs := newFlagSet(&v)
	fmt.Fprint(w, `Usage: lampsim --gateway host:port [flags]
       lampsim --listen host:port [flags]

lampsim simulates lamps for lampgw: a light sensor that follows the day,
brightness that follows it in auto mode, commands applied and reported.

Every flag can also be set by an environment variable (LAMPSIM_ + the flag
in upper snake case); a flag beats the environment.

`)
	flagenv.PrintTable(w, fs, envPrefix)
}
