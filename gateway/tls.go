package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/tlsconf"
)

// tlsListener returns the setting of the first TLS listener enabled, or
// "" if none is.
func (o *Options) tlsListener() string {
	for _, l := range []struct{ setting, addr string }{
		{"mqtts-addr", o.MQTTSAddr},
		{"wss-addr", o.WSSAddr},
		{"https-addr", o.HTTPSAddr},
		{"bridge-tls-addr", o.BridgeTLSAddr},
	} {
		if l.addr != "" {
			return l.setting
		}
	}
	return ""
}

// loadCerts reads the certificate, key and client CA when a TLS listener
// is enabled. Without one they are not read at all, so that a config
// file may keep naming them while TLS is switched off.
func (g *Gateway) loadCerts() error {
	listener := g.opts.tlsListener()
	if listener == "" {
		return nil
	}
	for _, f := range []struct{ setting, file string }{
		{"tls-cert", g.opts.TLSCertFile},
		{"tls-key", g.opts.TLSKeyFile},
	} {
		if f.file == "" {
			return &SettingError{Setting: f.setting, Err: fmt.Errorf("%s is set, so TLS needs tls-cert and tls-key", listener)}
		}
	}
	certs, err := tlsconf.New(tlsconf.Options{
		CertFile:     g.opts.TLSCertFile,
		KeyFile:      g.opts.TLSKeyFile,
		ClientCAFile: g.opts.TLSClientCAFile,
	})
	if fe, ok := errors.AsType[*tlsconf.FileError](err); ok {
		setting := map[tlsconf.Role]string{
			tlsconf.RoleCert:     "tls-cert",
			tlsconf.RoleKey:      "tls-key",
			tlsconf.RoleClientCA: "tls-client-ca",
		}[fe.Role]
		return &SettingError{Setting: setting, Value: fe.File, Err: fe.Err}
	}
	if err != nil {
		return err
	}
	g.certs = certs
	return nil
}

// listenTLSLocked binds the HTTPS and bridge TLS listeners, if enabled;
// the broker binds its own. g.mu is held.
func (g *Gateway) listenTLSLocked() (err error) {
	if g.certs == nil {
		return nil
	}
	g.logCerts()
	if g.httpsLn, err = listen("https-addr", g.opts.HTTPSAddr); err != nil {
		return err
	}
	if g.httpsLn != nil {
		// http.Server handshakes a *tls.Conn itself, bounded by its
		// ReadHeaderTimeout.
		g.httpsLn = tls.NewListener(g.httpsLn, g.certs.Config())
	}
	if g.bridgeTLSLn, err = listen("bridge-tls-addr", g.opts.BridgeTLSAddr); err != nil {
		return err
	}
	if g.bridgeTLSLn != nil {
		// The bridge clears a lamp's read deadline before its first read
		// when the lamp is matched by address, so the handshake gets a
		// bound of its own, the lamps' handshake timeout.
		warn := g.log.With().Str("component", "bridge").Str("listener", "bridge-tls").Logger().
			Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second})
		g.bridgeTLSLn = tlsconf.NewListener(g.bridgeTLSLn, g.certs.Config(), g.opts.LampHandshakeTimeout, warn)
	}
	return nil
}

// tlsConfig returns a server configuration for one listener; nil without
// TLS.
func (g *Gateway) tlsConfig() *tls.Config {
	if g.certs == nil {
		return nil
	}
	return g.certs.Config()
}

// reloadCerts reads the TLS files again. New handshakes use them;
// connections already open are untouched. Files that do not load are
// refused with one log line and the certificate in force stays.
func (g *Gateway) reloadCerts() error {
	if err := g.certs.Reload(); err != nil {
		g.log.Error().Str("reason", err.Error()).Msg("TLS certificates refused; the certificates in force stay")
		return err
	}
	g.logCerts()
	return nil
}

// logCerts logs the certificate in force; a warning if it has expired,
// since clients will refuse it.
func (g *Gateway) logCerts() {
	leaf := g.certs.Leaf()
	ev := g.log.Info()
	if time.Now().After(leaf.NotAfter) {
		ev = g.log.Warn().Bool("expired", true)
	}
	ev.Str("file", g.opts.TLSCertFile).
		Str("subject", leaf.Subject.String()).
		Str("serial", leaf.SerialNumber.Text(16)).
		Time("not_after", leaf.NotAfter).
		Bool("client_ca", g.certs.MutualTLS()).
		Msg("TLS certificate loaded")
}

// httpErrorLog is http.Server's ErrorLog: failed TLS handshakes on the
// HTTPS listener are reported there, and anyone who can reach the port
// can cause them, so it is sampled. Without it net/http would write
// plain lines to stderr, between our JSON ones.
func (g *Gateway) httpErrorLog() *log.Logger {
	warn := g.log.With().Str("component", "http").Logger().
		Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second})
	return slog.NewLogLogger(zerolog.NewSlogHandler(warn), slog.LevelWarn)
}

// addrOf returns ln's address, nil for a disabled listener.
func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}
