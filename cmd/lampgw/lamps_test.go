package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/api"
	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/testwait"
)

// startLampsGateway starts a gateway with a users file (admin, password
// "admin-pw"), a devices file naming "kitchen", and a raw-socket lamp
// kitchen that has reported; it returns the HTTP address.
func startLampsGateway(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	hash, err := auth.HashPassword([]byte("admin-pw"), 4)
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.yaml")
	devices := filepath.Join(dir, "devices.yaml")
	for path, content := range map[string]string{
		users:   "users:\n" + auth.FormatUser(auth.User{Name: "admin", Role: auth.RoleAdmin, Hash: hash}) + "\n",
		devices: "devices:\n  - {id: kitchen, name: Kitchen}\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := startTestGateway(t, gateway.Options{
		HTTPAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0",
		UsersFile: users, DevicesFile: devices, Logger: zerolog.Nop(),
	})
	lamp, err := net.Dial("tcp", g.Addrs().Bridge.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lamp.Close() })
	fmt.Fprint(lamp, "HELLO kitchen\nbrightness=512 ambient=830 mode=auto\n")
	addr := g.Addrs().HTTP.String()
	testwait.Until(t, "kitchen's report in the API", func() bool {
		lamps, err := fetchLamps(context.Background(), addr, "admin", "admin-pw")
		return err == nil && len(lamps) == 1 && string(lamps[0].Reported["mode"]) == `"auto"`
	})
	return addr
}

func TestLamps(t *testing.T) {
	t.Parallel()
	addr := startLampsGateway(t)
	_, port, _ := net.SplitHostPort(addr)
	// The row of kitchen, split on spaces.
	row := []string{"kitchen", "Kitchen", "online", "512/1023", "830", "auto", "-"}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string // in stderr; "" means stderr is empty
	}{
		{name: "flags", args: []string{"--http-addr", addr, "-u", "admin", "-p", "admin-pw"}},
		{name: "flags with =, after", args: []string{"--http-addr=" + addr, "--user=admin", "--password=admin-pw"}},
		{name: "environment", env: map[string]string{"LAMPGW_HTTP_ADDR": ":" + port, "LAMPGW_USER": "admin", "LAMPGW_PASSWORD": "admin-pw"}},
		{name: "no login", args: []string{"--http-addr", addr}, wantCode: 1,
			wantErr: "401 Unauthorized: login required: users are configured (--allow-anonymous lets anonymous clients in as viewers) (log in with -u and -p, or LAMPGW_USER and LAMPGW_PASSWORD)"},
		{name: "wrong password", args: []string{"--http-addr", addr, "-u", "admin", "-p", "nope"}, wantCode: 1,
			wantErr: "401 Unauthorized: login refused: bad user name or password"},
		{name: "HTTP off", args: []string{"--http-addr", "off"}, wantCode: 1, wantErr: "http-addr is off"},
		{name: "bad flag", args: []string{"--no-such-flag"}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "-u without a value", args: []string{"-u"}, wantCode: 2, wantErr: "flag needs an argument: -u"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(context.Background(), append([]string{cmdLamps}, tc.args...), getenv, &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("code: got %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if tc.wantErr == "" {
				if stderr.Len() > 0 {
					t.Fatalf("stderr: got %q, want nothing", stderr.String())
				}
				lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") {
					t.Fatalf("stdout: got %q, want a header and one lamp", stdout.String())
				}
				if got := strings.Fields(lines[1]); !slices.Equal(got[:len(row)], row) || !strings.HasSuffix(lines[1], "s ago") {
					t.Fatalf("row: got %q, want %q and a last seen", lines[1], row)
				}
				return
			}
			if !strings.HasPrefix(stderr.String(), "lampgw lamps: ") || !strings.Contains(stderr.String(), tc.wantErr) ||
				strings.Count(stderr.String(), "\n") != 1 {
				t.Fatalf("stderr: got %q, want one line with %q", stderr.String(), tc.wantErr)
			}
		})
	}
}

func TestLampsHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{cmdLamps, "-h"}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("code: got %d, want 0", code)
	}
	if !strings.Contains(stdout.String(), "Usage: lampgw lamps [-u user] [-p password] [flags]") {
		t.Fatalf("stdout: got %q", stdout.String())
	}
}

func TestSplitLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		args           []string
		user, password string
		rest           []string
	}{
		{"none", []string{"--http-addr", ":8080"}, "", "", []string{"--http-addr", ":8080"}},
		{"short", []string{"-u", "alice", "-p", "pw"}, "alice", "pw", nil},
		{"long with =", []string{"--user=alice", "--password=a=b"}, "alice", "a=b", nil},
		{"a flag's value that looks like -u", []string{"--topic-prefix", "-u", "-u", "bob"}, "bob", "", []string{"--topic-prefix", "-u"}},
		{"after a boolean flag", []string{"--allow-anonymous", "-u", "bob"}, "bob", "", []string{"--allow-anonymous"}},
		{"a flag with =", []string{"--http-addr=:1", "-p", "x"}, "", "x", []string{"--http-addr=:1"}},
		{"stops at an argument", []string{"extra", "-u", "bob"}, "", "", []string{"extra", "-u", "bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, password, rest, err := splitLogin(tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if user != tc.user || password != tc.password || !slices.Equal(rest, tc.rest) {
				t.Fatalf("got %q %q %q, want %q %q %q", user, password, rest, tc.user, tc.password, tc.rest)
			}
		})
	}
}

func TestPrintLamps(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	seen := now.Add(-90 * time.Second)
	var lamps []api.Lamp
	if err := json.Unmarshal([]byte(`[
		{"id":"z","online":false,"last_seen":null,"brightness_max":1023,"reported":{},"desired":{}},
		{"id":"a","name":"Hall","online":true,"brightness_max":255,"reported":{"brightness":7,"ambient":3,"mode":"manual","power":"on"},"desired":{}}
	]`), &lamps); err != nil {
		t.Fatal(err)
	}
	lamps[1].LastSeen = &seen
	var out bytes.Buffer
	printLamps(&out, lamps, now)
	want := "ID  NAME  AVAILABILITY  BRIGHTNESS  AMBIENT  MODE    POWER  LAST SEEN\n" +
		"a   Hall  online        7/255       3        manual  on     1m ago\n" +
		"z   -     offline       -           -        -       -      never\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
