package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lampgw/lampgw/internal/tlstest"
)

// TestRunTLSSettingErrors: a TLS listener without a certificate, or with
// files that do not load, stops lampgw before it listens, with one line
// naming the setting (and the file) and exit code 2.
func TestRunTLSSettingErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "run CA")
	cert, key := ca.Server(t).WriteFiles(t, dir, "server")
	_, otherKey := ca.Server(t).WriteFiles(t, dir, "other")
	garbage := tlstest.WriteFile(t, dir, "garbage.pem", []byte("garbage\n"))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			"TLS listener without certificate",
			[]string{"--mqtts-addr", "127.0.0.1:0"},
			"lampgw: tls-cert: mqtts-addr is set, so TLS needs tls-cert and tls-key\n",
		},
		{
			"certificate without key",
			[]string{"--bridge-tls-addr", "127.0.0.1:0", "--tls-cert", cert},
			"lampgw: tls-key: bridge-tls-addr is set, so TLS needs tls-cert and tls-key\n",
		},
		{
			"certificate file missing",
			[]string{"--https-addr", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", key},
			fmt.Sprintf("lampgw: tls-cert %q: no such file or directory\n", missing),
		},
		{
			"key of another certificate",
			[]string{"--wss-addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", otherKey},
			fmt.Sprintf("lampgw: tls-key %q: tls: private key does not match public key\n", otherKey),
		},
		{
			"client CA not PEM",
			[]string{"--mqtts-addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", garbage},
			fmt.Sprintf("lampgw: tls-client-ca %q: tlsconf: no PEM CERTIFICATE block\n", garbage),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--mqtt-addr", "off", "--ws-addr", "off", "--http-addr", "off", "--bridge-addr", "off",
				"--data-dir", t.TempDir()}, tc.args...)
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), args, func(string) string { return "" }, &stdout, &stderr); code != 2 {
				t.Errorf("exit code: got %d, want 2", code)
			}
			if got := stderr.String(); got != tc.want {
				t.Errorf("stderr:\ngot  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// processPKI is a CA, a server certificate and a client certificate as
// files, for the binary and the mosquitto clients.
type processPKI struct {
	dir                   string
	ca                    *tlstest.CA
	caFile, cert, key     string
	clientCert, clientKey string
	server                *tlstest.Pair
}

func newProcessPKI(t *testing.T) *processPKI {
	t.Helper()
	p := &processPKI{dir: t.TempDir(), ca: tlstest.NewCA(t, "lampgw process test CA")}
	p.caFile = tlstest.WriteFile(t, p.dir, "ca.crt", p.ca.PEM)
	p.server = p.ca.Server(t)
	p.cert, p.key = p.server.WriteFiles(t, p.dir, "server")
	p.clientCert, p.clientKey = p.ca.Client(t, "mosquitto").WriteFiles(t, p.dir, "client")
	return p
}

// mosquittoTLS returns the arguments that point a mosquitto client at the
// MQTTS listener addr, trusting caFile, plus extra.
func mosquittoTLS(t *testing.T, addr, caFile string, extra ...string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("mqtts address %q: %v", addr, err)
	}
	return append([]string{"-h", host, "-p", port, "--cafile", caFile}, extra...)
}

// mosquittoPub runs mosquitto_pub with args and returns its error and
// output.
func mosquittoPub(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput()
	return string(out), err
}

// dialTLSLamp is a lamp's firmware speaking its lines over TLS.
func dialTLSLamp(t *testing.T, addr string, cfg *tls.Config) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: stepTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("lamp TLS handshake with %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

func lampSend(t *testing.T, conn net.Conn, frame string) {
	t.Helper()
	conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	if _, err := io.WriteString(conn, frame); err != nil {
		t.Fatalf("lamp write %q: %v", frame, err)
	}
}

func lampExpect(t *testing.T, conn net.Conn, r *bufio.Reader, want string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(stepTimeout))
	if got, err := r.ReadString('\n'); err != nil || got != want {
		t.Fatalf("lamp read: got %q (%v), want %q", got, err, want)
	}
}

// servedSerial completes a handshake with addr and returns the serial
// number of the certificate presented.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: stepTimeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestProcessMosquittoTLSInterop: the real mosquitto_sub and mosquitto_pub
// with --cafile against the MQTTS listener, a lamp over TLS on the bridge
// TLS listener, and certificates reloaded on SIGHUP.
func TestProcessMosquittoTLSInterop(t *testing.T) {
	t.Parallel()
	needMosquitto(t)
	p := newProcessPKI(t)
	gw, addrs := startLampgw(t, "--mqtts-addr", "127.0.0.1:0", "--wss-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
		"--bridge-tls-addr", "127.0.0.1:0", "--tls-cert", p.cert, "--tls-key", p.key)
	for _, name := range []string{"mqtts", "wss", "https", "bridge_tls"} {
		if _, port, err := net.SplitHostPort(addrs[name]); err != nil || port == "0" {
			t.Errorf("startup line %s=%q: got no real port, want 127.0.0.1:<port>", name, addrs[name])
		}
	}
	client := tlstest.ClientConfig(p.ca, nil)

	sub := startMosquittoSub(t, mosquittoTLS(t, addrs["mqtts"], p.caFile, "-t", "lamp/#")...)
	expect := func(want ...string) {
		t.Helper()
		seen := make(map[string]bool)
		sub.waitFor(t, fmt.Sprintf("mosquitto_sub lines %q", want), stepTimeout, func(line string) bool {
			for _, w := range want {
				if line == w {
					seen[w] = true
				}
			}
			return len(seen) == len(want)
		})
	}

	lamp, lampIn := dialTLSLamp(t, addrs["bridge_tls"], client)
	lampSend(t, lamp, "HELLO tlslamp\nbrightness=300\n")
	expect("lamp/tlslamp/availability online", "lamp/tlslamp/brightness 300")
	if out, err := mosquittoPub(t, mosquittoTLS(t, addrs["mqtts"], p.caFile, "-q", "1", "-t", "lamp/tlslamp/brightness/set", "-m", "600")...); err != nil {
		t.Fatalf("mosquitto_pub over TLS: %v\n%s", err, out)
	}
	lampExpect(t, lamp, lampIn, "brightness=600\n")

	// SIGHUP with a renewed certificate: new handshakes see it, and
	// mosquitto_sub and the lamp, connected before, carry on.
	renewed := p.ca.Server(t)
	renewed.WriteFiles(t, p.dir, "server")
	gw.cmd.Process.Signal(syscall.SIGHUP)
	line := gw.output.waitFor(t, "the renewed certificate loaded", stepTimeout, func(line string) bool {
		return strings.Contains(line, `"message":"TLS certificate loaded"`)
	})
	if want := fmt.Sprintf(`"serial":"%x"`, renewed.Cert.SerialNumber); !strings.Contains(line, want) {
		t.Errorf("reload line %s: want %s", line, want)
	}
	for _, name := range []string{"mqtts", "wss", "https", "bridge_tls"} {
		if got := servedSerial(t, addrs[name], client); got.Cmp(renewed.Cert.SerialNumber) != 0 {
			t.Errorf("%s after SIGHUP: serial %x, want %x", name, got, renewed.Cert.SerialNumber)
		}
	}
	lampSend(t, lamp, "brightness=301\n")
	expect("lamp/tlslamp/brightness 301")

	// A broken certificate on SIGHUP is refused; the renewed one stays.
	tlstest.WriteFile(t, p.dir, "server.crt", []byte("not a certificate\n"))
	gw.cmd.Process.Signal(syscall.SIGHUP)
	line = gw.output.waitFor(t, "the broken certificate refused", stepTimeout, func(line string) bool {
		return strings.Contains(line, "TLS certificates refused")
	})
	if !strings.Contains(line, "server.crt") {
		t.Errorf("refusal line %s: want the file named", line)
	}
	if got := servedSerial(t, addrs["mqtts"], client); got.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Errorf("after a refused reload: serial %x, want %x", got, renewed.Cert.SerialNumber)
	}
	if out, err := mosquittoPub(t, mosquittoTLS(t, addrs["mqtts"], p.caFile, "-q", "1", "-t", "lamp/tlslamp/brightness/set", "-m", "601")...); err != nil {
		t.Fatalf("mosquitto_pub after a refused reload: %v\n%s", err, out)
	}
	lampExpect(t, lamp, lampIn, "brightness=601\n")

	stopLampgw(t, gw, syscall.SIGTERM)
}

// TestProcessMosquittoMutualTLS: with --tls-client-ca, mosquitto_pub
// without a client certificate is refused and with one is let in.
func TestProcessMosquittoMutualTLS(t *testing.T) {
	t.Parallel()
	needMosquitto(t)
	p := newProcessPKI(t)
	gw, addrs := startLampgw(t, "--mqtts-addr", "127.0.0.1:0", "--tls-cert", p.cert, "--tls-key", p.key, "--tls-client-ca", p.caFile)
	withCert := func(extra ...string) []string {
		return mosquittoTLS(t, addrs["mqtts"], p.caFile, append([]string{"--cert", p.clientCert, "--key", p.clientKey}, extra...)...)
	}
	sub := startMosquittoSub(t, withCert("-t", "mtls/#")...)

	if out, err := mosquittoPub(t, mosquittoTLS(t, addrs["mqtts"], p.caFile, "-q", "1", "-t", "mtls/anon", "-m", "x")...); err == nil {
		t.Errorf("mosquitto_pub without a client certificate: succeeded, want refused\n%s", out)
	}
	// Retained, so mosquitto_sub gets it however late it subscribes.
	if out, err := mosquittoPub(t, withCert("-q", "1", "-r", "-t", "mtls/member", "-m", "hello")...); err != nil {
		t.Fatalf("mosquitto_pub with a client certificate: %v\n%s", err, out)
	}
	sub.waitFor(t, "mosquitto_sub with a client certificate to get the message", stepTimeout, func(line string) bool {
		return line == "mtls/member hello"
	})
	stopLampgw(t, gw, syscall.SIGTERM)
}
