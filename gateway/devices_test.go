package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/testwait"
)

// espServer plays ESP8266 firmware that runs a WiFiServer and waits for
// the gateway to connect, telnet style: it never says HELLO.
type espServer struct {
	t    *testing.T
	addr string
	ln   net.Listener
}

func newESP(t *testing.T) *espServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &espServer{t: t, addr: ln.Addr().String(), ln: ln}
}

// accept waits for the gateway's connection.
func (e *espServer) accept() *lamp {
	e.t.Helper()
	e.ln.(*net.TCPListener).SetDeadline(time.Now().Add(wait))
	conn, err := e.ln.Accept()
	if err != nil {
		e.t.Fatalf("ESP %s: no connection from the gateway: %v", e.addr, err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return &lamp{t: e.t, conn: conn, r: bufio.NewReader(conn)}
}

// restart closes the listener and listens on the same port again, as a
// rebooting lamp does.
func (e *espServer) restart() {
	e.t.Helper()
	e.ln.Close()
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		e.t.Fatalf("listen again on %s: %v", e.addr, err)
	}
	e.t.Cleanup(func() { ln.Close() })
	e.ln = ln
}

// expectEventually waits for topic to carry want, passing over other
// payloads on it, for a state reached through others (a declared lamp is
// "offline" until its connection is up).
func (a *app) expectEventually(topic, want string) {
	a.t.Helper()
	for {
		got, before := a.expect(topic)
		if got == want {
			return
		}
		a.t.Logf("%s: %q before %q (after %v)", topic, got, want, before)
	}
}

// writeFile writes a devices file, replacing the old one the way editors
// do (write a new file, rename it over), so the watcher sees a real save.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startWithDevices(t *testing.T, content string, tweak func(*gateway.Options)) (*gateway.Gateway, gateway.Addrs, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "devices.yaml")
	writeFile(t, path, content)
	opts := gateway.Options{
		MQTTAddr:    "127.0.0.1:0",
		BridgeAddr:  "127.0.0.1:0",
		DevicesFile: path,
		RedialMin:   20 * time.Millisecond,
		Logger:      testLogger(t),
	}
	if tweak != nil {
		tweak(&opts)
	}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return g, g.Addrs(), path
}

func TestDialedLamp(t *testing.T) {
	esp := newESP(t)
	_, addrs, _ := startWithDevices(t, fmt.Sprintf(`
devices:
  - id: esp
    dial: %s
    brightness_max: 255
`, esp.addr), nil)
	a := newApp(t, addrs.MQTT, "lamp/#")

	l := esp.accept()
	a.expectEventually("lamp/esp/availability", "online")
	l.send("brightness=200 ambient=7\r\n")
	a.expectPayload("lamp/esp/brightness", "200")
	a.expectPayload("lamp/esp/ambient", "7")

	// Its own brightness_max, not the default 1023, applies both ways.
	l.send("brightness=300\n")
	l.expectLine("ERR brightness: out of range 0..255")
	a.publish("lamp/esp/brightness/set", "300", false)
	if got, _ := a.expect("lamp/esp/error"); !strings.Contains(got, "out of range 0..255") {
		t.Errorf("error for brightness 300: got %s, want out of range 0..255", got)
	}
	a.publish("lamp/esp/brightness/set", "100", false)
	l.expectLine("brightness=100")

	// The lamp reboots: offline while it is away, online once redialed.
	l.conn.Close()
	esp.restart()
	a.expectPayload("lamp/esp/availability", "offline")
	l = esp.accept()
	a.expectPayload("lamp/esp/availability", "online")
	l.send("brightness=201\n")
	a.expectPayload("lamp/esp/brightness", "201")
}

func TestDialedLampUnreachableIsOffline(t *testing.T) {
	esp := newESP(t)
	esp.ln.Close() // nothing listens: every dial is refused
	_, addrs, _ := startWithDevices(t, fmt.Sprintf("devices:\n  - {id: gone, dial: %q}\n", esp.addr), nil)
	a := newApp(t, addrs.MQTT, "lamp/#")
	// Retained, so an app that subscribes later learns it too.
	if got, before := a.expect("lamp/gone/availability"); got != "offline" {
		t.Errorf("availability: got %q, want offline (after %v)", got, before)
	}
}

func TestShutdownDuringRedialBackoff(t *testing.T) {
	esp := newESP(t)
	// A wait of an hour between dials: only an interrupted wait lets
	// Shutdown return within the test's deadline.
	g, addrs, _ := startWithDevices(t, fmt.Sprintf("devices:\n  - {id: esp, dial: %q}\n", esp.addr),
		func(o *gateway.Options) { o.RedialMin = time.Hour })
	a := newApp(t, addrs.MQTT, "lamp/esp/availability")
	l := esp.accept()
	a.expectEventually("lamp/esp/availability", "online")
	l.conn.Close()
	a.expectPayload("lamp/esp/availability", "offline") // now waiting to redial

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown during backoff: got %v, want nil within %v", err, wait)
	}
}

func TestMatchedLampIsOnlineOnConnect(t *testing.T) {
	_, addrs, _ := startWithDevices(t, `
devices:
  - id: hall
    match: 127.0.0.1
    dialect: json
`, nil)
	a := newApp(t, addrs.MQTT, "lamp/#")
	// Declared by the file before it connected.
	a.expectPayload("lamp/hall/availability", "offline")
	l := dialLamp(t, addrs.Bridge)
	a.expectPayload("lamp/hall/availability", "online")
	// It never spoke, so the command goes in the file's dialect.
	a.publish("lamp/hall/brightness/set", "12", false)
	l.expectLine(`{"brightness":12}`)
	l.send(`{"brightness":12,"mode":"manual"}` + "\n")
	a.expectPayload("lamp/hall/brightness", "12")
	a.expectPayload("lamp/hall/mode", "manual")
	// A HELLO for another id can't turn it into someone else.
	l.send("HELLO kitchen\n")
	l.expectLine("ERR already identified as hall")
	l.conn.Close()
	a.expectPayload("lamp/hall/availability", "offline")
}

func TestMatchedLampOverIPv6(t *testing.T) {
	_, addrs, _ := startWithDevices(t, "devices:\n  - {id: six, match: \"::1\"}\n",
		func(o *gateway.Options) { o.BridgeAddr = "[::1]:0" })
	a := newApp(t, addrs.MQTT, "lamp/#")
	conn, err := net.DialTimeout("tcp", addrs.Bridge.String(), wait)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer conn.Close()
	a.expectEventually("lamp/six/availability", "online")
}

func TestReload(t *testing.T) {
	espB, espD := newESP(t), newESP(t)
	file := func(entries ...string) string {
		return "devices:\n" + strings.Join(entries, "")
	}
	a1 := "  - {id: a}\n"
	b := fmt.Sprintf("  - {id: b, dial: %q, name: B}\n", espB.addr)
	bRenamed := fmt.Sprintf("  - {id: b, dial: %q, name: Bee}\n", espB.addr)
	c := "  - {id: c}\n"
	cChanged := "  - {id: c, brightness_max: 255}\n"
	d := fmt.Sprintf("  - {id: d, dial: %q}\n", espD.addr)

	g, addrs, path := startWithDevices(t, file(a1, b, c), nil)
	app := newApp(t, addrs.MQTT, "lamp/#")
	la := dialLamp(t, addrs.Bridge)
	la.send("HELLO a\nbrightness=1 mode=auto\n")
	app.expectPayload("lamp/a/mode", "auto")
	lb := espB.accept()
	testwait.Until(t, "b online", func() bool { s, _ := g.Registry().Get("b"); return s.Online })
	lc := dialLamp(t, addrs.Bridge)
	lc.send("HELLO c\nbrightness=900\n")
	app.expectPayload("lamp/c/brightness", "900")

	writeFile(t, path, file(bRenamed, cChanged, d))
	if err := g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	// a, removed: disconnected, and nothing retained is left of it.
	la.expectClosed()
	ghost := newApp(t, addrs.MQTT, "lamp/a/#")
	noneOn(t, ghost.early, "lamp/a/")
	// c, changed: disconnected; reconnecting, its new max applies.
	lc.expectClosed()
	lc = dialLamp(t, addrs.Bridge)
	lc.send("HELLO c\nbrightness=900\n")
	lc.expectLine("ERR brightness: out of range 0..255")
	// d, added: dialed.
	espD.accept()
	app.expectEventually("lamp/d/availability", "online")
	// b, renamed only: the same socket still carries its reports.
	lb.send("brightness=5\n")
	app.expectPayload("lamp/b/brightness", "5")
	for _, id := range []string{"b", "c", "d"} {
		if _, ok := g.Registry().Get(id); !ok {
			t.Errorf("registry lost %s", id)
		}
	}
	if _, ok := g.Registry().Get("a"); ok {
		t.Errorf("registry still has a, removed")
	}

	// A broken file is refused and the devices in force stay.
	writeFile(t, path, file(b, "  - {id: e, dial: nowhere}\n"))
	err := g.Reload()
	if !errors.Is(err, devices.ErrBadFile) || !strings.Contains(err.Error(), ":3: dial:") {
		t.Fatalf("Reload of a broken file: got %v, want a devices file error at line 3, key dial", err)
	}
	lb.send("brightness=6\n")
	app.expectPayload("lamp/b/brightness", "6")
	lc.send("brightness=200\n")
	app.expectPayload("lamp/c/brightness", "200")
}

func TestReloadOnFileChange(t *testing.T) {
	esp := newESP(t)
	_, addrs, path := startWithDevices(t, "devices:\n  - {id: a}\n", nil)
	app := newApp(t, addrs.MQTT, "lamp/#")
	la := dialLamp(t, addrs.Bridge)
	la.send("HELLO a\nbrightness=1\n")
	app.expectPayload("lamp/a/brightness", "1")

	// No Reload call: saving the file is enough.
	writeFile(t, path, fmt.Sprintf("devices:\n  - {id: e, dial: %q}\n", esp.addr))
	la.expectClosed()
	if got, _ := app.expect("lamp/a/availability"); got != "" {
		t.Errorf("lamp/a/availability after removal: got %q, want it cleared", got)
	}
	esp.accept()
	app.expectEventually("lamp/e/availability", "online")
}

func TestBadDevicesFileAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.yaml")
	writeFile(t, path, "devices:\n  - id: a\n    dialect: morse\n")
	_, err := gateway.New(gateway.Options{DevicesFile: path})
	var se *gateway.SettingError
	if !errors.As(err, &se) || se.Setting != "devices" {
		t.Fatalf("New: got %v, want a SettingError for devices", err)
	}
	want := fmt.Sprintf(`devices: %s:3: dialect: want text or json, got "morse"`, path)
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	_, err = gateway.New(gateway.Options{DevicesFile: filepath.Join(t.TempDir(), "none.yaml")})
	if err == nil || !strings.HasSuffix(err.Error(), "none.yaml: no such file or directory") {
		t.Errorf("missing file: got %v", err)
	}
}
