package main

// Black-box tests of the built binary: real process, real sockets, real
// signals, and real mosquitto clients for the interop test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raceEnabled is set by race_test.go.
var raceEnabled bool

// Deadlines. They are generous because a -race binary on a loaded 2-core
// CI machine starts slowly; a passing run never waits for them.
const (
	startTimeout = 30 * time.Second
	stepTimeout  = 15 * time.Second
	// lampgw gives up on a graceful shutdown after shutdownTimeout and
	// exits 1, so exit 0 means it finished inside that; the second is
	// for process teardown only.
	exitTimeout = shutdownTimeout + time.Second
)

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lampgw-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lampgwBinary builds ./cmd/lampgw on first use, once per test binary, so
// that the pure tests alone never pay for a build.
func lampgwBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		path := filepath.Join(binDir, "lampgw")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		binPath = path
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cleanEnv is the test's environment without LAMPGW_* variables, so a
// developer's own settings cannot change what the binary under test does.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// lineLog collects a process's output as lines and lets a test wait for
// the next one with a deadline, so no test ever sleeps. It is the
// process's Stdout or Stderr; exec's copying goroutine writes to it.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	cursor  int // next line Next returns
	closed  bool
	changed chan struct{} // closed and replaced whenever lines or closed change
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	l.signalLocked()
	return len(p), nil
}

// close marks the end of output; call it after the process's Wait.
func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.lines = append(l.lines, string(l.partial))
		l.partial = nil
	}
	l.closed = true
	l.signalLocked()
}

func (l *lineLog) signalLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Next returns the next line not returned before. It returns io.EOF when
// output has ended and os.ErrDeadlineExceeded when deadline passes first.
func (l *lineLog) Next(deadline time.Time) (string, error) {
	for {
		l.mu.Lock()
		if l.cursor < len(l.lines) {
			line := l.lines[l.cursor]
			l.cursor++
			l.mu.Unlock()
			return line, nil
		}
		if l.closed {
			l.mu.Unlock()
			return "", io.EOF
		}
		changed := l.changed
		l.mu.Unlock()

		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-changed:
			timer.Stop()
		case <-timer.C:
			return "", os.ErrDeadlineExceeded
		}
	}
}

// Lines returns every line so far.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// waitFor returns the first next line that match accepts, failing the test
// if output ends or timeout passes first.
func (l *lineLog) waitFor(t *testing.T, what string, timeout time.Duration, match func(line string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		line, err := l.Next(deadline)
		if err != nil {
			t.Fatalf("waiting for %s: got %v, want it within %v; output so far:\n%s", what, err, timeout, strings.Join(l.Lines(), "\n"))
		}
		if match(line) {
			return line
		}
	}
}

// proc is a started process whose end can be awaited with a deadline.
type proc struct {
	cmd    *exec.Cmd
	output *lineLog      // stderr for lampgw, stdout for mosquitto_sub
	done   chan struct{} // closed after Wait returns
	err    error         // Wait's result, set before done is closed
}

// startProc starts cmd with output collected as lines, and kills it at the
// end of the test if it is still running.
func startProc(t *testing.T, cmd *exec.Cmd, output *lineLog) *proc {
	t.Helper()
	p := &proc{cmd: cmd, output: output, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		output.close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitExit returns the exit code, failing the test if the process is still
// running after timeout.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s: still running after %v, want it to have exited", filepath.Base(p.cmd.Path), timeout)
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		return exitErr.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", filepath.Base(p.cmd.Path), p.err)
	}
	return 0
}

// startLampgw starts the binary with every listener on a random loopback
// port and JSON logs, then extra args (later flags win), and returns it
// with the real addresses from its startup line, keyed mqtt, ws, http,
// bridge, mqtts, wss, https, bridge_tls.
func startLampgw(t *testing.T, extra ...string) (*proc, map[string]string) {
	t.Helper()
	args := append([]string{
		"--mqtt-addr", "127.0.0.1:0",
		"--ws-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--bridge-addr", "127.0.0.1:0",
		"--data-dir", t.TempDir(),
		"--log-format", "json",
	}, extra...)
	cmd := exec.Command(lampgwBinary(t), args...)
	cmd.Env = cleanEnv()
	stderr := newLineLog()
	cmd.Stderr = stderr
	p := startProc(t, cmd, stderr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lampgw stderr:\n%s", strings.Join(stderr.Lines(), "\n"))
		}
	})

	var started struct {
		Message string `json:"message"`
		MQTT    string `json:"mqtt"`
		WS      string `json:"ws"`
		HTTP    string `json:"http"`
		Bridge  string `json:"bridge"`
		// TLS listeners; "off" unless extra enables them.
		MQTTS     string `json:"mqtts"`
		WSS       string `json:"wss"`
		HTTPS     string `json:"https"`
		BridgeTLS string `json:"bridge_tls"`
	}
	stderr.waitFor(t, `the "lampgw listening" log line`, startTimeout, func(line string) bool {
		return json.Unmarshal([]byte(line), &started) == nil && started.Message == "lampgw listening"
	})
	return p, map[string]string{"mqtt": started.MQTT, "ws": started.WS, "http": started.HTTP, "bridge": started.Bridge,
		"mqtts": started.MQTTS, "wss": started.WSS, "https": started.HTTPS, "bridge_tls": started.BridgeTLS}
}

// stopLampgw sends sig and expects a clean exit within exitTimeout.
func stopLampgw(t *testing.T, p *proc, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	if code := p.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("exit code after %v: got %d, want 0", sig, code)
	}
}

func TestProcessPortInUse(t *testing.T) {
	t.Parallel()
	for _, setting := range []string{flagMQTTAddr, flagWSAddr, flagHTTPAddr, flagBridgeAddr} {
		t.Run(setting, func(t *testing.T) {
			t.Parallel()
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			addr := taken.Addr().String()

			args := []string{"--data-dir", t.TempDir(), "--log-format", "json"}
			for _, s := range []string{flagMQTTAddr, flagWSAddr, flagHTTPAddr, flagBridgeAddr} {
				if s == setting {
					args = append(args, "--"+s, addr)
				} else {
					args = append(args, "--"+s, "127.0.0.1:0")
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, lampgwBinary(t), args...)
			cmd.Env = cleanEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()

			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
				t.Errorf("exit: got %v, want exit status 1", err)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			wantPrefix := fmt.Sprintf("lampgw: %s %q: ", setting, addr)
			if len(lines) != 1 || !strings.HasPrefix(lines[0], wantPrefix) || !strings.Contains(lines[0], "address already in use") {
				t.Errorf("stderr:\ngot  %q\nwant one line %q...address already in use", stderr.String(), wantPrefix)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}

func TestProcessListenAndSignal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sig  os.Signal
	}{
		{"SIGTERM", syscall.SIGTERM},
		{"SIGINT", os.Interrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, addrs := startLampgw(t)

			for _, name := range []string{"mqtt", "ws", "http", "bridge"} {
				addr := addrs[name]
				host, port, err := net.SplitHostPort(addr)
				if err != nil || host != "127.0.0.1" || port == "0" {
					t.Errorf("startup line %s=%q: got no real port, want 127.0.0.1:<port>", name, addr)
					continue
				}
				conn, err := net.DialTimeout("tcp", addr, stepTimeout)
				if err != nil {
					t.Errorf("dial %s at %s: %v", name, addr, err)
					continue
				}
				conn.Close()
			}
			client := &http.Client{Timeout: stepTimeout}
			if resp, err := client.Get("http://" + addrs["http"] + "/healthz"); err != nil {
				t.Errorf("GET /healthz: %v", err)
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET /healthz: got %s, want 200 OK", resp.Status)
				}
			}

			stopLampgw(t, p, tc.sig)

			var sawStopped bool
			for _, line := range p.output.Lines() {
				var entry struct {
					Message string `json:"message"`
				}
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Errorf("stderr line %q: got %v, want JSON with --log-format json", line, err)
				}
				sawStopped = sawStopped || entry.Message == "lampgw stopped"
			}
			if !sawStopped {
				t.Errorf(`stderr: got no "lampgw stopped" line, want one after a clean shutdown`)
			}
		})
	}
}

// needMosquitto skips the test without the mosquitto clients, and fails
// it in CI, where .ci/run installs them.
func needMosquitto(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mosquitto_sub", "mosquitto_pub"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found (Debian package mosquitto-clients; .ci/run installs it): %v", tool, err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// startMosquittoSub runs mosquitto_sub with args, -v and a bound on its
// life, and returns its output lines.
func startMosquittoSub(t *testing.T, args ...string) *lineLog {
	t.Helper()
	// -W bounds mosquitto_sub by itself should the test's cleanup never
	// run; the cleanup kills it long before.
	sub := exec.Command("mosquitto_sub", append(args, "-v", "-W", "120")...)
	out := newLineLog()
	sub.Stdout = out
	var subErr bytes.Buffer
	sub.Stderr = &subErr
	startProc(t, sub, out)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto_sub output:\n%s\nmosquitto_sub stderr:\n%s", strings.Join(out.Lines(), "\n"), subErr.String())
		}
	})
	return out
}

// TestProcessMosquittoInterop plays a legacy lamp on a raw TCP socket and an
// MQTT user with the real mosquitto_sub and mosquitto_pub.
func TestProcessMosquittoInterop(t *testing.T) {
	t.Parallel()
	needMosquitto(t)

	gw, addrs := startLampgw(t)
	_, mqttPort, err := net.SplitHostPort(addrs["mqtt"])
	if err != nil {
		t.Fatalf("mqtt address %q: %v", addrs["mqtt"], err)
	}
	subOut := startMosquittoSub(t, "-h", "127.0.0.1", "-p", mqttPort, "-t", "lamp/#")

	pub := func(topic, payload string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", mqttPort, "-q", "1", "-t", topic, "-m", payload).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub -t %s -m %s: %v\n%s", topic, payload, err, out)
		}
	}
	// expect waits for a line of each of want, exact or (ending in a
	// space) by prefix, in any order: the gateway publishes one frame's
	// topics together and MQTT orders only per topic. It returns the
	// last line matched by each.
	expect := func(want ...string) map[string]string {
		t.Helper()
		got := make(map[string]string)
		subOut.waitFor(t, fmt.Sprintf("mosquitto_sub lines %q", want), stepTimeout, func(line string) bool {
			for _, w := range want {
				if line == w || strings.HasSuffix(w, " ") && strings.HasPrefix(line, w) {
					got[w] = line
				}
			}
			return len(got) == len(want)
		})
		return got
	}

	lamp, err := net.DialTimeout("tcp", addrs["bridge"], stepTimeout)
	if err != nil {
		t.Fatalf("dial bridge: %v", err)
	}
	defer lamp.Close()
	lampIn := bufio.NewReader(lamp)
	send := func(frame string) {
		t.Helper()
		lamp.SetWriteDeadline(time.Now().Add(stepTimeout))
		if _, err := io.WriteString(lamp, frame); err != nil {
			t.Fatalf("lamp write %q: %v", frame, err)
		}
	}
	receive := func(want string) {
		t.Helper()
		lamp.SetReadDeadline(time.Now().Add(stepTimeout))
		got, err := lampIn.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("lamp read: got %q (%v), want %q", got, err, want)
		}
	}

	send("HELLO lamp1\n")
	send("brightness=512 mode=auto\n")
	stateLine := expect("lamp/lamp1/availability online", "lamp/lamp1/brightness 512", "lamp/lamp1/mode auto", "lamp/lamp1/state ")["lamp/lamp1/state "]
	var state map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(stateLine, "lamp/lamp1/state ")), &state); err != nil {
		t.Fatalf("state %q: %v", stateLine, err)
	}
	// JSON numbers decode as float64: the state must carry a number, not "512".
	if state["brightness"] != float64(512) || state["mode"] != "auto" {
		t.Errorf("state: got %v, want brightness 512 (a number) and mode auto", state)
	}

	pub("lamp/lamp1/brightness/set", "700")
	receive("brightness=700\n")

	pub("lamp/lamp1/brightness/set", "5000")
	errLine := expect("lamp/lamp1/error ")["lamp/lamp1/error "]
	var refusal struct{ Topic, Payload, Error string }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(errLine, "lamp/lamp1/error ")), &refusal); err != nil {
		t.Fatalf("error payload %q: %v", errLine, err)
	}
	if refusal.Topic != "lamp/lamp1/brightness/set" || refusal.Payload != "5000" || !strings.HasPrefix(refusal.Error, "brightness:") {
		t.Errorf("error payload: got %+v, want topic lamp/lamp1/brightness/set, payload 5000, error brightness: ...", refusal)
	}
	// The refused command was handled before the error was published, so
	// if anything had been written for it, it would come before this
	// valid command's frame.
	pub("lamp/lamp1/brightness/set", "701")
	receive("brightness=701\n")

	lamp.Close()
	expect("lamp/lamp1/availability offline")

	// The gateway publishes only what the lamp said, never a command.
	for _, line := range subOut.Lines() {
		if line == "lamp/lamp1/brightness 700" || line == "lamp/lamp1/brightness 701" || line == "lamp/lamp1/brightness 5000" {
			t.Errorf("mosquitto_sub: got %q, want no state the lamp never reported", line)
		}
	}

	stopLampgw(t, gw, syscall.SIGTERM)
}

// TestProcessDevicesFile starts lampgw with a devices file, refuses a
// broken one at start (exit 2, one line) and on SIGHUP (one log line, old
// devices stay), and applies a good one on SIGHUP.
func TestProcessDevicesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "devices.yaml")
	broken := "devices:\n  - id: a\n    brightness_max: lots\n"
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(lampgwBinary(t), "--devices", path, "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "off",
		"--http-addr", "off", "--bridge-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
		t.Errorf("start with a broken devices file: got %v, want exit status 2", err)
	}
	want := fmt.Sprintf("lampgw: devices: %s:3: brightness_max: want an integer 1..65535, got \"lots\"\n", path)
	if stderr.String() != want {
		t.Errorf("stderr:\ngot  %q\nwant %q", stderr.String(), want)
	}

	if err := os.WriteFile(path, []byte("devices:\n  - id: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := startLampgw(t, "--devices", path)
	// startLampgw read up to the startup line; the file was loaded before.
	if !slices.ContainsFunc(p.output.Lines(), func(line string) bool {
		return strings.Contains(line, `"message":"devices file loaded"`)
	}) {
		t.Errorf("no \"devices file loaded\" line at start")
	}

	// Written in place: the watcher may see it too, but reloads only
	// when the bytes differ from what it saw last, so each save is
	// answered once whoever comes first.
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	line := p.output.waitFor(t, "the broken file refused", stepTimeout, func(line string) bool {
		return strings.Contains(line, "devices file refused")
	})
	if !strings.Contains(line, `brightness_max: want an integer`) {
		t.Errorf("refusal line %s: want the reason", line)
	}

	if err := os.WriteFile(path, []byte("devices:\n  - id: a\n  - id: b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	line = p.output.waitFor(t, "the fixed file loaded", stepTimeout, func(line string) bool {
		return strings.Contains(line, `"message":"devices file loaded"`)
	})
	if !strings.Contains(line, `"added":["b"]`) {
		t.Errorf("reload line %s: want added [b]", line)
	}
	stopLampgw(t, p, syscall.SIGTERM)
}
