package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/internal/lampbench"
)

// env is a getenv over a map, so tests never touch the process's
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := lampbench.Defaults()
	b := o.Bench
	if o.JSON || o.LogLevel != "info" || b.Only != nil || b.Target != nil || b.Rounds != d.Rounds ||
		b.LatencyRate != 2000 || b.LatencyLamps != 100 || b.ThroughputLamps != 1000 || b.FanoutApps != 50 ||
		b.IdleLamps != 10000 || b.IdleCycles != 5 || b.PollInterval != time.Second || b.Mosquitto {
		t.Fatalf("defaults: got %+v", o)
	}

	// A flag beats its variable.
	o, err = parseArgs([]string{"--only", "latency, idle", "--rounds=5", "--json", "--target", "127.0.0.1", "--bridge-port", "7100", "--target-pid", "42"},
		env(map[string]string{"LAMPBENCH_ROUNDS": "7", "LAMPBENCH_MOSQUITTO": "true", "LAMPBENCH_LATENCY_RATE": "500", "LAMPBENCH_LOG_LEVEL": "WARN"}))
	if err != nil {
		t.Fatal(err)
	}
	b = o.Bench
	want := lampbench.Target{MQTT: "127.0.0.1:1883", Bridge: "127.0.0.1:7100", HTTP: "127.0.0.1:8080", Pid: 42}
	if !o.JSON || o.LogLevel != "warn" || b.Rounds != 5 || !b.Mosquitto || b.LatencyRate != 500 ||
		strings.Join(b.Only, ",") != "latency,idle" || b.Target == nil || *b.Target != want {
		t.Fatalf("got %+v, target %+v", o, b.Target)
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the error starts with this
	}{
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
		{"not a number", []string{"--rounds", "many"}, nil, "invalid value"},
		{"bad variable", nil, map[string]string{"LAMPBENCH_ROUNDS": "x"}, "rounds: invalid value"},
		{"unknown scenario", []string{"--only", "latency,speed"}, nil, "only:"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "log-level:"},
		{"port out of range", []string{"--target", "127.0.0.1", "--mqtt-port", "70000"}, nil, "mqtt-port:"},
		{"target with port", []string{"--target", "127.0.0.1:7000"}, nil, "target:"},
		{"pid without target", []string{"--target-pid", "1"}, nil, "target-pid:"},
		{"argument", []string{"fast"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args, env(tt.env))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error starting %q", err, tt.want)
			}
		})
	}
	if _, err := parseArgs([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v, want flag.ErrHelp", err)
	}
}

// TestRunExitCodes: a bad flag or size is 2 with one line on stderr, a
// failed scenario 1 with the table still printed.
func TestRunExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--rounds", "0x"}, env(nil), &out, &errb); code != 2 {
		t.Errorf("bad flag: got exit %d, want 2", code)
	}
	if code := run(context.Background(), []string{"--latency-lamps", "-3"}, env(nil), &out, &errb); code != 2 {
		t.Errorf("bad size: got exit %d, want 2", code)
	}
	if lines := strings.Split(strings.TrimSpace(errb.String()), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "lampbench: ") {
		t.Errorf("stderr: got %q, want one line per failure", errb.String())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nobody listens there now
	out.Reset()
	errb.Reset()
	p := strconv.Itoa
	code := run(context.Background(), []string{"--only", "command", "--rounds", "1", "--log-level", "error",
		"--target", "127.0.0.1", "--mqtt-port", p(port), "--bridge-port", p(port), "--http-port", p(port)}, env(nil), &out, &errb)
	if code != 1 {
		t.Errorf("failed scenario: got exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "FAILED") || !strings.HasPrefix(errb.String(), "lampbench: command: ") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("got stdout %q, stderr %q", out.String(), errb.String())
	}
}
