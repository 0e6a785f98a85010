package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/gateway"
)

// startTestGateway starts a real gateway with opts and shuts it down
// when the test ends.
func startTestGateway(t *testing.T, opts gateway.Options) *gateway.Gateway {
	t.Helper()
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return g
}

// startHealthGateway starts a real gateway with only its HTTP listener,
// on 127.0.0.1, and returns that listener's port.
func startHealthGateway(t *testing.T) string {
	t.Helper()
	g := startTestGateway(t, gateway.Options{HTTPAddr: "127.0.0.1:0", Logger: zerolog.Nop()})
	_, port, err := net.SplitHostPort(g.Addrs().HTTP.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// refusedPort returns a loopback port that nothing listens on: it was
// bound and closed, so a connection to it is refused.
func refusedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	up := startHealthGateway(t)
	down := refusedPort(t)
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(status.Close)
	redirect := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusFound))
	t.Cleanup(redirect.Close)

	// "$UP" is the gateway's HTTP port, "$DOWN" a refused one, "$CONFIG"
	// a config file holding file.
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		file     string
		wantCode int
		wantErr  string // in stderr; "" means stderr is empty
	}{
		{name: "flag", args: []string{"--http-addr", "127.0.0.1:$UP"}},
		{name: "environment", env: map[string]string{"LAMPGW_HTTP_ADDR": "127.0.0.1:$UP"}},
		{name: "config file", args: []string{"--config", "$CONFIG"}, file: "http-addr: \"127.0.0.1:$UP\"\n"},
		{name: "config file from environment", env: map[string]string{"LAMPGW_CONFIG": "$CONFIG"}, file: "http-addr: \"127.0.0.1:$UP\"\n"},
		{name: "empty host is loopback", args: []string{"--http-addr", ":$UP"}},
		{name: "unspecified IPv4 is loopback", args: []string{"--http-addr", "0.0.0.0:$UP"}},
		{name: "unspecified IPv6 is loopback", args: []string{"--http-addr", "[::]:$UP"}},
		{name: "other settings as the gateway has them", args: []string{"--http-addr", ":$UP", "--mqtt-addr", "off", "--log-format", "json"}},
		{
			name: "refused", args: []string{"--http-addr", "127.0.0.1:$DOWN"},
			wantCode: 1, wantErr: "GET http://127.0.0.1:$DOWN/healthz: ",
		},
		{
			name: "not 200", args: []string{"--http-addr", status.Listener.Addr().String()},
			wantCode: 1, wantErr: "got 503 Service Unavailable, want 200 OK",
		},
		{
			name: "redirect is not followed", args: []string{"--http-addr", redirect.Listener.Addr().String()},
			wantCode: 1, wantErr: "got 302 Found, want 200 OK",
		},
		{
			name: "http-addr off", args: []string{"--http-addr", "off"},
			wantCode: 1, wantErr: "http-addr is off",
		},
		{
			name: "http-addr off in the environment", env: map[string]string{"LAMPGW_HTTP_ADDR": "off"},
			wantCode: 1, wantErr: "http-addr is off",
		},
		{
			// Exit 1, not 2: Docker reserves 2 of a health check.
			name: "bad flag", args: []string{"--http-adr", ":$UP"},
			wantCode: 1, wantErr: "flag provided but not defined: -http-adr",
		},
		{
			name: "bad value", args: []string{"--http-addr", "8080"},
			wantCode: 1, wantErr: "http-addr: must be host:port",
		},
		{
			name: "missing config file", args: []string{"--config", "$CONFIG"},
			wantCode: 1, wantErr: "config \"$CONFIG\"",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "lampgw.yaml")
			expand := strings.NewReplacer("$UP", up, "$DOWN", down, "$CONFIG", path).Replace
			if tc.file != "" {
				if err := os.WriteFile(path, []byte(expand(tc.file)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{cmdHealthcheck}
			for _, a := range tc.args {
				args = append(args, expand(a))
			}
			getenv := func(k string) string { return expand(tc.env[k]) }

			var stdout, stderr bytes.Buffer
			code := run(t.Context(), args, getenv, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
			if tc.wantErr == "" {
				if stderr.Len() != 0 {
					t.Errorf("stderr: got %q, want nothing", stderr.String())
				}
				return
			}
			got := stderr.String()
			if !strings.HasPrefix(got, "lampgw healthcheck: ") || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
				t.Errorf("stderr: got %q, want one line starting \"lampgw healthcheck: \"", got)
			}
			if want := expand(tc.wantErr); !strings.Contains(got, want) {
				t.Errorf("stderr: got %q, want it to contain %q", got, want)
			}
		})
	}
}

// TestHealthcheckTimeout: a listener that accepts and never answers makes
// the probe fail when its context ends, not hang.
func TestHealthcheckTimeout(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		defer close(accepted)
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close() // ends Accept if the probe never came
		for c := range accepted {
			c.Close()
		}
	})

	// The parent context ends first: healthcheckTimeout is 3 s, and
	// this test need not wait that long to see the same path.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{cmdHealthcheck, "--http-addr", ln.Addr().String()}, func(string) string { return "" }, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit code: got %d, want 1", code)
	}
	if want := "timed out waiting for an answer"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr: got %q, want it to contain %q", stderr.String(), want)
	}
}

func TestHealthzURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080/healthz"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080/healthz"},
		{"[::]:8080", "http://127.0.0.1:8080/healthz"},
		{"127.0.0.2:8080", "http://127.0.0.2:8080/healthz"},
		{"[::1]:8080", "http://[::1]:8080/healthz"},
		{"localhost:8080", "http://localhost:8080/healthz"},
	}
	for _, tc := range tests {
		if got := healthzURL(tc.addr); got != tc.want {
			t.Errorf("healthzURL(%q): got %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestHealthcheckUsage: both -h spellings show the subcommand, and help
// is not a failed probe.
func TestHealthcheckUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {cmdHealthcheck, "-h"}, {cmdHealthcheck, "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr); code != 0 {
			t.Errorf("%q: exit code: got %d, want 0", args, code)
		}
		if want := "lampgw healthcheck [flags]"; !strings.Contains(stdout.String(), want) {
			t.Errorf("%q: usage: got no %q in\n%s", args, want, stdout.String())
		}
		if stderr.Len() != 0 {
			t.Errorf("%q: stderr: got %q, want nothing", args, stderr.String())
		}
	}
}
