package api

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/lampgw/lampgw/auth"
)

// maxLoggedName bounds a client-chosen user name in a log line.
const maxLoggedName = 64

// refusal is why a request is not served.
type refusal struct {
	code   int
	reason string
	// user is the name the client gave, for the log; "" if none.
	user string
}

// authenticate returns the rights of r's client, following the broker's
// rules for MQTT logins (broker/auth.go), or why it is refused.
func (s *Server) authenticate(r *http.Request) (*auth.User, *refusal) {
	users := s.users.Load()
	remote := remoteAddr(r.RemoteAddr)
	name, password, hasLogin := r.BasicAuth()
	switch {
	case users == nil:
		// Credentials are ignored, as the broker ignores them without a
		// users file.
		if s.opts.AllowAnonymous {
			return auth.Anonymous(nil), nil
		}
		if !remote.Unmap().IsLoopback() {
			return nil, &refusal{code: http.StatusForbidden, reason: "anonymous client refused: only loopback may connect without --allow-anonymous"}
		}
		if !localHost(r.Host) {
			return nil, &refusal{code: http.StatusForbidden, reason: "anonymous client refused: on loopback, name the server by localhost or an IP address (no DNS names, against DNS rebinding)"}
		}
		return auth.Anonymous(nil), nil
	case !hasLogin:
		if r.Header.Get("Authorization") != "" {
			return nil, &refusal{code: http.StatusUnauthorized, reason: "login refused: only Basic authorization is supported"}
		}
		if !s.opts.AllowAnonymous {
			return nil, &refusal{code: http.StatusUnauthorized, reason: "login required: users are configured (--allow-anonymous lets anonymous clients in as viewers)"}
		}
		return auth.Anonymous(users), nil
	}
	u, err := s.verifier.Verify(users, remote, name, []byte(password))
	switch {
	case errors.Is(err, auth.ErrTooManyFailures):
		return nil, &refusal{code: http.StatusTooManyRequests, reason: "login refused: too many failed logins from this address; not checked", user: name}
	case err != nil:
		return nil, &refusal{code: http.StatusUnauthorized, reason: "login refused: bad user name or password", user: name}
	}
	return u, nil
}

// refuse answers a refusal and logs it, rate limited, with the address
// and user name, never the password.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, ref *refusal) {
	ev := s.warn.Warn().Str("remote", r.RemoteAddr).Str("method", r.Method).Str("path", clip(r.URL.Path, 256)).Int("status", ref.code)
	if ref.user != "" {
		ev = ev.Str("user", clip(ref.user, maxLoggedName))
	}
	ev.Msg(ref.reason)
	switch ref.code {
	case http.StatusUnauthorized:
		// A browser asks for a login on this, and sends it with every
		// later request to the same origin, EventSource's included.
		w.Header().Set("WWW-Authenticate", `Basic realm="lampgw", charset="UTF-8"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "2") // auth.DefaultFailureInterval
	}
	fail(w, ref.code, ref.reason)
}

// forbidden is the refusal of something u may not do. An anonymous
// viewer is asked to log in (401) rather than told no, so that a browser
// offers its login dialog.
func forbidden(u *auth.User, reason string) *refusal {
	if u.Name == "" && u.Role < auth.RoleAdmin {
		return &refusal{code: http.StatusUnauthorized, reason: reason + "; log in as a user who may"}
	}
	return &refusal{code: http.StatusForbidden, reason: reason, user: u.Name}
}

// remoteAddr parses a request's RemoteAddr; the zero Addr if it can't.
func remoteAddr(hostport string) netip.Addr {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// localHost reports whether a Host header names the server by an IP
// address or as localhost, not by a DNS name someone else controls.
func localHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	// RFC 6761 6.3: localhost and names under it are loopback.
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// clip shortens a client-chosen string for a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
