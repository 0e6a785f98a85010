package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/gateway"
	"github.com/lampgw/lampgw/internal/testwait"
)

// apiEnv is a gateway with its HTTP API, for tests of package api through
// the real gateway: real bus, bridge and lamp sockets.
type apiEnv struct {
	t     *testing.T
	g     *gateway.Gateway
	addrs gateway.Addrs
	base  string
	// usersPath is the users file; "" without one.
	usersPath string
	logs      *logTap
}

// startAPI starts a gateway with HTTP and lamp listeners. users, if not
// "", is the users file's content (see usersFile: every password is the
// user's name + "-pw"); devices likewise for the devices file.
func startAPI(t *testing.T, users, devices string, tweak func(*gateway.Options)) *apiEnv {
	t.Helper()
	e := &apiEnv{t: t, logs: newLogTap()}
	dir := t.TempDir()
	opts := gateway.Options{
		HTTPAddr:       "127.0.0.1:0",
		BridgeAddr:     "127.0.0.1:0",
		ConfirmTimeout: 300 * time.Millisecond,
		Logger:         zerolog.New(zerolog.MultiLevelWriter(e.logs, zerolog.NewTestWriter(t))),
	}
	if users != "" {
		e.usersPath = filepath.Join(dir, "users.yaml")
		writeFile(t, e.usersPath, users)
		opts.UsersFile = e.usersPath
	}
	if devices != "" {
		opts.DevicesFile = filepath.Join(dir, "devices.yaml")
		writeFile(t, opts.DevicesFile, devices)
	}
	if tweak != nil {
		tweak(&opts)
	}
	e.g, e.addrs = startWith(t, opts)
	e.base = "http://" + e.addrs.HTTP.String()
	return e
}

// call is one HTTP request of a test. user "" sends no login; the
// password is user + "-pw" unless password is set.
type call struct {
	user, password string
	method, path   string
	body           string
	// contentType defaults to application/json for a body.
	contentType string
	header      map[string]string
}

type reply struct {
	code   int
	body   string
	header http.Header
}

// check fails t unless r has code, a body holding every one of want and
// none of not, and the header values in header.
func (r reply) check(t *testing.T, code int, want, not []string, header map[string]string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("got %d %s, want %d", r.code, r.body, code)
	}
	for _, w := range want {
		if !strings.Contains(r.body, w) {
			t.Errorf("body: got %s, want it to hold %s", r.body, w)
		}
	}
	for _, n := range not {
		if strings.Contains(r.body, n) {
			t.Errorf("body: got %s, want no %s", r.body, n)
		}
	}
	for k, v := range header {
		if g := r.header.Get(k); g != v {
			t.Errorf("%s: got %q, want %q", k, g, v)
		}
	}
}

func (e *apiEnv) do(c call) reply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, e.base+c.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if c.body != "" {
		ct := c.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if c.user != "" {
		pw := c.password
		if pw == "" {
			pw = c.user + "-pw"
		}
		req.SetBasicAuth(c.user, pw)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", method, c.path, err)
	}
	return reply{resp.StatusCode, string(b), resp.Header}
}

// lampState waits until GET /api/lamps/{id} holds want.
func (e *apiEnv) lampState(id, want string) {
	e.t.Helper()
	testwait.Until(e.t, id+" to show "+want, func() bool {
		r := e.do(call{method: http.MethodGet, path: "/api/lamps/" + id, user: e.admin()})
		return r.code == http.StatusOK && strings.Contains(r.body, want)
	})
}

// admin is the user who may see everything: "admin" with a users file.
func (e *apiEnv) admin() string {
	if e.usersPath != "" {
		return "admin"
	}
	return ""
}

// firmware makes l behave as firmware that applies every command and
// reports the new values back; the lines l receives go to the returned
// channel. It reports once the gateway has recorded the write, which it
// learns from a "written" ack of lamp id on an event stream of its own:
// the registry takes a report as a confirmation only after the bridge's
// write callback has run, so an instant echo on loopback could overtake
// it and leave a command unconfirmed. Nothing else may use l after this.
func (e *apiEnv) firmware(l *lamp, id string) <-chan string {
	e.t.Helper()
	s, _ := e.openEvents(e.admin())
	return serveLamp(l, func(line string) bool {
		if !s.written(id) {
			return false
		}
		_, err := l.conn.Write([]byte(line + "\n"))
		return err == nil
	})
}

// listen collects the lines l receives without answering them: firmware
// that never confirms.
func listen(l *lamp) <-chan string { return serveLamp(l, nil) }

// serveLamp sends each line l receives to the returned channel and then,
// unless it is nil, calls answer, until answer returns false or l is
// closed. It runs on a goroutine of its own, so it reports rather than
// fails.
func serveLamp(l *lamp, answer func(line string) bool) <-chan string {
	ch := make(chan string, 256)
	go func() {
		defer close(ch)
		for {
			line, err := l.r.ReadString('\n')
			if err != nil {
				return // the test closed the lamp
			}
			line = strings.TrimSuffix(line, "\n")
			ch <- line
			if answer != nil && !answer(line) {
				return
			}
		}
	}()
	return ch
}

// received waits for line on a lamp's channel.
func received(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("lamp got %q, want %q", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("lamp got nothing within %v, want %q", wait, want)
	}
}

// TestAPIHandlers drives every route of the API against a real gateway
// and real lamp sockets: "kitchen" (in the devices file, named, brightness
// 0..255) applies commands and reports them back, "hall" never confirms,
// and "attic" never connects.
func TestAPIHandlers(t *testing.T) {
	e := startAPI(t, "", "devices:\n  - {id: kitchen, name: Kitchen, brightness_max: 255}\n", func(o *gateway.Options) {
		o.MaxFrame = 128
	})
	kitchenLamp := dialLamp(t, e.addrs.Bridge)
	kitchenLamp.send("HELLO kitchen\nbrightness=100 ambient=300 mode=auto\n")
	kitchen := e.firmware(kitchenLamp, "kitchen")
	hallLamp := dialLamp(t, e.addrs.Bridge)
	hallLamp.send("HELLO hall\nbrightness=5\n")
	hall := listen(hallLamp)
	e.lampState("kitchen", `"brightness":100`)
	e.lampState("hall", `"brightness":5`)

	for _, tc := range []struct {
		name string
		call call
		code int
		// want are substrings of the body; header of the headers.
		want   []string
		header map[string]string
		// lamp, if not nil, must receive line.
		lamp <-chan string
		line string
	}{
		{name: "list", call: call{path: "/api/lamps"}, code: 200, want: []string{
			`{"lamps":[{"id":"hall","online":true,`,
			`{"id":"kitchen","name":"Kitchen","online":true,`, `"brightness_max":255`, `"reported":{"ambient":300,"brightness":100,"mode":"auto"},"desired":{}}`,
		}, header: map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"}},
		{name: "one lamp", call: call{path: "/api/lamps/hall"}, code: 200, want: []string{`"id":"hall"`, `"brightness_max":1023`, `"reported":{"brightness":5}`, `"last_seen":"20`}},
		{name: "unknown lamp", call: call{path: "/api/lamps/attic"}, code: 404, want: []string{`{"error":"no lamp \"attic\""}`}},
		{name: "invalid id", call: call{path: "/api/lamps/a.b"}, code: 400, want: []string{`"error":"invalid lamp id`}},
		{name: "command confirmed", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"brightness":200}`}, code: 200,
			want: []string{`"id":"kitchen","rid":"api-`, `"status":"confirmed","keys":{"brightness":{"status":"confirmed","value":200}}`},
			lamp: kitchen, line: "brightness=200"},
		{name: "two keys confirmed", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"mode":"Manual","brightness":50}`}, code: 200,
			want: []string{`"status":"confirmed"`, `"brightness":{"status":"confirmed","value":50}`, `"mode":{"status":"confirmed","value":"manual"}`},
			lamp: kitchen, line: "mode=manual brightness=50"},
		{name: "command unconfirmed", call: call{method: "POST", path: "/api/lamps/hall/set", body: `{"brightness":9}`}, code: 200,
			want: []string{`"status":"unconfirmed","keys":{"brightness":{"status":"unconfirmed","value":9}}`}, lamp: hall, line: "brightness=9"},
		{name: "out of the devices file's range", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"brightness":256}`}, code: 400,
			want: []string{`"status":"rejected","error":"brightness: out of range 0..255"`}},
		{name: "bad key", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"Brightness":1}`}, code: 400,
			want: []string{`"status":"rejected","error":"`}},
		{name: "empty command", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{}`}, code: 400,
			want: []string{`"status":"rejected","error":"`, `empty command`}},
		{name: "offline lamp: queued", call: call{method: "POST", path: "/api/lamps/attic/set", body: `{"power":"on"}`}, code: 202,
			want: []string{`"id":"attic"`, `"status":"queued","keys":{"power":{"status":"queued","value":"on"}}`}},
		{name: "queued is desired", call: call{path: "/api/lamps/attic"}, code: 200,
			want: []string{`"online":false,"last_seen":null`, `"reported":{},"desired":{"power":"on"}`}},
		{name: "own rid", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"brightness":1,"rid":"mine"}`}, code: 400,
			want: []string{`"rid\" is chosen by the API`}},
		{name: "not an object", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `700`}, code: 400,
			want: []string{`want a JSON object`}},
		{name: "not JSON", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `brightness=7`, contentType: "text/plain"}, code: 415,
			want: []string{`want Content-Type: application/json`}},
		{name: "longer than max-frame", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"note":"` + strings.Repeat("x", 120) + `"}`}, code: 413,
			want: []string{`longer than 128 bytes`}},
		{name: "cross-site POST", call: call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"brightness":1}`,
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}}, code: 403},
		{name: "wrong method", call: call{method: "DELETE", path: "/api/lamps/kitchen"}, code: 405},
		{name: "openapi", call: call{path: "/api/openapi.json"}, code: 200, want: []string{`"openapi": "3.1.0"`, `"/api/lamps/{id}/set"`},
			header: map[string]string{"Content-Type": "application/json"}},
		{name: "dashboard", call: call{path: "/"}, code: 200, want: []string{`<title>lampgw</title>`, `assets/app.js`},
			header: map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}},
		{name: "dashboard script", call: call{path: "/assets/app.js"}, code: 200, want: []string{`new EventSource("api/events")`},
			header: map[string]string{"Content-Type": "text/javascript; charset=utf-8"}},
		{name: "no such asset", call: call{path: "/assets/nope.js"}, code: 404},
		{name: "healthz still there", call: call{path: "/healthz"}, code: 200, want: []string{"ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(tc.call).check(t, tc.code, tc.want, nil, tc.header)
			if tc.lamp != nil {
				received(t, tc.lamp, tc.line)
			}
		})
	}
}

// TestAPIAuth checks the MQTT users' roles and lamp patterns on the
// HTTP API: admin sees and commands everything, app "kitchen" only
// kitchen-*, a viewer only looks.
func TestAPIAuth(t *testing.T) {
	e := startAPI(t, usersFile(t, "admin admin", "tablet app", "kitchen app kitchen-*", "wall viewer"), "", nil)
	for _, id := range []string{"kitchen-1", "hall"} {
		l := dialLamp(t, e.addrs.Bridge)
		l.send("HELLO " + id + "\nbrightness=1\n")
		e.firmware(l, id)
		e.lampState(id, `"brightness":1`)
	}
	set := func(user, id string) call {
		return call{user: user, method: "POST", path: "/api/lamps/" + id + "/set", body: `{"brightness":2}`}
	}
	for _, tc := range []struct {
		name string
		call call
		code int
		want []string
		// not are substrings the body must not hold.
		not []string
	}{
		{"no login", call{path: "/api/lamps"}, 401, []string{`"error":"login required: users are configured`}, nil},
		{"no login, dashboard", call{path: "/"}, 401, nil, nil},
		{"no login, events", call{path: "/api/events"}, 401, nil, nil},
		{"wrong password", call{user: "wall", password: "nope", path: "/api/lamps"}, 401, []string{`"error":"login refused: bad user name or password"`}, nil},
		{"unknown user", call{user: "mallory", path: "/api/lamps"}, 401, []string{`bad user name or password`}, nil},
		{"not basic", call{path: "/api/lamps", header: map[string]string{"Authorization": "Bearer abc"}}, 401, []string{`only Basic`}, nil},
		{"viewer lists", call{user: "wall", path: "/api/lamps"}, 200, []string{`"id":"hall"`, `"id":"kitchen-1"`}, nil},
		{"viewer reads one", call{user: "wall", path: "/api/lamps/hall"}, 200, []string{`"id":"hall"`}, nil},
		{"viewer may not command", set("wall", "hall"), 403, []string{`"error":"role viewer may not command lamps"`}, nil},
		{"app commands", set("tablet", "hall"), 200, []string{`"status":"confirmed"`}, nil},
		{"admin commands", set("admin", "kitchen-1"), 200, []string{`"status":"confirmed"`}, nil},
		{"patterns filter the list", call{user: "kitchen", path: "/api/lamps"}, 200, []string{`"id":"kitchen-1"`}, []string{`"hall"`}},
		{"patterns hide a lamp", call{user: "kitchen", path: "/api/lamps/hall"}, 403, []string{`"error":"lamp \"hall\" is not among this user's lamps"`}, nil},
		{"patterns refuse its commands", set("kitchen", "hall"), 403, []string{`not among this user's lamps`}, nil},
		{"patterns allow their lamps", set("kitchen", "kitchen-1"), 200, []string{`"status":"confirmed"`}, nil},
		{"dashboard with a login", call{user: "wall", path: "/"}, 200, []string{`<title>lampgw</title>`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var header map[string]string
			if tc.code == 401 {
				header = map[string]string{"WWW-Authenticate": `Basic realm="lampgw", charset="UTF-8"`}
			}
			e.do(tc.call).check(t, tc.code, tc.want, tc.not, header)
		})
	}
	// Refusals are logged with the address and the user, never the
	// password.
	e.logs.wait(t, "login refused: bad user name or password", `"remote":"127.0.0.1:`, `"user":"wall"`)
	e.logs.wait(t, "role viewer may not command lamps", `"status":403`)
	if strings.Contains(e.logs.all(), "nope") {
		t.Error("a password reached the log")
	}
}

// TestAPIAnonymousViewer checks --allow-anonymous with a users file:
// anonymous clients look, and are asked to log in to command.
func TestAPIAnonymousViewer(t *testing.T) {
	e := startAPI(t, usersFile(t, "admin admin"), "", func(o *gateway.Options) { o.AllowAnonymous = true })
	if got := e.do(call{path: "/api/lamps"}); got.code != 200 {
		t.Fatalf("anonymous GET: got %d %s, want 200", got.code, got.body)
	}
	got := e.do(call{method: "POST", path: "/api/lamps/x/set", body: `{"brightness":1}`})
	if got.code != 401 || !strings.Contains(got.body, "may not command lamps; log in") {
		t.Fatalf("anonymous POST: got %d %s, want 401 asking for a login", got.code, got.body)
	}
}

// TestAPILoginsRateLimited checks that failed logins are limited per
// address as over MQTT (auth.Verifier): after 5, even the right password
// is not checked.
func TestAPILoginsRateLimited(t *testing.T) {
	e := startAPI(t, usersFile(t, "admin admin"), "", nil)
	for i := range 5 {
		if got := e.do(call{user: "admin", password: fmt.Sprintf("guess-%d", i), path: "/api/lamps"}); got.code != 401 {
			t.Fatalf("guess %d: got %d, want 401", i, got.code)
		}
	}
	got := e.do(call{user: "admin", path: "/api/lamps"})
	if got.code != 429 || got.header.Get("Retry-After") == "" || !strings.Contains(got.body, "too many failed logins") {
		t.Fatalf("after 5 failures: got %d %s %v, want 429 with Retry-After", got.code, got.body, got.header)
	}
}

// event is one Server-Sent Event.
type event struct{ name, data string }

// eventStream is a GET /api/events being read.
type eventStream struct {
	t      *testing.T
	events chan event
	cancel context.CancelFunc
}

// openEvents opens the event stream as user ("" for no login) and waits
// for its first event, "lamps", which it returns.
func (e *apiEnv) openEvents(user string) (*eventStream, event) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/api/events", nil)
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("GET /api/events: got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &eventStream{t: e.t, events: make(chan event, 1024), cancel: cancel}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				s.events <- ev
				ev = event{}
			}
		}
	}()
	return s, s.expect("lamps", "")
}

// expect waits for the next event called name whose data holds want,
// failing if the stream ends first; it returns it, and the events before
// it are in s.skipped.
func (s *eventStream) expect(name, want string) event {
	s.t.Helper()
	ev, _ := s.expectAfter(name, want)
	return ev
}

// expectAfter is expect that also returns the events before the one it
// waited for.
func (s *eventStream) expectAfter(name, want string) (event, []event) {
	s.t.Helper()
	var before []event
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("stream ended; waited for %s %s after %v", name, want, before)
			}
			if ev.name == name && strings.Contains(ev.data, want) {
				return ev, before
			}
			before = append(before, ev)
		case <-deadline:
			s.t.Fatalf("no %s event with %s within %v; got %v", name, want, wait, before)
		}
	}
}

// ended waits for the stream to end.
func (s *eventStream) ended() {
	s.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		case <-deadline:
			s.t.Fatalf("stream still open after %v", wait)
		}
	}
}

// written reads s until an ack "written" for lamp id, reporting false
// if the stream ends first. It runs on a goroutine of its own, so it
// reports rather than fails.
func (s *eventStream) written(id string) bool {
	for ev := range s.events {
		if ev.name == "ack" && strings.HasPrefix(ev.data, `{"id":"`+id+`",`) && strings.Contains(ev.data, `"status":"written"`) {
			return true
		}
	}
	return false
}

// TestAPIEvents checks that the event stream carries a lamp's report, a
// command's acks and its availability, as they happen.
func TestAPIEvents(t *testing.T) {
	e := startAPI(t, "", "", nil)
	l := dialLamp(t, e.addrs.Bridge)
	l.send("HELLO kitchen\nbrightness=1\n")
	e.lampState("kitchen", `"brightness":1`)

	s, lamps := e.openEvents("")
	if !strings.Contains(lamps.data, `{"lamps":[{"id":"kitchen","online":true,`) {
		t.Fatalf("lamps event: got %s", lamps.data)
	}
	l.send("brightness=42 ambient=7\n")
	s.expect("state", `{"id":"kitchen","state":{"ambient":7,"brightness":42},"time":"20`)

	lines := e.firmware(l, "kitchen")
	got := e.do(call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"brightness":43}`})
	var res struct{ RID, Status string }
	if err := json.Unmarshal([]byte(got.body), &res); err != nil || got.code != 200 || res.Status != "confirmed" {
		t.Fatalf("POST: got %d %s", got.code, got.body)
	}
	received(t, lines, "brightness=43")
	// The lamp's report may overtake the written ack (the bridge
	// publishes that after the write); the ack comes before the
	// confirmation. The state may come later: a lamp's state goes out at
	// most once per bridge.DefaultStateInterval, and the report of 42 was
	// just before.
	ack := fmt.Sprintf(`{"id":"kitchen","rid":"%s","key":"brightness","value":43,"status":`, res.RID)
	_, before := s.expectAfter("ack", ack+`"confirmed"`)
	if !slices.ContainsFunc(before, func(ev event) bool { return ev.name == "ack" && strings.Contains(ev.data, ack+`"written"`) }) {
		t.Errorf("no written ack before the confirmation; got %v", before)
	}
	if !slices.ContainsFunc(before, func(ev event) bool { return ev.name == "state" && strings.Contains(ev.data, `"brightness":43`) }) {
		s.expect("state", `"brightness":43`)
	}

	// A refused command, and then the lamp going away.
	e.do(call{method: "POST", path: "/api/lamps/kitchen/set", body: `{"brightness":5000}`})
	s.expect("refused", `"error":"brightness: out of range 0..1023"`)
	l.conn.Close()
	s.expect("availability", `{"id":"kitchen","online":false,`)
}

// TestAPIEventsFollowLampPatterns checks that a user's stream carries
// only the lamps their patterns allow.
func TestAPIEventsFollowLampPatterns(t *testing.T) {
	e := startAPI(t, usersFile(t, "admin admin", "kitchen viewer kitchen-*"), "", nil)
	kitchen := dialLamp(t, e.addrs.Bridge)
	kitchen.send("HELLO kitchen-1\nbrightness=1\n")
	hall := dialLamp(t, e.addrs.Bridge)
	hall.send("HELLO hall\nbrightness=1\n")
	e.lampState("kitchen-1", `"brightness":1`)
	e.lampState("hall", `"brightness":1`)

	all, _ := e.openEvents("admin")
	mine, lamps := e.openEvents("kitchen")
	if strings.Contains(lamps.data, "hall") || !strings.Contains(lamps.data, "kitchen-1") {
		t.Fatalf("kitchen's lamps event: got %s", lamps.data)
	}
	hall.send("brightness=2\n")
	all.expect("state", `{"id":"hall"`)
	// hall's event went out before this one: had mine been given it, it
	// would come first.
	kitchen.send("brightness=2\n")
	if _, before := mine.expectAfter("state", `{"id":"kitchen-1"`); len(before) > 0 {
		t.Fatalf("kitchen's stream got %v", before)
	}
}

// TestAPIEventsEndOnShutdown checks that open streams end when the
// gateway shuts down, so that shutdown does not wait for their clients.
func TestAPIEventsEndOnShutdown(t *testing.T) {
	e := startAPI(t, "", "", nil)
	l := dialLamp(t, e.addrs.Bridge)
	l.send("HELLO kitchen\n")
	e.lampState("kitchen", `"online":true`)
	s, _ := e.openEvents("")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	s.ended()
}

// TestAPIUsersReload checks that a reloaded users file ends the stream
// of a user who is gone, as the broker disconnects their MQTT clients,
// and refuses their requests from then on.
func TestAPIUsersReload(t *testing.T) {
	e := startAPI(t, usersFile(t, "admin admin", "wall viewer"), "", nil)
	s, _ := e.openEvents("wall")
	writeFile(t, e.usersPath, usersFile(t, "admin admin"))
	if err := e.g.Reload(); err != nil {
		t.Fatal(err)
	}
	s.ended()
	if got := e.do(call{user: "wall", path: "/api/lamps"}); got.code != 401 {
		t.Fatalf("removed user: got %d %s, want 401", got.code, got.body)
	}
}
