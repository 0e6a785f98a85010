package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/internal/testwait"
)

// env is a getenv over a map, so tests never touch the process's
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"--gateway", "127.0.0.1:7000"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o.Gateway != "127.0.0.1:7000" || o.Listen != "" || o.LogLevel != "info" {
		t.Fatalf("got %+v, want dial-in to 127.0.0.1:7000 at info", o)
	}
	s := o.Sim
	if s.Count != 1 || s.IDPrefix != "sim-" || s.Dialect != bridge.DialectText || s.EOL != "\n" ||
		s.Interval != time.Second || s.Heartbeat != 30*time.Second || s.Day != 24*time.Hour ||
		s.Seed != 0 || s.BrightnessMax != 1023 {
		t.Fatalf("defaults: got %+v", s)
	}

	// Every flag, some from the environment; a flag beats its variable.
	o, err = parseArgs(
		[]string{"--listen=:8888", "--count=3", "--dialect=JSON", "--eol", "crlf", "--day", "10m", "--seed", "42"},
		env(map[string]string{
			"LAMPSIM_COUNT":          "7",
			"LAMPSIM_ID_PREFIX":      "esp-",
			"LAMPSIM_INTERVAL":       "200ms",
			"LAMPSIM_HEARTBEAT":      "5s",
			"LAMPSIM_BRIGHTNESS_MAX": "255",
			"LAMPSIM_LOG_LEVEL":      "DEBUG",
		}))
	if err != nil {
		t.Fatal(err)
	}
	s = o.Sim
	if o.Listen != ":8888" || o.LogLevel != "debug" || s.Count != 3 || s.IDPrefix != "esp-" ||
		s.Dialect != bridge.DialectJSON || s.EOL != "\r\n" || s.Interval != 200*time.Millisecond ||
		s.Heartbeat != 5*time.Second || s.Day != 10*time.Minute || s.Seed != 42 || s.BrightnessMax != 255 {
		t.Fatalf("got %+v", o)
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the start of the error
	}{
		{"no mode", nil, nil, "one of --gateway"},
		{"both modes", []string{"--gateway", ":7000", "--listen", ":8888"}, nil, "--gateway and --listen exclude each other"},
		{"unknown flag", []string{"--gateway", ":7000", "--lamps", "3"}, nil, "flag provided but not defined: -lamps"},
		{"not a number", []string{"--gateway", ":7000", "--count", "many"}, nil, `invalid value "many" for flag -count`},
		{"zero lamps", []string{"--gateway", ":7000", "--count", "0"}, nil, "count: must be between 1 and 10000"},
		{"too many lamps", []string{"--gateway", ":7000", "--count", "10001"}, nil, "count: must be between 1 and 10000"},
		{"gateway without port", []string{"--gateway", "localhost"}, nil, "gateway: must be host:port"},
		{"gateway port 0", []string{"--gateway", "127.0.0.1:0"}, nil, "gateway: must be host:port"},
		{"listen without port", []string{"--listen", "8888"}, nil, "listen: must be host:port"},
		{"listen port 0 for many", []string{"--listen", ":0", "--count", "2"}, nil, "listen: port 0"},
		{"listen past 65535", []string{"--listen", ":65535", "--count", "2"}, nil, "listen: 2 lamps from port 65535"},
		{"dialect", []string{"--gateway", ":7000", "--dialect", "xml"}, nil, `dialect: must be text or json, got "xml"`},
		{"eol", []string{"--gateway", ":7000", "--eol", "nl"}, nil, `eol: must be lf, crlf or cr, got "nl"`},
		{"empty prefix", []string{"--gateway", ":7000", "--id-prefix", ""}, nil, "id-prefix:"},
		{"prefix makes a bad id", []string{"--gateway", ":7000", "--id-prefix", "a/"}, nil, "id-prefix:"},
		{"interval", []string{"--gateway", ":7000", "--interval", "0s"}, nil, "interval: must be positive"},
		{"heartbeat below interval", []string{"--gateway", ":7000", "--interval", "2s", "--heartbeat", "1s"}, nil, "heartbeat: must be at least --interval"},
		{"day", []string{"--gateway", ":7000", "--day", "-1h"}, nil, "day: must be positive"},
		{"brightness max", []string{"--gateway", ":7000", "--brightness-max", "0"}, nil, "brightness-max: must be between 1 and 65535"},
		{"log level", []string{"--gateway", ":7000", "--log-level", "loud"}, nil, "log-level: must be one of"},
		{"positional argument", []string{"--gateway", ":7000", "3"}, nil, `unexpected argument "3"`},
		{"bad environment", []string{"--gateway", ":7000"}, map[string]string{"LAMPSIM_SEED": "-1"}, `seed: invalid value "-1" in LAMPSIM_SEED`},
		{"environment alone can be wrong too", nil, map[string]string{"LAMPSIM_GATEWAY": ":7000", "LAMPSIM_LISTEN": ":8888"}, "--gateway and --listen exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args, env(tt.env))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want one line starting %q", err, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		if _, err := parseArgs([]string{arg}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: got %v, want flag.ErrHelp", arg, err)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, env(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("exit code: got %d, want 0", code)
	}
	for _, want := range []string{"--count", "LAMPSIM_COUNT", "--gateway", "--listen", "--dialect", "--eol", "--id-prefix", "--interval", "--heartbeat", "--day", "--seed", "--brightness-max", "--log-level"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("usage lacks %s:\n%s", want, stdout.String())
		}
	}
}

// oneLine checks that stderr is exactly one line "lampsim: <want...>".
func oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	if !strings.HasPrefix(stderr, "lampsim: "+want) || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Fatalf("stderr %q: want one line starting %q", stderr, "lampsim: "+want)
	}
}

func TestRunBadFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--gateway", ":7000", "--eol", "nl"}, env(nil), &stdout, &stderr); code != 2 {
		t.Fatalf("exit code: got %d, want 2", code)
	}
	oneLine(t, stderr.String(), `eol: must be lf, crlf or cr, got "nl"`)
}

func TestRunPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--listen", busy.Addr().String()}, env(nil), &stdout, &stderr); code != 1 {
		t.Fatalf("exit code: got %d, want 1", code)
	}
	oneLine(t, stderr.String(), "listen for sim-1:")
}

// run in dial-in mode connects, says HELLO, and returns 0 once its
// context ends, as it does on SIGINT or SIGTERM.
func TestRunUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--gateway", ln.Addr().String(), "--id-prefix", "cli-", "--log-level", "error"}, env(nil), &stdout, &stderr)
	}()

	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testwait.Timeout))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("lampsim did not dial in: %v", err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(testwait.Timeout))
	buf := make([]byte, len("HELLO cli-1\n"))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "HELLO cli-1\n" {
		t.Fatalf("first line: got %q (%v), want HELLO cli-1", buf, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 || stderr.Len() != 0 {
			t.Fatalf("exit code %d, stderr %q: want 0 and nothing", code, stderr.String())
		}
	case <-time.After(testwait.Timeout):
		t.Fatalf("run still running %v after cancel", testwait.Timeout)
	}
}
