package gateway_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/store"
)

func dataOptions(t *testing.T, dir string) gateway.Options {
	return gateway.Options{
		MQTTAddr:   "127.0.0.1:0",
		BridgeAddr: "127.0.0.1:0",
		DataDir:    dir,
		Logger:     testLogger(t),
	}
}

func shutdown(t *testing.T, g *gateway.Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// replayed is what a new subscriber got as retained messages, by topic.
func replayed(a *app) map[string]string {
	got := map[string]string{}
	for _, m := range a.early {
		if m.retained {
			got[m.topic] = m.payload
		}
	}
	return got
}

// startWithLampX starts a gateway on dir with lamp x connected and
// reporting, once an app has seen want on topic.
func startWithLampX(t *testing.T, dir, report, topic, want string) (*gateway.Gateway, *lamp) {
	t.Helper()
	g, addrs := startWith(t, dataOptions(t, dir))
	a := newApp(t, addrs.MQTT, topic)
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO x\n" + report + "\n")
	a.expectPayload(topic, want)
	return g, l
}

func TestRetainedStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	g, l := startWithLampX(t, dir, "brightness=512 mode=auto", "lamp/x/state", `{"brightness":512,"mode":"auto"}`)
	l.conn.Close()
	shutdown(t, g)

	_, addrs := startWith(t, dataOptions(t, dir))
	b := newApp(t, addrs.MQTT, "lamp/#", "lampgw/status")
	want := map[string]string{
		"lamp/x/brightness":   "512",
		"lamp/x/mode":         "auto",
		"lamp/x/state":        `{"brightness":512,"mode":"auto"}`,
		"lamp/x/availability": "offline",
		"lampgw/status":       "online",
	}
	got := replayed(b)
	for topic, payload := range want {
		if got[topic] != payload {
			t.Errorf("retained %s after restart: got %q, want %q (all: %v)", topic, got[topic], payload, got)
		}
	}
}

// TestStaleOnlineIsOfflineAfterCrash: a crash leaves "online" on disk
// for every lamp that was connected; after the restart, before any app
// can read it, it says "offline".
func TestStaleOnlineIsOfflineAfterCrash(t *testing.T) {
	dir := t.TempDir()
	// Wait for the report's publish, which follows "online": crashing
	// before it would test nothing about brightness.
	g, l := startWithLampX(t, dir, "brightness=1", "lamp/x/brightness", "1")
	g.Crash()
	l.conn.Close()

	_, addrs := startWith(t, dataOptions(t, dir))
	b := newApp(t, addrs.MQTT, "lamp/#")
	if got := replayed(b); got["lamp/x/availability"] != "offline" || got["lamp/x/brightness"] != "1" {
		t.Errorf("retained after a crash and restart: got %v, want lamp/x/availability offline and brightness 1", got)
	}
}

// TestPendingCommandSurvivesRestart is the registry's devices.Store on
// the data dir: a command for an offline lamp reaches it after a restart.
func TestPendingCommandSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	g, addrs := startWith(t, dataOptions(t, dir))
	a := newApp(t, addrs.MQTT, "lamp/y/ack")
	a.publish("lamp/y/set", `{"brightness":700,"rid":"r1"}`, false)
	a.expectAck("lamp/y/ack", "r1", "brightness", "700", "queued")
	shutdown(t, g)

	_, addrs = startWith(t, dataOptions(t, dir))
	l := dialLamp(t, addrs.Bridge)
	l.send("HELLO y\n")
	l.expectLine("brightness=700")
}

func TestDataDirErrors(t *testing.T) {
	t.Run("a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "data")
		os.WriteFile(file, nil, 0o644)
		_, err := gateway.New(dataOptions(t, file))
		var se *gateway.SettingError
		if !errors.As(err, &se) || se.Setting != "data-dir" || !errors.Is(err, store.ErrNotDir) {
			t.Errorf("New: got %v, want a data-dir SettingError wrapping store.ErrNotDir", err)
		}
	})
	t.Run("in use", func(t *testing.T) {
		dir := t.TempDir()
		startWith(t, dataOptions(t, dir))
		opts := dataOptions(t, dir)
		opts.DataReset = true // never moves a dir in use
		g, err := gateway.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); !errors.Is(err, store.ErrLocked) || strings.Contains(err.Error(), "data-reset") {
			t.Errorf("second Start: got %v, want store.ErrLocked without a data-reset hint", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "pebble")); err != nil {
			t.Errorf("the dir in use: %v, want it where it was", err)
		}
	})
	t.Run("corrupt, then data-reset", func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "pebble"), 0o755)
		os.WriteFile(filepath.Join(dir, "pebble", "MANIFEST-000001"), []byte("garbage"), 0o644)
		g, err := gateway.New(dataOptions(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		err = g.Start()
		if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "--data-reset") {
			t.Fatalf("Start: got %v, want store.ErrCorrupt naming %s with the --data-reset hint", err, dir)
		}
		opts := dataOptions(t, dir)
		opts.DataReset = true
		startWith(t, opts)
		moved, _ := filepath.Glob(dir + ".broken-*")
		if len(moved) != 1 {
			t.Fatalf("moved aside: got %v, want one %s.broken-<time>", moved, dir)
		}
		if _, err := os.Stat(filepath.Join(moved[0], "pebble", "MANIFEST-000001")); err != nil {
			t.Errorf("the moved dir: %v, want the old files in it", err)
		}
	})
}
