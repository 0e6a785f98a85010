// Package tlsconf loads lampgw's TLS server certificate, its key and the
// optional client CA from PEM files, and swaps them on Reload without
// touching connections already open.
//
// One Certs serves every TLS listener. Each listener gets its own
// *tls.Config from Certs.Config; those configs hold no certificate
// themselves but pick the one in force per handshake
// (tls.Config.GetConfigForClient), so after a successful Reload the next
// handshake on any listener presents the new certificate and checks
// clients against the new CA. A Reload whose files do not load changes
// nothing and returns a *FileError naming the file, as New does.
//
// The settings are fixed here, not configurable: TLS 1.2 at least (what
// BearSSL on an ESP8266 speaks; older versions are broken), Go's default
// cipher suites, and with a client CA, tls.RequireAndVerifyClientCert:
// a client without a certificate signed by it is refused in the
// handshake. A resumed session is checked against the CA in force too
// (crypto/tls re-verifies its chains), so removing a CA on Reload locks
// its clients out at their next connection.
//
// crypto/tls handshakes lazily, on a connection's first Read or Write,
// with whatever deadline the caller set, or none. NewListener wraps a
// listener so that every handshake is bounded by its own timeout, for
// servers (the lamp bridge) that may clear their read deadline before
// the first read.
package tlsconf
