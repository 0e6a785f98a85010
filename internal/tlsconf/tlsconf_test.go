package tlsconf_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lampgw/lampgw/internal/tlsconf"
	"github.com/lampgw/lampgw/internal/tlstest"
)

const wait = 5 * time.Second

// pki is one test's CA, two server pairs and a client pair, with the
// first server pair and the CA written to files.
type pki struct {
	dir                 string
	ca                  *tlstest.CA
	a, b                *tlstest.Pair
	client              *tlstest.Pair
	cert, key, clientCA string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: tlstest.NewCA(t, "test CA")}
	p.a, p.b = p.ca.Server(t), p.ca.Server(t)
	p.client = p.ca.Client(t, "lamp1")
	p.cert, p.key = p.a.WriteFiles(t, p.dir, "server")
	p.clientCA = tlstest.WriteFile(t, p.dir, "ca.crt", p.ca.PEM)
	return p
}

func TestNewFileErrors(t *testing.T) {
	p := newPKI(t)
	other := p.ca.Server(t)
	write := func(name string, data []byte) string { return tlstest.WriteFile(t, p.dir, name, data) }
	garbage := write("garbage.pem", []byte("not PEM at all\n"))
	badDER := write("bad-der.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	keyOnly := write("key-only.pem", p.a.KeyPEM)
	otherKey := write("other.key", other.KeyPEM)
	huge := write("huge.pem", bytes.Repeat([]byte("x"), tlsconf.MaxFileSize+1))
	missing := p.dir + "/missing.pem"

	tests := []struct {
		name     string
		opts     tlsconf.Options
		wantRole tlsconf.Role
		wantFile string
		wantErr  error  // errors.Is, when not nil
		wantText string // in the error text, when not ""
	}{
		{"cert missing", tlsconf.Options{CertFile: missing, KeyFile: p.key}, tlsconf.RoleCert, missing, fs.ErrNotExist, ""},
		{"cert not PEM", tlsconf.Options{CertFile: garbage, KeyFile: p.key}, tlsconf.RoleCert, garbage, tlsconf.ErrNoCertificate, ""},
		{"cert file holds only a key", tlsconf.Options{CertFile: keyOnly, KeyFile: p.key}, tlsconf.RoleCert, keyOnly, tlsconf.ErrNoCertificate, ""},
		{"cert not DER", tlsconf.Options{CertFile: badDER, KeyFile: p.key}, tlsconf.RoleCert, badDER, nil, "x509"},
		{"cert too large", tlsconf.Options{CertFile: huge, KeyFile: p.key}, tlsconf.RoleCert, huge, tlsconf.ErrFileTooLarge, ""},
		{"key missing", tlsconf.Options{CertFile: p.cert, KeyFile: missing}, tlsconf.RoleKey, missing, fs.ErrNotExist, ""},
		{"key not PEM", tlsconf.Options{CertFile: p.cert, KeyFile: garbage}, tlsconf.RoleKey, garbage, nil, "PEM"},
		{"key of another cert", tlsconf.Options{CertFile: p.cert, KeyFile: otherKey}, tlsconf.RoleKey, otherKey, nil, "does not match"},
		{"client CA missing", tlsconf.Options{CertFile: p.cert, KeyFile: p.key, ClientCAFile: missing}, tlsconf.RoleClientCA, missing, fs.ErrNotExist, ""},
		{"client CA not PEM", tlsconf.Options{CertFile: p.cert, KeyFile: p.key, ClientCAFile: garbage}, tlsconf.RoleClientCA, garbage, tlsconf.ErrNoCertificate, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsconf.New(tt.opts)
			fe, ok := errors.AsType[*tlsconf.FileError](err)
			if !ok {
				t.Fatalf("New: got %v, want a *FileError", err)
			}
			if fe.Role != tt.wantRole || fe.File != tt.wantFile {
				t.Errorf("FileError: got %s %q, want %s %q", fe.Role, fe.File, tt.wantRole, tt.wantFile)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("New: got %v, want it to wrap %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("New: got %q, want it to say %q", err, tt.wantText)
			}
			// The file is named once: no *fs.PathError repeating it.
			if n := strings.Count(err.Error(), tt.wantFile); n != 1 {
				t.Errorf("New: got %q, naming the file %d times, want once", err, n)
			}
		})
	}
}

// newCerts is tlsconf.New for options that must load.
func newCerts(t *testing.T, opts tlsconf.Options) *tlsconf.Certs {
	t.Helper()
	certs, err := tlsconf.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

// listen returns a loopback listener wrapped by wrap, served by handle on
// a goroutine per connection until the test ends.
func listen(t *testing.T, wrap func(net.Listener) net.Listener, handle func(net.Conn)) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := wrap(inner)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return inner.Addr().String()
}

// serve accepts TLS connections with config and echoes what each sends;
// it returns the address.
func serve(t *testing.T, config *tls.Config) string {
	t.Helper()
	return listen(t, func(ln net.Listener) net.Listener { return tls.NewListener(ln, config) }, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(wait))
		io.Copy(c, c)
	})
}

// handshake reports whether a client with config gets through to the
// echo server at addr.
func handshake(addr string, config *tls.Config) error {
	c, _, err := dial(addr, config)
	if err == nil {
		c.Close()
	}
	return err
}

// dial completes a handshake and one echo with the server at addr, and
// returns the connection and the serial number the server presented.
// Under TLS 1.3 a client learns that the server refused its certificate
// only when it reads, so the echo is part of it.
func dial(addr string, config *tls.Config) (*tls.Conn, *big.Int, error) {
	d := &net.Dialer{Timeout: wait}
	c, err := tls.DialWithDialer(d, "tcp", addr, config)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(wait))
	if err := echo(c); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func echo(c net.Conn) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != "ping" {
		return errors.New("echo: got " + string(got))
	}
	return nil
}

func TestReload(t *testing.T) {
	p := newPKI(t)
	certs := newCerts(t, tlsconf.Options{CertFile: p.cert, KeyFile: p.key})
	addr := serve(t, certs.Config())
	client := tlstest.ClientConfig(p.ca, nil)
	serial := func() *big.Int {
		t.Helper()
		c, s, err := dial(addr, client)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		c.Close()
		return s
	}
	if got := serial(); got.Cmp(p.a.Cert.SerialNumber) != 0 {
		t.Fatalf("serial before reload: got %v, want %v (A)", got, p.a.Cert.SerialNumber)
	}
	old, _, err := dial(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	steps := []struct {
		name       string
		cert, key  []byte
		wantRole   tlsconf.Role // "": Reload succeeds
		wantSerial *big.Int
	}{
		{"new pair", p.b.CertPEM, p.b.KeyPEM, "", p.b.Cert.SerialNumber},
		{"broken cert", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), p.b.KeyPEM, tlsconf.RoleCert, p.b.Cert.SerialNumber},
		{"half-written renewal: new cert, old key", p.a.CertPEM, p.b.KeyPEM, tlsconf.RoleKey, p.b.Cert.SerialNumber},
		{"empty key", p.a.CertPEM, nil, tlsconf.RoleKey, p.b.Cert.SerialNumber},
		{"back to the first pair", p.a.CertPEM, p.a.KeyPEM, "", p.a.Cert.SerialNumber},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			tlstest.WriteFile(t, p.dir, "server.crt", st.cert)
			tlstest.WriteFile(t, p.dir, "server.key", st.key)
			err := certs.Reload()
			if st.wantRole == "" && err != nil {
				t.Fatalf("Reload: got %v, want nil", err)
			}
			if st.wantRole != "" {
				if fe, ok := errors.AsType[*tlsconf.FileError](err); !ok || fe.Role != st.wantRole {
					t.Fatalf("Reload: got %v, want a *FileError about the %s", err, st.wantRole)
				}
			}
			if got := serial(); got.Cmp(st.wantSerial) != 0 {
				t.Errorf("serial of a new handshake: got %v, want %v", got, st.wantSerial)
			}
			if got := certs.Leaf().SerialNumber; got.Cmp(st.wantSerial) != 0 {
				t.Errorf("Leaf: got serial %v, want %v", got, st.wantSerial)
			}
			// The connection made before any reload is untouched.
			old.SetDeadline(time.Now().Add(wait))
			if err := echo(old); err != nil {
				t.Errorf("connection from before the reload: %v", err)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	certs := newCerts(t, tlsconf.Options{CertFile: p.cert, KeyFile: p.key, ClientCAFile: p.clientCA})
	if !certs.MutualTLS() {
		t.Error("MutualTLS: got false with a client CA, want true")
	}
	addr := serve(t, certs.Config())
	stranger := tlstest.NewCA(t, "another CA")
	newCA := tlstest.NewCA(t, "next CA")

	tests := []struct {
		name   string
		client *tlstest.Pair
		ok     bool
	}{
		{"no client certificate", nil, false},
		{"signed by the client CA", p.client, true},
		{"signed by another CA", stranger.Client(t, "intruder"), false},
		{"a server certificate of the CA", p.b, false}, // ExtKeyUsageServerAuth only
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, maxVersion := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				cfg := tlstest.ClientConfig(p.ca, tt.client)
				cfg.MaxVersion = maxVersion
				if err := handshake(addr, cfg); (err == nil) != tt.ok {
					t.Errorf("%s: got %v, want accepted %v", tls.VersionName(maxVersion), err, tt.ok)
				}
			}
		})
	}

	// A reload with another CA locks the old CA's clients out, and
	// lets the new one's in.
	tlstest.WriteFile(t, p.dir, "ca.crt", newCA.PEM)
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, tlstest.ClientConfig(p.ca, p.client)); err == nil {
		t.Error("client of the removed CA: accepted, want refused")
	}
	if err := handshake(addr, tlstest.ClientConfig(p.ca, newCA.Client(t, "lamp2"))); err != nil {
		t.Errorf("client of the new CA: %v", err)
	}
}

func TestMinVersion(t *testing.T) {
	p := newPKI(t)
	addr := serve(t, newCerts(t, tlsconf.Options{CertFile: p.cert, KeyFile: p.key}).Config())
	tests := []struct {
		version uint16
		ok      bool
	}{
		{tls.VersionTLS10, false},
		{tls.VersionTLS11, false},
		{tls.VersionTLS12, true},
		{tls.VersionTLS13, true},
	}
	for _, tt := range tests {
		t.Run(tls.VersionName(tt.version), func(t *testing.T) {
			cfg := tlstest.ClientConfig(p.ca, nil)
			cfg.MinVersion, cfg.MaxVersion = tt.version, tt.version
			if err := handshake(addr, cfg); (err == nil) != tt.ok {
				t.Errorf("got %v, want accepted %v", err, tt.ok)
			}
		})
	}
}
