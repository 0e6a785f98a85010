package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lampgw/lampgw/auth"
)

func TestUsersSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		configCase
		want string
	}{
		{configCase{name: "default"}, ""},
		{configCase{name: "flag", args: []string{"--users", "/etc/lampgw/users.yaml"}}, "/etc/lampgw/users.yaml"},
		{configCase{name: "environment", env: map[string]string{"LAMPGW_USERS": "env.yaml"}}, "env.yaml"},
		{configCase{name: "file", args: []string{"--config", "$CONFIG"}, file: "users: file.yaml\n"}, "file.yaml"},
		{configCase{name: "flag beats environment and file", args: []string{"--config", "$CONFIG", "--users", "flag.yaml"},
			env: map[string]string{"LAMPGW_USERS": "env.yaml"}, file: "users: file.yaml\n"}, "flag.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args, getenv, _ := tc.prepare(t)
			cfg, err := parseConfig(args, getenv)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.UsersFile != tc.want {
				t.Errorf("UsersFile: got %q, want %q", cfg.UsersFile, tc.want)
			}
		})
	}
}

// writeUsers writes a users file of "name role" entries, each password
// being name + "-pw".
func writeUsers(t *testing.T, path string, entries ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for _, e := range entries {
		name, roleName, _ := strings.Cut(e, " ")
		role, err := auth.ParseRole(roleName)
		if err != nil {
			t.Fatal(err)
		}
		h, err := auth.HashPassword([]byte(name+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(auth.FormatUser(auth.User{Name: name, Role: role, Hash: h}) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestProcessUsersFile: a broken users file stops lampgw at start with
// one line naming file, line and key (exit 2), and is refused on SIGHUP
// with one log line while the users in force stay.
func TestProcessUsersFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.yaml")
	broken := "users:\n  - name: alice\n    role: root\n"
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, lampgwBinary(t), "--users", path, "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "off",
		"--http-addr", "off", "--bridge-addr", "off", "--data-dir", t.TempDir())
	cmd.Env = cleanEnv()
	// Output keeps stderr in the ExitError.
	_, err := cmd.Output()
	exitErr, ok := errors.AsType[*exec.ExitError](err)
	if !ok || exitErr.ExitCode() != 2 {
		t.Fatalf("start with a broken users file: got %v, want exit status 2", err)
	}
	if want := fmt.Sprintf("lampgw: users: %s:3: role: want admin, app or viewer, got \"root\"\n", path); string(exitErr.Stderr) != want {
		t.Errorf("stderr:\ngot  %q\nwant %q", exitErr.Stderr, want)
	}

	writeUsers(t, path, "alice app")
	p, _ := startLampgw(t, "--users", path)
	if !slices.ContainsFunc(p.output.Lines(), func(line string) bool {
		return strings.Contains(line, `"message":"users file loaded"`) && strings.Contains(line, `"users":1`)
	}) {
		t.Errorf(`no "users file loaded" line with 1 user at start`)
	}
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	line := p.output.waitFor(t, "the broken users file refused", stepTimeout, func(line string) bool {
		return strings.Contains(line, "users file refused; the users in force stay")
	})
	if !strings.Contains(line, `role: want admin, app or viewer`) {
		t.Errorf("refusal line %s: want the reason", line)
	}
	stopLampgw(t, p, syscall.SIGTERM)
}

// needTools skips t when a tool is missing, or fails it when CI is set,
// where .ci/run has installed them.
func needTools(t *testing.T, pkg string, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s not found (Debian package %s; .ci/run installs it)", strings.Join(missing, " and "), pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TestProcessUsersMosquittoInterop drives lampgw with a users file
// through the real mosquitto_sub and mosquitto_pub with -u/-P: a viewer
// reads, an app commands, wrong and missing passwords read "not
// authorised", nobody fakes lamp state, and a viewer removed on SIGHUP is
// cut off.
func TestProcessUsersMosquittoInterop(t *testing.T) {
	t.Parallel()
	needTools(t, "mosquitto-clients", "mosquitto_sub", "mosquitto_pub")
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeUsers(t, path, "admin admin", "app app", "viewer viewer")
	gw, addrs := startLampgw(t, "--users", path)
	_, port, err := net.SplitHostPort(addrs["mqtt"])
	if err != nil {
		t.Fatal(err)
	}
	mqtt := []string{"-h", "127.0.0.1", "-p", port}

	sub := exec.Command("mosquitto_sub", append(mqtt, "-u", "viewer", "-P", "viewer-pw", "-t", "lamp/#", "-v", "-W", "120")...)
	subOut := newLineLog()
	sub.Stdout = subOut
	var subErr bytes.Buffer
	sub.Stderr = &subErr
	subProc := startProc(t, sub, subOut)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto_sub output:\n%s\nstderr:\n%s", strings.Join(subOut.Lines(), "\n"), subErr.String())
		}
	})
	// pub runs mosquitto_pub and returns its exit code and output.
	pub := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mosquitto_pub", append(mqtt, args...)...).CombinedOutput()
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			return exitErr.ExitCode(), string(out)
		case err != nil:
			t.Fatalf("mosquitto_pub %q: %v", args, err)
		}
		return 0, string(out)
	}

	// The lamp speaks lines; textproto writes them with "\r\n", which the
	// bridge takes as it takes "\n".
	conn, err := net.DialTimeout("tcp", addrs["bridge"], stepTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(startTimeout))
	lamp := textproto.NewConn(conn)
	send := func(frames ...string) {
		t.Helper()
		for _, f := range frames {
			if err := lamp.PrintfLine("%s", f); err != nil {
				t.Fatalf("lamp write %q: %v", f, err)
			}
		}
	}
	receive := func(want string) {
		t.Helper()
		if got, err := lamp.ReadLine(); err != nil || got != want {
			t.Fatalf("lamp read: got %q (%v), want %q", got, err, want)
		}
	}
	// seen waits for line on mosquitto_sub and returns the lines before.
	var lines []string
	seen := func(want string) {
		t.Helper()
		subOut.waitFor(t, want, stepTimeout, func(line string) bool {
			lines = append(lines, line)
			return line == want
		})
	}

	send("HELLO lamp1", "brightness=512")
	seen("lamp/lamp1/brightness 512")

	if code, out := pub("-u", "app", "-P", "app-pw", "-q", "1", "-t", "lamp/lamp1/brightness/set", "-m", "700"); code != 0 {
		t.Fatalf("app command: exit %d: %s", code, out)
	}
	receive("brightness=700")

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"wrong password, 3.1.1", []string{"-u", "app", "-P", "app-wrong"}},
		{"wrong password, 5", []string{"-V", "mqttv5", "-u", "app", "-P", "app-wrong"}},
		{"unknown user", []string{"-u", "mallory", "-P", "app-pw"}},
		{"anonymous", nil},
	} {
		code, out := pub(append(tc.args, "-t", "lamp/lamp1/brightness/set", "-m", "1")...)
		if code == 0 || !strings.Contains(strings.ToLower(out), "not authori") {
			t.Errorf("%s: got exit %d %q, want a failure saying not authorised", tc.name, code, out)
		}
	}

	// Fake state, from an admin, at QoS 0 (dropped), and at QoS 1 over
	// MQTT 5 (PUBACK "not authorized"); a viewer's command likewise.
	if code, out := pub("-u", "admin", "-P", "admin-pw", "-r", "-t", "lamp/lamp1/brightness", "-m", "999"); code != 0 {
		t.Errorf("admin fake at QoS 0: exit %d %q, want 0 (silently dropped)", code, out)
	}
	for _, args := range [][]string{
		{"-u", "admin", "-P", "admin-pw", "-t", "lamp/lamp1/brightness", "-m", "998"},
		{"-u", "viewer", "-P", "viewer-pw", "-t", "lamp/lamp1/brightness/set", "-m", "1"},
	} {
		if _, out := pub(append([]string{"-V", "mqttv5", "-q", "1"}, args...)...); !strings.Contains(out, "Not authorized") {
			t.Errorf("%q: got %q, want a publish refused as Not authorized", args, out)
		}
	}
	if code, out := pub("-u", "app", "-P", "app-pw", "-q", "1", "-t", "lamp/lamp1/brightness/set", "-m", "701"); code != 0 {
		t.Fatalf("app command: exit %d: %s", code, out)
	}
	receive("brightness=701") // not brightness=1: the viewer's never came
	send("brightness=513")
	seen("lamp/lamp1/brightness 513")
	for _, line := range lines {
		if strings.HasPrefix(line, "lamp/lamp1/brightness 99") {
			t.Errorf("mosquitto_sub: got %q, a state the lamp never reported", line)
		}
	}

	// SIGHUP without the viewer: its mosquitto_sub is cut off.
	writeUsers(t, path, "admin admin", "app app")
	gw.cmd.Process.Signal(syscall.SIGHUP)
	line := gw.output.waitFor(t, "the users file reloaded", stepTimeout, func(line string) bool {
		return strings.Contains(line, `"message":"users file loaded"`)
	})
	if !strings.Contains(line, `"users":2`) || strings.Contains(line, `"disconnected":[]`) {
		t.Errorf("reload line %s: want 2 users and the viewer disconnected", line)
	}
	select {
	case <-subProc.done:
	case <-time.After(stepTimeout):
		t.Errorf("mosquitto_sub as the removed viewer: still running %v after the reload", stepTimeout)
	}
	stopLampgw(t, gw, syscall.SIGTERM)
}
