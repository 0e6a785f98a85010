package gateway_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/tlsconf"
	"github.com/lampgw/lampgw/internal/tlstest"
)

// tlsEnv is a gateway with every TLS listener (and plain MQTT), and the
// PKI behind it.
type tlsEnv struct {
	g      *gateway.Gateway
	addrs  gateway.Addrs
	dir    string
	ca     *tlstest.CA
	server *tlstest.Pair
	// client trusts the CA and presents no certificate.
	client *tls.Config
}

// startTLS starts a gateway with TLS on every listener; with mutual set,
// clients need a certificate from the test CA. tweak, if not nil, edits
// the options first.
func startTLS(t *testing.T, mutual bool, tweak func(*gateway.Options)) *tlsEnv {
	t.Helper()
	e := &tlsEnv{dir: t.TempDir(), ca: tlstest.NewCA(t, "gateway test CA")}
	e.server = e.ca.Server(t)
	e.client = tlstest.ClientConfig(e.ca, nil)
	opts := gateway.Options{
		MQTTAddr:      "127.0.0.1:0",
		MQTTSAddr:     "127.0.0.1:0",
		WSSAddr:       "127.0.0.1:0",
		HTTPSAddr:     "127.0.0.1:0",
		BridgeTLSAddr: "127.0.0.1:0",
		Logger:        testLogger(t),
	}
	opts.TLSCertFile, opts.TLSKeyFile = e.server.WriteFiles(t, e.dir, "server")
	if mutual {
		opts.TLSClientCAFile = tlstest.WriteFile(t, e.dir, "ca.crt", e.ca.PEM)
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.g, e.addrs = startWith(t, opts)
	return e
}

// tlsAddrs names each TLS listener's address.
func (e *tlsEnv) tlsAddrs() []struct {
	name string
	addr net.Addr
} {
	return []struct {
		name string
		addr net.Addr
	}{{"mqtts", e.addrs.MQTTS}, {"wss", e.addrs.WSS}, {"https", e.addrs.HTTPS}, {"bridge-tls", e.addrs.BridgeTLS}}
}

// mqttsApp and wssApp are real MQTT clients over TLS.
func (e *tlsEnv) mqttsApp(t *testing.T, cfg *tls.Config, filters ...string) *app {
	t.Helper()
	return newAppWith(t, paho.NewClientOptions().AddBroker("ssl://"+e.addrs.MQTTS.String()).SetTLSConfig(cfg), filters...)
}

func (e *tlsEnv) wssApp(t *testing.T, cfg *tls.Config, filters ...string) *app {
	t.Helper()
	return newAppWith(t, paho.NewClientOptions().AddBroker("wss://"+e.addrs.WSS.String()+"/mqtt").SetTLSConfig(cfg), filters...)
}

// tlsLamp is a lamp's firmware speaking the same lines over TLS.
func (e *tlsEnv) tlsLamp(t *testing.T, cfg *tls.Config) *lamp {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", e.addrs.BridgeTLS.String(), cfg)
	if err != nil {
		t.Fatalf("lamp TLS handshake: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lamp{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// healthz GETs /healthz over HTTPS.
func (e *tlsEnv) healthz(cfg *tls.Config) error {
	c := &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + e.addrs.HTTPS.String() + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: got %s, want 200 OK", resp.Status)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		return fmt.Errorf("GET /healthz: got TLS state %v, want TLS 1.2 or later", resp.TLS)
	}
	return nil
}

// serial completes a handshake with addr and returns the serial number of
// the certificate it presented.
func serial(t *testing.T, addr net.Addr, cfg *tls.Config) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr.String(), cfg)
	if err != nil {
		t.Fatalf("handshake with %v: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// refused reports nil if the listener at addr refuses a client with cfg:
// in the handshake, or, under TLS 1.3, where the client finishes its
// handshake before the server has checked its certificate, with an
// alert on the first read. A listener that accepts would wait for the
// client to speak, so the read times out.
func refused(addr net.Addr, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr.String(), cfg)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(wait))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return fmt.Errorf("accepted: handshake done, connection open after %v", wait)
	}
	if err == nil {
		return errors.New("accepted: the server sent data")
	}
	return nil
}

// closedBy sends raw bytes (none for a silent peer) to addr and waits
// for the gateway to close the connection.
func closedBy(t *testing.T, addr net.Addr, raw string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if raw != "" {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway may answer with a TLS alert (or an HTTP 400) first.
	c.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("%v: connection still open %v after %q", addr, wait, raw)
		}
	}
}

// TestTLSEndToEnd: a lamp over TLS reaches apps over MQTT over TLS and
// WebSocket over TLS, a command from one of them reaches the lamp, and
// HTTPS serves the HTTP handler.
func TestTLSEndToEnd(t *testing.T) {
	e := startTLS(t, false, nil)
	for _, l := range e.tlsAddrs() {
		if l.addr == nil {
			t.Fatalf("Addrs().%s: got nil, want the bound address", l.name)
		}
	}
	mqtts := e.mqttsApp(t, e.client, "lamp/#")
	wss := e.wssApp(t, e.client, "lamp/#")
	plain := newApp(t, e.addrs.MQTT, "lamp/#")

	l := e.tlsLamp(t, e.client)
	l.send("HELLO secure\n")
	l.send("brightness=512 mode=auto\n")
	for _, a := range []*app{mqtts, wss, plain} {
		a.expectPayload("lamp/secure/availability", "online")
		a.expectPayload("lamp/secure/brightness", "512")
	}
	wss.publish("lamp/secure/brightness/set", "700", false)
	l.expectLine("brightness=700")
	mqtts.publish("lamp/secure/set", `{"mode":"manual"}`, false)
	l.expectLine("mode=manual")

	if err := e.healthz(e.client); err != nil {
		t.Error(err)
	}
	l.conn.Close()
	mqtts.expectPayload("lamp/secure/availability", "offline")
}

// TestTLSRefusesOldVersionsAndGarbage: TLS 1.1, garbage, plain MQTT on
// the TLS port and a peer that says nothing are each closed, while a lamp
// and an app over TLS keep working.
func TestTLSRefusesOldVersionsAndGarbage(t *testing.T) {
	e := startTLS(t, false, func(o *gateway.Options) {
		// The bridge's own handshake bound, which the TLS one shares; the
		// broker and HTTPS bound theirs at 10 s, longer than this test
		// waits, so the silent peer is tried on the bridge only.
		o.LampHandshakeTimeout = 200 * time.Millisecond
	})
	a := e.mqttsApp(t, e.client, "lamp/#")
	l := e.tlsLamp(t, e.client)
	l.send("HELLO steady\n")
	a.expectPayload("lamp/steady/availability", "online")
	n := 0
	check := func(t *testing.T) {
		t.Helper()
		a.t, l.t = t, t
		n++
		l.send(fmt.Sprintf("brightness=%d\n", n))
		a.expectPayload("lamp/steady/brightness", fmt.Sprint(n))
		a.publish("lamp/steady/brightness/set", fmt.Sprint(1000-n), false)
		l.expectLine(fmt.Sprintf("brightness=%d", 1000-n))
	}

	old := e.client.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	for _, target := range e.tlsAddrs() {
		t.Run(target.name, func(t *testing.T) {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", target.addr.String(), old)
			if err == nil {
				c.Close()
				t.Errorf("TLS 1.1 client: handshake done with %s, want refused", tls.VersionName(c.ConnectionState().Version))
			}
			closedBy(t, target.addr, "\x16\x03\x01\x00\x05garbage and more garbage\r\n\r\n")
			closedBy(t, target.addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			// An MQTT 3.1.1 CONNECT, in the clear.
			closedBy(t, target.addr, "\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04evil")
			check(t)
		})
	}
	t.Run("silent bridge peer", func(t *testing.T) {
		closedBy(t, e.addrs.BridgeTLS, "")
		check(t)
	})
}

// TestMutualTLS: with a client CA, each TLS listener refuses a client
// without a certificate or with one from another CA, and accepts one
// with a certificate the CA signed.
func TestMutualTLS(t *testing.T) {
	e := startTLS(t, true, nil)
	stranger := tlstest.NewCA(t, "stranger CA")
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no certificate", e.client},
		{"certificate from another CA", tlstest.ClientConfig(e.ca, stranger.Client(t, "intruder"))},
	} {
		for _, target := range e.tlsAddrs() {
			t.Run(tc.name+"/"+target.name, func(t *testing.T) {
				if err := refused(target.addr, tc.cfg); err != nil {
					t.Error(err)
				}
			})
		}
	}

	member := tlstest.ClientConfig(e.ca, e.ca.Client(t, "kitchen-tablet"))
	mqtts := e.mqttsApp(t, member, "lamp/#")
	wss := e.wssApp(t, member, "lamp/#")
	l := e.tlsLamp(t, tlstest.ClientConfig(e.ca, e.ca.Client(t, "lamp-porch")))
	l.send("HELLO porch\n")
	mqtts.expectPayload("lamp/porch/availability", "online")
	wss.expectPayload("lamp/porch/availability", "online")
	wss.publish("lamp/porch/power/set", "on", false)
	l.expectLine("power=on")
	if err := e.healthz(member); err != nil {
		t.Error(err)
	}
}

// TestTLSReload: Reload swaps the certificate for new handshakes on every
// TLS listener while open connections keep working, and a broken
// certificate is refused with the one in force kept.
func TestTLSReload(t *testing.T) {
	e := startTLS(t, false, nil)
	a := e.mqttsApp(t, e.client, "lamp/#")
	l := e.tlsLamp(t, e.client)
	l.send("HELLO reloaded\n")
	a.expectPayload("lamp/reloaded/availability", "online")
	expectSerial := func(want *big.Int) {
		t.Helper()
		for _, target := range e.tlsAddrs() {
			if got := serial(t, target.addr, e.client); got.Cmp(want) != 0 {
				t.Errorf("%s: served serial %x, want %x", target.name, got, want)
			}
		}
	}
	expectSerial(e.server.Cert.SerialNumber)

	renewed := e.ca.Server(t)
	renewed.WriteFiles(t, e.dir, "server")
	if err := e.g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expectSerial(renewed.Cert.SerialNumber)
	// Connections made before the reload are untouched.
	l.send("brightness=7\n")
	a.expectPayload("lamp/reloaded/brightness", "7")

	tlstest.WriteFile(t, e.dir, "server.crt", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	err := e.g.Reload()
	if fe, ok := errors.AsType[*tlsconf.FileError](err); !ok || fe.Role != tlsconf.RoleCert {
		t.Fatalf("Reload of a broken certificate: got %v, want a *tlsconf.FileError about the certificate", err)
	}
	expectSerial(renewed.Cert.SerialNumber)
	a.publish("lamp/reloaded/brightness/set", "8", false)
	l.expectLine("brightness=8")
}

// TestTLSSettingErrors: a TLS listener without a certificate, or with
// files that do not load, is a *SettingError naming the setting (and the
// file) from New; nothing has listened yet.
func TestTLSSettingErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "settings CA")
	cert, key := ca.Server(t).WriteFiles(t, dir, "server")
	_, otherKey := ca.Server(t).WriteFiles(t, dir, "other")
	garbage := tlstest.WriteFile(t, dir, "garbage.pem", []byte("garbage\n"))
	missing := dir + "/missing.pem"

	tests := []struct {
		name        string
		opts        gateway.Options
		wantSetting string // "": New succeeds
		wantValue   string
		wantErr     error
	}{
		{"no TLS listener: files not read", gateway.Options{TLSCertFile: missing, TLSKeyFile: missing}, "", "", nil},
		{"mqtts without cert", gateway.Options{MQTTSAddr: ":0", TLSKeyFile: key}, "tls-cert", "", nil},
		{"bridge TLS without key", gateway.Options{BridgeTLSAddr: ":0", TLSCertFile: cert}, "tls-key", "", nil},
		{"cert missing", gateway.Options{HTTPSAddr: ":0", TLSCertFile: missing, TLSKeyFile: key}, "tls-cert", missing, fs.ErrNotExist},
		{"cert not PEM", gateway.Options{WSSAddr: ":0", TLSCertFile: garbage, TLSKeyFile: key}, "tls-cert", garbage, tlsconf.ErrNoCertificate},
		{"key of another cert", gateway.Options{MQTTSAddr: ":0", TLSCertFile: cert, TLSKeyFile: otherKey}, "tls-key", otherKey, nil},
		{"client CA not PEM", gateway.Options{MQTTSAddr: ":0", TLSCertFile: cert, TLSKeyFile: key, TLSClientCAFile: garbage}, "tls-client-ca", garbage, tlsconf.ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := gateway.New(tt.opts)
			if tt.wantSetting == "" {
				if err != nil {
					t.Fatalf("New: got %v, want nil", err)
				}
				return
			}
			se, ok := errors.AsType[*gateway.SettingError](err)
			if !ok || se.Setting != tt.wantSetting || se.Value != tt.wantValue {
				t.Fatalf("New: got %#v, want a *SettingError for %s %q", err, tt.wantSetting, tt.wantValue)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("New: got %v, want it to wrap %v", err, tt.wantErr)
			}
			t.Logf("%v", err)
		})
	}
}

// TestTLSPortInUse: a TLS listener's busy port is a *SettingError naming
// its setting.
func TestTLSPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	cert, key := tlstest.NewCA(t, "port CA").Server(t).WriteFiles(t, dir, "server")
	for _, tc := range []struct {
		setting string
		set     func(o *gateway.Options, addr string)
	}{
		{"mqtts-addr", func(o *gateway.Options, addr string) { o.MQTTSAddr = addr }},
		{"wss-addr", func(o *gateway.Options, addr string) { o.WSSAddr = addr }},
		{"https-addr", func(o *gateway.Options, addr string) { o.HTTPSAddr = addr }},
		{"bridge-tls-addr", func(o *gateway.Options, addr string) { o.BridgeTLSAddr = addr }},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			opts := gateway.Options{TLSCertFile: cert, TLSKeyFile: key, Logger: testLogger(t)}
			tc.set(&opts, busy.Addr().String())
			g, err := gateway.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Start()
			if se, ok := errors.AsType[*gateway.SettingError](err); !ok || se.Setting != tc.setting {
				t.Fatalf("Start: got %v, want a *SettingError for %s", err, tc.setting)
			}
		})
	}
}

// TestTLSMatchedLampHandshakeBounded: a lamp known by its address is
// attached before it sends anything, once its TLS handshake is done; a
// peer from that address that opens TCP to the TLS port and never
// handshakes must be closed at the handshake timeout, never online.
func TestTLSMatchedLampHandshakeBounded(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "matched CA")
	cert, key := ca.Server(t).WriteFiles(t, dir, "server")
	g, addrs, _ := startWithDevices(t, "devices:\n  - {id: hall, match: 127.0.0.1}\n", func(o *gateway.Options) {
		o.BridgeTLSAddr, o.TLSCertFile, o.TLSKeyFile = "127.0.0.1:0", cert, key
		o.LampHandshakeTimeout = 200 * time.Millisecond
	})
	a := newApp(t, addrs.MQTT, "lamp/hall/availability")
	a.expectPayload("lamp/hall/availability", "offline") // retained: not connected
	start := time.Now()
	closedBy(t, addrs.BridgeTLS, "")
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("closed after %v, want no sooner than the handshake timeout", took)
	}
	// Known by its address, but only once TLS is up: a peer that never
	// finished the handshake was never the lamp, nor ever online.
	if st, _ := g.Registry().Get("hall"); st.Online || !st.LastSeen.IsZero() {
		t.Errorf("hall after a failed handshake: got %+v, want never attached", st)
	}

	// A lamp at that address that does handshake is the matched device.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addrs.BridgeTLS.String(), tlstest.ClientConfig(ca, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l := &lamp{t: t, conn: conn, r: bufio.NewReader(conn)}
	a.expectPayload("lamp/hall/availability", "online")
	l.send("brightness=3\n")
	a.publish("lamp/hall/brightness/set", "4", false)
	l.expectLine("brightness=4")
}
