package main

// Persistence on the built binary: restarts after SIGTERM and after
// kill -9 with a real MQTT client and a raw TCP lamp, and every way a
// data dir can be refused.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lampgw/lampgw/internal/testwait"
	"github.com/lampgw/lampgw/store"
)

// persistPub publishes one message at QoS 1 with mosquitto_pub.
func persistPub(t *testing.T, port, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t", topic, "-m", payload).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub -t %s -m %s: %v\n%s", topic, payload, err, out)
	}
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// rawLamp is a lamp on the bridge's raw TCP port.
type rawLamp struct {
	t    *testing.T
	conn net.Conn
	in   *bufio.Reader
}

func dialRawLamp(t *testing.T, addr string) *rawLamp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, stepTimeout)
	if err != nil {
		t.Fatalf("dial bridge %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawLamp{t: t, conn: conn, in: bufio.NewReader(conn)}
}

func (l *rawLamp) send(frames string) {
	l.t.Helper()
	l.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	if _, err := io.WriteString(l.conn, frames); err != nil {
		l.t.Fatalf("lamp write %q: %v", frames, err)
	}
}

func (l *rawLamp) expect(want string) {
	l.t.Helper()
	l.conn.SetReadDeadline(time.Now().Add(stepTimeout))
	got, err := l.in.ReadString('\n')
	if err != nil || got != want {
		l.t.Fatalf("lamp read: got %q (%v), want %q", got, err, want)
	}
}

// TestProcessRestartKeepsState: what lampgw holds before a restart is
// back after it, and a lamp connected at the time reads offline.
//
//   - retained lamp state (lamp x's report), checked with mosquitto_sub
//     on the new process;
//   - the pending command of an offline lamp (lamp y's brightness/set
//     700), which lamp y receives when it says HELLO to the new process.
//
// After kill -9, the promise is every value published at least 1 s
// before the kill; the test waits those 1.1 s since its last publish.
func TestProcessRestartKeepsState(t *testing.T) {
	t.Parallel()
	needMosquitto(t)
	for _, tc := range []struct {
		name string
		kill bool
	}{
		{"SIGTERM", false},
		{"kill -9", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			p, addrs := startLampgw(t, "--data-dir", dir)
			mqttPort := port(t, addrs["mqtt"])
			sub := startMosquittoSub(t, "-h", "127.0.0.1", "-p", mqttPort, "-t", "lamp/+/state", "-t", "lamp/+/error")

			x := dialRawLamp(t, addrs["bridge"])
			x.send("HELLO x\nbrightness=512 mode=auto\n")
			sub.waitFor(t, "lamp x's state", stepTimeout, func(line string) bool {
				return line == `lamp/x/state {"brightness":512,"mode":"auto"}`
			})
			persistPub(t, mqttPort, "lamp/y/brightness/set", "700")
			// The gateway handles a topic's commands in order, so once
			// a refused command after it is answered, y's 700 has been
			// handled and stored.
			persistPub(t, mqttPort, "lamp/sync/brightness/set", "5000")
			sub.waitFor(t, "the refusal of lamp sync's 5000", stepTimeout, func(line string) bool {
				return strings.HasPrefix(line, "lamp/sync/error ")
			})
			published := time.Now()

			if tc.kill {
				testwait.Until(t, "1.1 s since the last publish", func() bool {
					return time.Since(published) >= 1100*time.Millisecond
				})
				if err := p.cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				p.waitExit(t, exitTimeout)
			} else {
				stopLampgw(t, p, syscall.SIGTERM)
			}
			x.conn.Close()

			p, addrs = startLampgw(t, "--data-dir", dir)
			mqttPort = port(t, addrs["mqtt"])
			after := startMosquittoSub(t, "-h", "127.0.0.1", "-p", mqttPort, "-t", "lamp/x/#")
			want := map[string]string{
				"lamp/x/brightness":   "512",
				"lamp/x/mode":         "auto",
				"lamp/x/state":        `{"brightness":512,"mode":"auto"}`,
				"lamp/x/availability": "offline",
			}
			got := map[string]string{}
			after.waitFor(t, fmt.Sprintf("retained %v", want), stepTimeout, func(line string) bool {
				topic, payload, _ := strings.Cut(line, " ")
				if _, ok := got[topic]; !ok {
					got[topic] = payload // the first: the retained one
				}
				for topic := range want {
					if _, ok := got[topic]; !ok {
						return false
					}
				}
				return true
			})
			for topic, payload := range want {
				if got[topic] != payload {
					t.Errorf("retained %s after restart: got %q, want %q", topic, got[topic], payload)
				}
			}

			y := dialRawLamp(t, addrs["bridge"])
			y.send("HELLO y\n")
			y.expect("brightness=700\n")
			stopLampgw(t, p, syscall.SIGTERM)
		})
	}
}

// makeDataDir leaves a data dir with records in it, as lampgw would.
func makeDataDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	// Two opens: the second replays the first's log into a table, so
	// the dir has tables, a log and a MANIFEST naming them.
	for i := range 2 {
		db, _, err := store.Open(store.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		db.Namespace("mqtt/").Set(fmt.Appendf(nil, "retained/lamp/l%d/brightness", i), []byte("{}"))
		db.Close()
	}
	return dir
}

// damageDataDir writes garbage into every file of dir/pebble, or, with
// cut, cuts every file to half its length.
func damageDataDir(t *testing.T, dir string, cut bool) {
	t.Helper()
	db := filepath.Join(dir, store.DBDir)
	ents, err := os.ReadDir(db)
	if err != nil || len(ents) == 0 {
		t.Fatalf("%s: %v entries, %v", db, len(ents), err)
	}
	for _, e := range ents {
		path := filepath.Join(db, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if cut {
			data = data[:len(data)/2]
		} else {
			data = bytes.Repeat([]byte("garbage!"), len(data)/8+1)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProcessDataDirRefused: a data dir lampgw cannot use stops it with
// one line naming the path, exit code 2 for a setting to fix (a file
// where the dir should be), 1 for the rest; never a panic.
func TestProcessDataDirRefused(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "data")
	os.WriteFile(file, []byte("not a dir"), 0o644)
	garbage := makeDataDir(t)
	damageDataDir(t, garbage, false)
	truncated := makeDataDir(t)
	damageDataDir(t, truncated, true)
	junkDir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(junkDir, store.DBDir), 0o755)
	os.WriteFile(filepath.Join(junkDir, store.DBDir, "MANIFEST-000001"), []byte("junk"), 0o644)

	for _, tc := range []struct {
		name, dir string
		code      int
		want      []string // in the line
	}{
		{"a file", file, 2, []string{"lampgw: data-dir: ", file, "not a directory"}},
		{"below a file", filepath.Join(file, "sub"), 2, []string{"lampgw: data-dir: ", file, "not a directory"}},
		{"garbage in every file", garbage, 1, []string{"lampgw: data-dir: ", garbage, "corrupt", "--data-reset"}},
		{"every file cut in half", truncated, 1, []string{"lampgw: data-dir: ", truncated, "corrupt", "--data-reset"}},
		{"junk, no database", junkDir, 1, []string{"lampgw: data-dir: ", junkDir, "corrupt", "--data-reset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stderr := runLampgw(t, "--data-dir", tc.dir)
			if code != tc.code {
				t.Errorf("exit code: got %d, want %d", code, tc.code)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != 1 || !containsAll(lines[0], tc.want) || strings.Contains(stderr, "panic") {
				t.Errorf("stderr:\ngot  %q\nwant one line with %q", stderr, tc.want)
			}
		})
	}
}

func containsAll(s string, parts []string) bool {
	return !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(s, p) })
}

// runLampgw runs lampgw to its exit with every listener on a random
// loopback port and returns its exit code and stderr.
func runLampgw(t *testing.T, extra ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	args := append([]string{"--mqtt-addr", "127.0.0.1:0", "--ws-addr", "off", "--http-addr", "off",
		"--bridge-addr", "127.0.0.1:0", "--log-format", "json"}, extra...)
	cmd := exec.CommandContext(ctx, lampgwBinary(t), args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), stderr.String()
	}
	t.Fatalf("run lampgw: %v", err)
	return 0, ""
}

// TestProcessDataDirInUse: a second lampgw on a data dir in use stops
// with one line naming the dir and the pid holding it, even with
// --data-reset, and the first one goes on.
func TestProcessDataDirInUse(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	first, addrs := startLampgw(t, "--data-dir", dir)
	code, stderr := runLampgw(t, "--data-dir", dir, "--data-reset")
	want := []string{"lampgw: data-dir: ", dir, "in use by another process", fmt.Sprintf("pid %d", first.cmd.Process.Pid)}
	if lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); code != 1 || len(lines) != 1 || !containsAll(lines[0], want) {
		t.Errorf("second lampgw: got exit %d and %q, want 1 and one line with %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, store.DBDir)); err != nil {
		t.Errorf("data dir in use after the second lampgw: %v, want it in place", err)
	}
	conn, err := net.DialTimeout("tcp", addrs["mqtt"], stepTimeout)
	if err != nil {
		t.Errorf("first lampgw: %v, want it still serving", err)
	} else {
		conn.Close()
	}
	stopLampgw(t, first, syscall.SIGTERM)
}

// TestProcessDataReset: --data-reset moves a dir that does not open
// aside, says where, and starts empty; the old files are all there.
func TestProcessDataReset(t *testing.T) {
	t.Parallel()
	dir := makeDataDir(t)
	damageDataDir(t, dir, false)
	before, _ := os.ReadDir(filepath.Join(dir, store.DBDir))

	p, _ := startLampgw(t, "--data-dir", dir, "--data-reset")
	type movedLine struct {
		Message string `json:"message"`
		DataDir string `json:"data_dir"`
		MovedTo string `json:"moved_to"`
		Reason  string `json:"reason"`
	}
	var moved movedLine
	for _, line := range p.output.Lines() {
		var l movedLine
		if json.Unmarshal([]byte(line), &l) == nil && strings.Contains(l.Message, "moved aside") {
			moved = l
			break
		}
	}
	if moved.Message == "" || moved.DataDir != dir || !strings.HasPrefix(moved.MovedTo, dir+".broken-") || !strings.Contains(moved.Reason, "corrupt") {
		t.Fatalf("log: got %+v, want a moved-aside line naming %s, %s.broken-<time> and the reason", moved, dir, dir)
	}
	after, err := os.ReadDir(filepath.Join(moved.MovedTo, store.DBDir))
	if err != nil || len(after) != len(before) {
		t.Errorf("moved dir %s: %d files (%v), want the %d damaged ones", moved.MovedTo, len(after), err, len(before))
	}
	stopLampgw(t, p, syscall.SIGTERM)

	// The new dir is a good one: the next start keeps it.
	p, _ = startLampgw(t, "--data-dir", dir, "--data-reset")
	if !slices.ContainsFunc(p.output.Lines(), func(line string) bool { return strings.Contains(line, "the data dir opens, so it is kept") }) {
		t.Errorf("second start with --data-reset: no line saying the dir was kept")
	}
	stopLampgw(t, p, syscall.SIGTERM)
	if moved, _ := filepath.Glob(dir + ".broken-*"); len(moved) != 1 {
		t.Errorf("moved dirs: got %v, want one", moved)
	}
}
