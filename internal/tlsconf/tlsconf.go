package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
)

// MaxFileSize bounds each PEM file; a certificate chain or a CA bundle is
// a few KiB.
const MaxFileSize = 1 << 20

// MinVersion is the oldest TLS version any listener accepts.
const MinVersion = tls.VersionTLS12

// Options name the PEM files.
type Options struct {
	// CertFile holds the server certificate, then any intermediates;
	// required.
	CertFile string
	// KeyFile holds the certificate's private key; required.
	KeyFile string
	// ClientCAFile holds the CA certificates that sign client
	// certificates; "" means clients need none.
	ClientCAFile string
}

// Certs is the certificate, key and client CA in force. Its methods are
// safe for concurrent use.
type Certs struct {
	opts Options
	// reloadMu serialises Reload, so the last file read is the one kept.
	reloadMu sync.Mutex
	cur      atomic.Pointer[loaded]
}

// loaded is one successful read of the files.
type loaded struct {
	// cfg is what a handshake uses; never modified once stored.
	cfg  *tls.Config
	leaf *x509.Certificate
}

// New reads the files. A file that cannot be read or parsed, or a key
// that does not match the certificate, gives a *FileError.
func New(opts Options) (*Certs, error) {
	l, err := load(opts)
	if err != nil {
		return nil, err
	}
	c := &Certs{opts: opts}
	c.cur.Store(l)
	return c, nil
}

// Reload reads the files again. If they load, later handshakes use them;
// connections already open keep what they negotiated. If not, it returns
// a *FileError and what was in force stays.
func (c *Certs) Reload() error {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	l, err := load(c.opts)
	if err != nil {
		return err
	}
	c.cur.Store(l)
	return nil
}

// Leaf returns the certificate in force, for logging its serial number
// and expiry.
func (c *Certs) Leaf() *x509.Certificate { return c.cur.Load().leaf }

// MutualTLS reports whether clients must present a certificate.
func (c *Certs) MutualTLS() bool { return c.opts.ClientCAFile != "" }

// Config returns a server configuration for one listener, for
// tls.NewListener or NewListener. It negotiates no application protocol
// (ALPN), so HTTPS and WebSocket over it speak HTTP/1.1.
func (c *Certs) Config() *tls.Config {
	return &tls.Config{
		MinVersion: MinVersion,
		// The returned config replaces this one for the handshake; its
		// session ticket keys still come from this one (crypto/tls
		// handshake_server.go), so tickets survive a Reload.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return c.cur.Load().cfg, nil
		},
	}
}

func load(opts Options) (*loaded, error) {
	certPEM, err := readFile(opts.CertFile)
	if err != nil {
		return nil, &FileError{Role: RoleCert, File: opts.CertFile, Err: err}
	}
	// Parsed here first so that a broken certificate is blamed on its
	// own file: tls.X509KeyPair's errors do not say which input failed.
	if _, err := parseCerts(certPEM); err != nil {
		return nil, &FileError{Role: RoleCert, File: opts.CertFile, Err: err}
	}
	keyPEM, err := readFile(opts.KeyFile)
	if err != nil {
		return nil, &FileError{Role: RoleKey, File: opts.KeyFile, Err: err}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &FileError{Role: RoleKey, File: opts.KeyFile, Err: err}
	}
	cfg := &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{pair},
	}
	if opts.ClientCAFile != "" {
		pool, err := readPool(opts.ClientCAFile)
		if err != nil {
			return nil, &FileError{Role: RoleClientCA, File: opts.ClientCAFile, Err: err}
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	// X509KeyPair fills Leaf since Go 1.23.
	return &loaded{cfg: cfg, leaf: pair.Leaf}, nil
}

func readPool(path string) (*x509.CertPool, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseCerts returns every CERTIFICATE block of data, parsed. Other blocks
// are skipped, as tls.X509KeyPair skips them, so a file holding both
// certificate and key works as the certificate file.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	return certs, nil
}

// readFile reads at most MaxFileSize bytes of path. An open error is
// returned without its *fs.PathError, whose text would repeat the path
// that FileError already names.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, pe.Err
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, ErrFileTooLarge
	}
	return data, nil
}
