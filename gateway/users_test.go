package gateway_test

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/gateway"
)

// testHash returns a bcrypt hash of password at the lowest cost, so that
// tests under -race stay fast.
func testHash(t *testing.T, password string) string {
	t.Helper()
	h, err := auth.HashPassword([]byte(password), 4)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// usersFile returns a users file with each entry "name role [lamps...]",
// every password being name + "-pw".
func usersFile(t *testing.T, entries ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for _, e := range entries {
		f := strings.Fields(e)
		role, err := auth.ParseRole(f[1])
		if err != nil {
			t.Fatal(err)
		}
		u := auth.User{Name: f[0], Role: role, Hash: testHash(t, f[0]+"-pw")}
		if len(f) > 2 {
			u.Lamps = f[2:]
		}
		b.WriteString(auth.FormatUser(u) + "\n")
	}
	return b.String()
}

// logTap hands each log line, as zerolog writes it, to the test
// goroutine, which keeps them in lines.
type logTap struct {
	ch    chan string
	lines []string
}

func newLogTap() *logTap { return &logTap{ch: make(chan string, 1<<14)} }

func (l *logTap) Write(p []byte) (int, error) {
	select {
	case l.ch <- string(p):
	default: // far more than a test logs; dropping beats stalling the gateway
	}
	return len(p), nil
}

// wait returns once a line holding every one of texts was logged.
func (l *logTap) wait(t *testing.T, texts ...string) {
	t.Helper()
	holds := func(line string) bool {
		return !slices.ContainsFunc(texts, func(s string) bool { return !strings.Contains(line, s) })
	}
	if slices.ContainsFunc(l.lines, holds) {
		return
	}
	deadline := time.After(wait)
	for {
		select {
		case line := <-l.ch:
			l.lines = append(l.lines, line)
			if holds(line) {
				return
			}
		case <-deadline:
			t.Fatalf("log: no line with %q within %v", texts, wait)
		}
	}
}

// all returns every line logged so far.
func (l *logTap) all() string {
	for {
		select {
		case line := <-l.ch:
			l.lines = append(l.lines, line)
		default:
			return strings.Join(l.lines, "")
		}
	}
}

// world is a started gateway, optionally with a users file, and two lamps
// that have reported brightness=1: kitchen-1 and hall.
type world struct {
	t             *testing.T
	g             *gateway.Gateway
	addrs         gateway.Addrs
	usersPath     string
	logs          *logTap
	kitchen, hall *lamp
	// observer may read everything: "admin", or anonymous without users.
	observer *mqttUser
	seq      int
}

func startWorld(t *testing.T, users string, tweak func(*gateway.Options)) *world {
	t.Helper()
	w := &world{t: t, logs: newLogTap()}
	if users != "" {
		w.usersPath = filepath.Join(t.TempDir(), "users.yaml")
		writeFile(t, w.usersPath, users)
	}
	g, _, _ := startWithDevices(t, "", func(o *gateway.Options) {
		o.DevicesFile = "" // the users file is what these tests are about
		o.UsersFile = w.usersPath
		// Commands from several users follow each other at once; paced,
		// the later would supersede the earlier (pacing has its tests).
		o.LampMaxRate = -1
		o.Logger = zerolog.New(zerolog.MultiLevelWriter(w.logs, zerolog.NewTestWriter(t)))
		if tweak != nil {
			tweak(o)
		}
	})
	w.g, w.addrs = g, g.Addrs()
	if users != "" {
		w.observer = w.login("admin", "admin-pw")
	} else {
		w.observer = w.login("", "")
	}
	w.observer.mustSubscribe("#")
	w.kitchen = dialLamp(t, w.addrs.Bridge)
	w.kitchen.send("HELLO kitchen-1\nbrightness=1\n")
	w.observer.until("lamp/kitchen-1/brightness", "1")
	w.hall = dialLamp(t, w.addrs.Bridge)
	w.hall.send("HELLO hall\nbrightness=1\n")
	w.observer.until("lamp/hall/brightness", "1")
	return w
}

// mark makes the gateway publish a new value on lamp/kitchen-1/ambient
// and returns the messages u received before it. The gateway publishes
// after everything the test did before, so a message those steps caused
// would have been queued for u first.
func (w *world) mark(u *mqttUser) []message {
	w.t.Helper()
	w.seq++
	w.kitchen.send(fmt.Sprintf("ambient=%d\n", w.seq))
	before := u.until("lamp/kitchen-1/ambient", strconv.Itoa(w.seq))
	// The report's last publish (state) follows ambient, under the
	// device's lock; Get takes that lock, so once it returns the report
	// is fully published. A wildcard SUBSCRIBE racing a retained write
	// trips a data race inside mochi v2.7.9 (mochi-mqtt/server#200).
	w.g.Registry().Get("kitchen-1")
	return before
}

// mqttUser is a real MQTT 3.1.1 client (paho) logged in as one user.
type mqttUser struct {
	t    *testing.T
	name string
	c    paho.Client
	msgs chan message
	lost chan error
}

// dialUser connects as user (anonymous for ""), returning the CONNECT
// error.
func (w *world) dialUser(user, password string) (*mqttUser, error) {
	u := &mqttUser{t: w.t, name: user, msgs: make(chan message, 4096), lost: make(chan error, 1)}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + w.addrs.MQTT.String()).
		SetClientID(fmt.Sprintf("user-%s-%d", user, clientSeq.Add(1))).
		SetUsername(user).SetPassword(password).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			u.msgs <- message{m.Topic(), string(m.Payload()), m.Retained()}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) { u.lost <- err })
	u.c = paho.NewClient(opts)
	tok := u.c.Connect()
	if !tok.WaitTimeout(wait) {
		w.t.Fatalf("connect as %q: no answer within %v", user, wait)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	w.t.Cleanup(func() { u.c.Disconnect(0) })
	return u, nil
}

func (w *world) login(user, password string) *mqttUser {
	w.t.Helper()
	u, err := w.dialUser(user, password)
	if err != nil {
		w.t.Fatalf("connect as %q: %v", user, err)
	}
	return u
}

// subscribe returns the SUBACK code for filter: the QoS granted, or 0x80.
func (u *mqttUser) subscribe(filter string) byte {
	u.t.Helper()
	tok := u.c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		u.t.Fatalf("%s: subscribe %s: %v", u.name, filter, tok.Error())
	}
	// One filter, one code. paho keys a shared subscription's code by the
	// filter without "$share/<group>/".
	res := tok.(*paho.SubscribeToken).Result()
	if len(res) != 1 {
		u.t.Fatalf("%s: subscribe %s: got codes %v, want one", u.name, filter, res)
	}
	for _, code := range res {
		return code
	}
	return 0
}

func (u *mqttUser) mustSubscribe(filter string) {
	u.t.Helper()
	if code := u.subscribe(filter); code > 2 {
		u.t.Fatalf("%s: subscribe %s: refused with %#x", u.name, filter, code)
	}
}

// barrier returns once the broker has handled everything u sent before:
// it handles one client's packets in order, and answers a SUBSCRIBE only
// when done with it. Every role may read lampgw/status. Call it after a
// wildcard SUBSCRIBE before the gateway publishes again: mochi v2.7.9
// replays retained messages for a wildcard reading each topic node's
// retainPath without the lock RetainMessage writes it under (topics.go
// scanMessages), a data race -race reports; a filter without wildcards
// takes another path.
func (u *mqttUser) barrier() { u.t.Helper(); u.mustSubscribe("lampgw/status") }

// publish sends at QoS 0, which the broker drops silently when refused.
func (u *mqttUser) publish(topic, payload string, retained bool) {
	u.t.Helper()
	if tok := u.c.Publish(topic, 0, retained, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		u.t.Fatalf("%s: publish %s: %v", u.name, topic, tok.Error())
	}
}

// until waits for payload on topic and returns the messages before it.
func (u *mqttUser) until(topic, payload string) []message {
	u.t.Helper()
	var before []message
	deadline := time.After(wait)
	for {
		select {
		case m := <-u.msgs:
			if m.topic == topic && m.payload == payload {
				return before
			}
			before = append(before, m)
		case err := <-u.lost:
			u.t.Fatalf("%s: connection lost waiting for %s %s: %v", u.name, topic, payload, err)
		case <-deadline:
			u.t.Fatalf("%s: no %s %q within %v; got %v", u.name, topic, payload, wait, before)
		}
	}
}

// expectLost waits for the broker to end u's connection.
func (u *mqttUser) expectLost() {
	u.t.Helper()
	select {
	case <-u.lost:
	case <-time.After(wait):
		u.t.Fatalf("%s: still connected after %v, want disconnected", u.name, wait)
	}
}

func topicsOf(msgs []message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.topic+" "+m.payload)
	}
	return out
}

func hasTopic(msgs []message, prefix string) bool {
	return slices.ContainsFunc(msgs, func(m message) bool { return strings.HasPrefix(m.topic, prefix) })
}

// fiveRoles is a users file of each role, with and without lamps.
func fiveRoles(t *testing.T) string {
	return usersFile(t, "admin admin", "app app", "viewer viewer", "kapp app kitchen-*", "kview viewer kitchen-*")
}

// TestUserRoles logs in as each role with a real client and checks what
// it may subscribe to, what it receives (retained replays included),
// which of its commands reach the lamps, and what of its publishes reach
// other clients.
func TestUserRoles(t *testing.T) {
	w := startWorld(t, fiveRoles(t), nil)
	// Something outside the lamp topics, which only admins may read.
	w.observer.publish("other/x", "admin-only", true)
	w.mark(w.observer)

	const granted, refused = true, false
	filters := []string{"#", "lamp/#", "lamp/hall/#", "lamp/kitchen-1/#", "lampgw/#", "$SYS/#", "other/#", "$share/g/lamp/#"}
	for _, tc := range []struct {
		user string
		subs []bool // per filter above
		// hall: receives hall's topics; other: receives other/x;
		// kitchenCmd, hallCmd: its commands reach the lamps;
		// write: its other/x reaches other clients.
		hall, other, kitchenCmd, hallCmd, write bool
	}{
		{"admin", []bool{granted, granted, granted, granted, granted, granted, granted, granted}, true, true, true, true, true},
		{"app", []bool{granted, granted, granted, granted, granted, refused, refused, granted}, true, false, true, true, false},
		{"viewer", []bool{granted, granted, granted, granted, granted, refused, refused, granted}, true, false, false, false, false},
		{"kapp", []bool{granted, granted, refused, granted, granted, refused, refused, refused}, false, false, true, false, false},
		{"kview", []bool{granted, granted, refused, granted, granted, refused, refused, refused}, false, false, false, false, false},
	} {
		t.Run(tc.user, func(t *testing.T) {
			w.t, w.observer.t, w.kitchen.t, w.hall.t = t, t, t, t
			u := w.login(tc.user, tc.user+"-pw")
			for i, f := range filters {
				if got := u.subscribe(f) <= 2; got != tc.subs[i] {
					t.Errorf("subscribe %s: got granted %v, want %v", f, got, tc.subs[i])
				}
			}
			u.barrier()
			got := w.mark(u)
			if !hasTopic(got, "lamp/kitchen-1/") {
				t.Errorf("received %q, want kitchen-1's retained topics", topicsOf(got))
			}
			if hasTopic(got, "lamp/hall/") != tc.hall {
				t.Errorf("received %q: got hall's topics %v, want %v", topicsOf(got), !tc.hall, tc.hall)
			}
			if hasTopic(got, "other/") != tc.other {
				t.Errorf("received %q: got other/x %v, want %v", topicsOf(got), !tc.other, tc.other)
			}
			if hasTopic(got, "$SYS/") && tc.user != "admin" {
				t.Errorf("received %q: $SYS topics are for admins only", topicsOf(got))
			}

			// Commands and a publish outside the lamp topics.
			w.seq++
			cmd := strconv.Itoa(100 + w.seq)
			u.publish("lamp/kitchen-1/brightness/set", cmd, false)
			u.publish("lamp/hall/brightness/set", cmd, false)
			u.publish("other/x", "from-"+tc.user, false)
			u.barrier()
			w.observer.publish("lamp/kitchen-1/brightness/set", "1", false)
			w.observer.publish("lamp/hall/brightness/set", "1", false)
			for _, l := range []struct {
				lamp *lamp
				want bool
			}{{w.kitchen, tc.kitchenCmd}, {w.hall, tc.hallCmd}} {
				if line := l.lamp.line(); (line == "brightness="+cmd) != l.want {
					t.Errorf("lamp read %q: got the command %v, want %v", line, !l.want, l.want)
				} else if l.want {
					l.lamp.expectLine("brightness=1")
				}
			}
			seen := w.mark(w.observer)
			wrote := slices.ContainsFunc(seen, func(m message) bool { return m.topic == "other/x" && m.payload == "from-"+tc.user })
			if wrote != tc.write {
				t.Errorf("observer: got other/x from %s %v, want %v", tc.user, wrote, tc.write)
			}
			u.c.Disconnect(0)
		})
	}
}

// fakes are lamp state and gateway topics with values nobody reported.
var fakes = []struct{ topic, payload string }{
	{"lamp/kitchen-1/brightness", "999"},
	{"lamp/kitchen-1/state", `{"brightness":999}`},
	{"lamp/kitchen-1/availability", "offline"},
	{"lamp/kitchen-1/error", `{"error":"fake"}`},
	{"lamp/kitchen-1/ack", "fake"},
	{"lamp/ghost/state", `{"brightness":1}`},
	{"lampgw/status", "offline"},
}

// TestNoClientFakesALamp publishes lamp state and gateway topics as an
// anonymous client on loopback without users, and as every role with
// users: none of it reaches a subscriber or the retained store.
func TestNoClientFakesALamp(t *testing.T) {
	for _, tc := range []struct {
		name, users string
		logins      []string
	}{
		{"anonymous on loopback", "", []string{""}},
		{"every role", "roles", []string{"admin", "app", "viewer", "kapp", "kview"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users := ""
			if tc.users != "" {
				users = fiveRoles(t)
			}
			w := startWorld(t, users, nil)
			for _, name := range tc.logins {
				password := name + "-pw"
				if name == "" {
					password = ""
				}
				u := w.login(name, password)
				for _, f := range fakes {
					u.publish(f.topic, f.payload, true)
				}
				u.barrier()
				for _, m := range w.mark(w.observer) {
					if slices.Contains(fakes, struct{ topic, payload string }{m.topic, m.payload}) {
						t.Errorf("%q faked %s %s", name, m.topic, m.payload)
					}
				}
				// At QoS 1 the broker disconnects an MQTT 3.1.1 client,
				// which has no negative PUBACK.
				u.c.Publish("lamp/kitchen-1/brightness", 1, true, "998")
				u.expectLost()
			}
			// The retained store holds what the lamps said.
			password := ""
			if tc.users != "" {
				password = "admin-pw"
			}
			late := w.login(w.observer.name, password)
			late.mustSubscribe("lamp/#")
			late.mustSubscribe("lampgw/#")
			late.barrier()
			replay := w.mark(late)
			want := []string{"lamp/hall/availability online", "lamp/hall/brightness 1", "lamp/kitchen-1/availability online", "lamp/kitchen-1/brightness 1", "lampgw/status online"}
			var got []string
			for _, m := range replay {
				if !strings.HasSuffix(m.topic, "/state") && !strings.HasSuffix(m.topic, "/ambient") {
					got = append(got, m.topic+" "+m.payload)
				}
				if m.topic == "lamp/ghost/state" {
					t.Errorf("retained: got %s, want no lamp ghost", m.topic)
				}
			}
			slices.Sort(got)
			got = slices.Compact(got) // the barrier replays lampgw/status again
			if !slices.Equal(got, want) {
				t.Errorf("retained replay: got %q, want %q", got, want)
			}
		})
	}
}

// TestWillCannotFakeALamp: a client's will is a publish too, checked
// when the broker is about to send it.
func TestWillCannotFakeALamp(t *testing.T) {
	w := startWorld(t, "", nil)
	var conn net.Conn
	opts := paho.NewClientOptions().AddBroker("tcp://"+w.addrs.MQTT.String()).
		SetClientID("will-faker").SetAutoReconnect(false).
		SetWill("lamp/kitchen-1/availability", "offline", 1, true).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", uri.Host, wait)
			conn = c
			return c, err
		})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	// Go without DISCONNECT, so the will is due. mochi logs "client
	// disconnected" after it has handled the will (server.go
	// attachClient), and the gateway's marker comes after that.
	conn.Close()
	w.logs.wait(t, "will message dropped", `"will-faker"`)
	w.logs.wait(t, "client disconnected", `"will-faker"`)
	for _, m := range w.mark(w.observer) {
		if m.topic == "lamp/kitchen-1/availability" {
			t.Errorf("observer: got %s %s from a will", m.topic, m.payload)
		}
	}
	late := w.login("", "")
	late.mustSubscribe("lamp/kitchen-1/#")
	late.barrier()
	if before := w.mark(late); !slices.Contains(before, message{"lamp/kitchen-1/availability", "online", true}) {
		t.Errorf("retained availability: got %q, want online", topicsOf(before))
	}
}

// TestUsersReload replaces the users file under six connected clients:
// exactly the four whose rights narrowed are disconnected, and the others
// keep going with their new rights.
func TestUsersReload(t *testing.T) {
	before := usersFile(t, "admin admin", "alice app", "bob viewer", "carol app kitchen-*", "dave admin", "erin viewer", "frank viewer")
	w := startWorld(t, before, nil)
	clients := map[string]*mqttUser{}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		clients[name] = w.login(name, name+"-pw")
	}
	// The same users, re-hashed where the password stays, which is what
	// matters: a hash is compared, not a password.
	lines := strings.Split(strings.TrimSpace(before), "\n")
	keep := func(name string) string {
		for _, l := range lines {
			if strings.Contains(l, `name: "`+name+`"`) {
				return l
			}
		}
		t.Fatalf("no %s", name)
		return ""
	}
	after := "users:\n" + strings.Join([]string{
		keep("admin"),
		// alice is gone.
		auth.FormatUser(auth.User{Name: "bob", Role: auth.RoleViewer, Hash: testHash(t, "bob-new")}), // new password
		strings.Replace(keep("carol"), `"kitchen-*"`, `"kitchen-2"`, 1),                              // fewer lamps
		strings.Replace(keep("dave"), "role: admin", "role: app", 1),                                 // lower role
		keep("erin"), // unchanged
		strings.Replace(keep("frank"), "role: viewer", "role: app", 1), // higher role
	}, "\n") + "\n"
	writeFile(t, w.usersPath, after)
	if err := w.g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		clients[name].expectLost()
	}
	// erin and frank stay, frank with his new right to command lamps.
	for _, name := range []string{"erin", "frank"} {
		clients[name].barrier()
	}
	clients["frank"].publish("lamp/kitchen-1/brightness/set", "42", false)
	w.kitchen.expectLine("brightness=42")
	for _, name := range []string{"erin", "frank"} {
		select {
		case err := <-clients[name].lost:
			t.Errorf("%s: disconnected (%v), want connected", name, err)
		default:
		}
	}
	// Logins follow the new file.
	for _, tc := range []struct {
		user, password string
		ok             bool
	}{{"alice", "alice-pw", false}, {"bob", "bob-pw", false}, {"bob", "bob-new", true}, {"carol", "carol-pw", true}} {
		if _, err := w.dialUser(tc.user, tc.password); (err == nil) != tc.ok {
			t.Errorf("login %s/%s: got %v, want ok %v", tc.user, tc.password, err, tc.ok)
		}
	}

	// A broken file is refused on reload; the users in force stay and
	// nobody is disconnected.
	writeFile(t, w.usersPath, "users:\n  - {name: erin, role: root}\n")
	if err := w.g.Reload(); !errors.Is(err, auth.ErrBadFile) {
		t.Errorf("Reload of a broken file: got %v, want auth.ErrBadFile", err)
	}
	clients["erin"].barrier()
	w.logs.wait(t, "users file refused; the users in force stay")
}

// TestLoginRefusals: a wrong password, an unknown user and an anonymous
// client are refused with "not authorized"; the log names the address and
// the user, never the password.
func TestLoginRefusals(t *testing.T) {
	w := startWorld(t, fiveRoles(t), nil)
	for _, tc := range []struct{ user, password string }{
		{"app", "hunter2-wrong"},
		{"mallory", "hunter2-unknown"},
		{"", ""},
	} {
		if _, err := w.dialUser(tc.user, tc.password); err == nil || err.Error() != "not Authorized" {
			t.Errorf("login %q: got %v, want not Authorized (CONNACK 5)", tc.user, err)
		}
	}
	w.logs.wait(t, `"user":"mallory"`)
	logs := w.logs.all()
	if strings.Contains(logs, "hunter2") {
		t.Errorf("log holds a password:\n%s", logs)
	}
	for _, want := range []string{`"remote":"127.0.0.1:`, `"user":"app"`, "login refused: bad user name or password", "anonymous client refused: users are configured"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log: no %s", want)
		}
	}
}

// TestAnonymousWithUsers: --allow-anonymous with a users file lets
// anonymous clients in as viewers.
func TestAnonymousWithUsers(t *testing.T) {
	w := startWorld(t, fiveRoles(t), func(o *gateway.Options) { o.AllowAnonymous = true })
	u := w.login("", "")
	if code := u.subscribe("lamp/#"); code > 2 {
		t.Errorf("subscribe lamp/#: refused with %#x", code)
	}
	if code := u.subscribe("other/#"); code <= 2 {
		t.Errorf("subscribe other/#: granted, want refused")
	}
	u.publish("lamp/kitchen-1/brightness/set", "77", false)
	u.barrier()
	w.observer.publish("lamp/kitchen-1/brightness/set", "78", false)
	w.kitchen.expectLine("brightness=78")
}

func TestBadUsersFileAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	writeFile(t, path, "users:\n  - name: a\n    role: root\n")
	_, err := gateway.New(gateway.Options{UsersFile: path})
	var se *gateway.SettingError
	if !errors.As(err, &se) || se.Setting != "users" {
		t.Fatalf("got %v, want a SettingError for users", err)
	}
	if want := fmt.Sprintf(`users: %s:3: role: want admin, app or viewer, got "root"`, path); err.Error() != want {
		t.Errorf("error:\ngot  %q\nwant %q", err.Error(), want)
	}
	missing := filepath.Join(t.TempDir(), "none.yaml")
	_, err = gateway.New(gateway.Options{UsersFile: missing})
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "users: "+missing+": ") {
		t.Errorf("missing file: got %v, want users: %s: no such file or directory", err, missing)
	}
}
