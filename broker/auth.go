package broker

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/auth"
)

// ErrNoUsers is returned by SetUsers on a broker made without
// Options.Users.
var ErrNoUsers = errors.New("broker: no users file was configured")

// maxLoggedName bounds a client-chosen user name in a log line.
const maxLoggedName = 64

// authHook decides who may connect and what each client may publish,
// subscribe to and receive. It is our own hook, not mochi's auth ledger,
// which compares plain passwords and walks its ACL in map order; mochi
// v2.7.9 refuses every client when no hook provides
// OnConnectAuthenticate (hooks.go), and allows an ACL check when any hook
// does (Hooks.OnACLCheck), so this is the only hook that provides either.
//
// Who is let in (OnConnect), first match deciding:
//
//   - no users file: every client, its credentials ignored, from loopback,
//     or from anywhere with AllowAnonymous (as Mosquitto 2 does);
//   - users file, no user name: only with AllowAnonymous, as a viewer
//     (Mosquitto 2 refuses anonymous clients once a password file is set,
//     unless allow_anonymous is true);
//   - users file, a user name: only with that user's password
//     (auth.Verifier: cached, failures limited per address).
//
// Every refusal is "not authorized", v5 reason code 0x87 and v3.1.1
// return code 5, as Mosquitto 2 answers a wrong password, an unknown user
// and a missing one alike, and one rate-limited warning with the address
// and the user name, never the password.
//
// What a client may do is the acl's (package auth) for the user it logged
// in as, which sessions holds per client. With no acl every client may
// do everything.
type authHook struct {
	mqtt.HookBase
	srv       *mqtt.Server
	allowAnon bool
	acl       *auth.ACL // nil: no checks
	verifier  *auth.Verifier
	// warn is rate limited: a refused client may retry at will.
	warn zerolog.Logger

	// mu orders logins against SetUsers, so that a login checked against
	// a users file that was just replaced is checked again (gen).
	mu    sync.Mutex
	users *auth.Users // nil: no users file
	gen   uint64
	// sessions maps each *mqtt.Client that logged in to its *auth.User.
	// An entry lives as long as mochi keeps the client: through a
	// persistent session's absence, until it expires or is taken over.
	sessions sync.Map
	// sweepAt is the sessions count at which sweepLocked next runs.
	sweepAt   int
	nSessions int
}

func newAuthHook(srv *mqtt.Server, opts Options) *authHook {
	return &authHook{
		srv:       srv,
		allowAnon: opts.AllowAnonymous,
		acl:       opts.ACL,
		users:     opts.Users,
		verifier:  auth.NewVerifier(auth.VerifierOptions{}),
		warn:      opts.Logger.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
		sweepAt:   minSweep,
	}
}

// minSweep is the least number of sessions at which stale ones are
// looked for.
const minSweep = 256

func (h *authHook) ID() string { return "lampgw-auth" }

func (h *authHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck:
		return true
	case mqtt.OnDisconnect, mqtt.OnClientExpired, mqtt.OnWill, mqtt.OnSubscribed:
		return h.acl != nil
	}
	return false
}

// OnConnect decides whether cl may connect; see authHook. It answers a
// refusal itself because mochi answers a false OnConnectAuthenticate
// with "bad user name or password" (server.go attachClient), 0x86 to v5
// clients.
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.ID == mqtt.InlineClientId {
		// mochi's in-process client has this id, and a network client
		// taking it would take over that client's session.
		h.warn.Warn().Str("remote", cl.Net.Remote).Msg("client id \"inline\" refused: it is the broker's own")
		h.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	h.mu.Lock()
	users, gen := h.users, h.gen
	h.mu.Unlock()

	name := string(cl.Properties.Username)
	var u *auth.User
	switch {
	case users == nil:
		if !h.allowAnon && !isLoopback(cl.Net.Remote) {
			return h.refuse(cl, "", "anonymous client refused: only loopback may connect without --allow-anonymous")
		}
		u = auth.Anonymous(nil)
	case name == "":
		if !h.allowAnon {
			return h.refuse(cl, "", "anonymous client refused: users are configured (--allow-anonymous lets anonymous clients in as viewers)")
		}
		u = auth.Anonymous(users)
	default:
		var err error
		u, err = h.verifier.Verify(users, remoteAddr(cl.Net.Remote), name, pk.Connect.Password)
		if err != nil {
			reason := "bad user name or password"
			if errors.Is(err, auth.ErrTooManyFailures) {
				reason = "too many failed logins from this address; not checked"
			}
			return h.refuse(cl, name, "login refused: "+reason)
		}
	}
	if h.acl == nil {
		return nil
	}

	h.mu.Lock()
	if h.gen != gen && u.Name != "" {
		// SetUsers ran during the check: the client must pass the new
		// file as a connected client would.
		nu, _ := h.users.Lookup(u.Name)
		if auth.Narrowed(u, nu) {
			h.mu.Unlock()
			return h.refuse(cl, name, "login refused: the users file changed during the login")
		}
		u = nu
	}
	h.sessions.Store(cl, u)
	h.nSessions++
	if h.nSessions >= h.sweepAt {
		h.sweepLocked()
	}
	h.mu.Unlock()
	return nil
}

// refuse answers cl's CONNECT with "not authorized" and logs why.
func (h *authHook) refuse(cl *mqtt.Client, user, why string) error {
	ev := h.warn.Warn().Str("remote", cl.Net.Remote).Str("listener", cl.Net.Listener)
	if user != "" {
		ev = ev.Str("user", clip(user, maxLoggedName))
	}
	ev.Msg(why)
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		// packets.V5CodesToV3 has no entry for 0x87, so SendConnack would
		// send 0x87, which v3 clients can't read; it maps this one to the
		// v3 return code 5, not authorized.
		code = packets.ErrBadUsernameOrPassword
	}
	h.srv.SendConnack(cl, code, false, nil)
	return packets.ErrNotAuthorized
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// user returns the user cl logged in as, or nil if it has no rights (a
// client SetUsers has just cut off).
func (h *authHook) user(cl *mqtt.Client) *auth.User {
	if v, ok := h.sessions.Load(cl); ok {
		return v.(*auth.User)
	}
	return nil
}

// OnACLCheck is asked by mochi v2.7.9 (server.go) with write true for
// every PUBLISH a network client sends (processPublish; the inline
// client, which the gateway publishes through, is not asked), and with
// write false both for each SUBSCRIBE filter (processSubscribe) and for
// each message about to be delivered to a client (publishToClient, which
// the retained replay goes through too). auth.ACL.CanSubscribe answers
// the last two at once: for a topic without wildcards it is CanRead.
//
// A refused PUBLISH is dropped at QoS 0; at QoS 1 and 2 mochi answers a
// v5 client PUBACK or PUBREC 0x87, and disconnects a v3 client, which
// has no negative acknowledgement. A v5 PUBLISH that names its topic by
// alias alone is checked with topic "" (mochi resolves the alias after
// asking), which only an admin may write (rule W5), and the alias names
// a topic the same client was allowed to write when it set it.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if h.acl == nil || cl.Net.Inline {
		return true
	}
	u := h.user(cl)
	if !write {
		return h.acl.CanSubscribe(u, topic)
	}
	if h.acl.CanWrite(u, topic) {
		return true
	}
	h.warn.Warn().Str("client", cl.ID).Str("remote", cl.Net.Remote).Str("user", userName(u, cl)).
		Str("topic", clip(topic, 256)).Msg("publish refused")
	return false
}

// OnSubscribed logs the filters of a SUBSCRIBE that were refused.
func (h *authHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	for i, code := range reasonCodes {
		if code >= packets.ErrUnspecifiedError.Code && i < len(pk.Filters) {
			h.warn.Warn().Str("client", cl.ID).Str("remote", cl.Net.Remote).Str("user", userName(h.user(cl), cl)).
				Str("filter", clip(pk.Filters[i].Filter, 256)).Uint8("code", code).Msg("subscription refused")
		}
	}
}

// OnWill checks a client's will message when mochi is about to publish
// it (server.go sendLWT), against the rights the client has then: a will
// is a PUBLISH made for the client, so it must not fake a lamp either,
// and a client cut off by SetUsers has no rights left. mochi v2.7.9
// ignores an OnWill error and sends the will unchanged, so a refused will
// is returned without a topic instead: mochi's index matches no
// subscriber to the empty topic (topics.go scanSubscribers), and with
// Retain false nothing is stored.
func (h *authHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	u := h.user(cl)
	if h.acl.CanWrite(u, will.TopicName) {
		return will, nil
	}
	h.warn.Warn().Str("client", cl.ID).Str("remote", cl.Net.Remote).Str("user", userName(u, cl)).
		Str("topic", clip(will.TopicName, 256)).Msg("will message dropped: not allowed to publish there")
	return mqtt.Will{}, nil
}

// OnDisconnect forgets cl when mochi forgets its session: a clean
// session ends with the connection, and a taken-over one is replaced by
// the new client (server.go attachClient, inheritClientSession).
func (h *authHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire || cl.IsTakenOver() {
		h.forget(cl)
	}
}

// OnClientExpired forgets a persistent session mochi expired.
func (h *authHook) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

func (h *authHook) forget(cl *mqtt.Client) {
	h.mu.Lock()
	if _, ok := h.sessions.LoadAndDelete(cl); ok {
		h.nSessions--
	}
	h.mu.Unlock()
}

// sweepLocked forgets sessions mochi no longer holds: a persistent
// session that was taken over after its client had gone has no hook
// call. It runs when the count of sessions doubles, so its cost per login
// stays constant.
func (h *authHook) sweepLocked() {
	h.sessions.Range(func(k, _ any) bool {
		cl := k.(*mqtt.Client)
		if cur, ok := h.srv.Clients.Get(cl.ID); cl.Closed() && (!ok || cur != cl) {
			h.sessions.Delete(cl)
			h.nSessions--
		}
		return true
	})
	h.sweepAt = max(2*h.nSessions, minSweep)
}

// CutClient is a client SetUsers disconnected.
type CutClient struct {
	ClientID, User, Remote string
}

// setUsers puts users in force. Each client logged in as a user whose
// rights narrowed (auth.Narrowed: removed, new password, lower role,
// fewer lamps) loses them at once and is disconnected with "not
// authorized", without its will; the others carry on with their new
// rights. Anonymous clients are not affected.
func (h *authHook) setUsers(users *auth.Users) []CutClient {
	var cut []*mqtt.Client
	h.mu.Lock()
	h.users = users
	h.gen++
	h.sessions.Range(func(k, v any) bool {
		cl, old := k.(*mqtt.Client), v.(*auth.User)
		if old.Name == "" {
			return true
		}
		nu, _ := users.Lookup(old.Name)
		if auth.Narrowed(old, nu) {
			h.sessions.Delete(cl)
			h.nSessions--
			cut = append(cut, cl)
		} else {
			h.sessions.Store(cl, nu)
		}
		return true
	})
	h.mu.Unlock()

	var out []CutClient
	for _, cl := range cut {
		out = append(out, CutClient{ClientID: cl.ID, User: string(cl.Properties.Username), Remote: cl.Net.Remote})
		if !cl.Closed() {
			// DisconnectClient writes a DISCONNECT (which v3 clients read
			// as the end) and closes the connection; the client's read
			// loop then ends, mochi sends the will, which OnWill drops
			// as this client has no rights now, and calls OnDisconnect.
			_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
	return out
}

// SetUsers replaces the users file in force, as on SIGHUP, and returns
// the clients it disconnected: those logged in as a user that is gone or
// whose password, role or lamps narrowed. Clients whose rights stayed or
// widened stay connected with the new rights. It returns ErrNoUsers if
// the broker was made without Options.Users, and ErrInvalidOptions for a
// nil users.
func (b *Broker) SetUsers(users *auth.Users) ([]CutClient, error) {
	switch {
	case users == nil:
		return nil, ErrInvalidOptions
	case b.opts.Users == nil:
		return nil, ErrNoUsers
	}
	return b.auth.setUsers(users), nil
}

// userName names u in a log line: the user name, "(anonymous)", or what
// the client sent when it has no rights left.
func userName(u *auth.User, cl *mqtt.Client) string {
	switch {
	case u == nil:
		return clip(string(cl.Properties.Username), maxLoggedName)
	case u.Name == "":
		return "(anonymous)"
	}
	return u.Name
}

// remoteAddr parses a client's host:port; the zero Addr if it can't.
func remoteAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// isLoopback reports whether remote, a host:port, is a loopback address.
func isLoopback(remote string) bool { return remoteAddr(remote).Unmap().IsLoopback() }
