package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/testwait"
)

// wait bounds every wait in these tests; nothing here sleeps.
const wait = 10 * time.Second

func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("LAMPGW_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Str("test", t.Name()).Logger()
}

// newServer returns a Server on a real in-process bus (the embedded
// broker's, not listening) with an empty registry.
func newServer(t *testing.T, tweak func(*Options)) (*Server, *broker.InlineBus) {
	t.Helper()
	b, err := broker.New(broker.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	opts := Options{
		Registry: devices.NewRegistry(devices.Options{}),
		Bus:      b.Bus(),
		Logger:   testLogger(t),
	}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, b.Bus()
}

// serve serves s on 127.0.0.1:0, with l wrapping the listener if not
// nil, until the test ends. s closes first: httptest.Server.Close waits
// for open requests, and an event stream ends only then.
func serve(t *testing.T, s *Server, wrap func(net.Listener) net.Listener) *httptest.Server {
	ts := httptest.NewUnstartedServer(s.mux())
	if wrap != nil {
		ts.Listener = wrap(ts.Listener)
	}
	ts.Start()
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return ts
}

func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

func TestNewNeedsRegistryAndBus(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no registry", Options{Bus: &broker.InlineBus{}}},
		{"no bus", Options{Registry: devices.NewRegistry(devices.Options{})}},
		{"bad prefix", Options{Registry: devices.NewRegistry(devices.Options{}), Bus: &broker.InlineBus{}, Prefix: "a/+"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err != ErrInvalidOptions {
				t.Fatalf("got %v, want %v", err, ErrInvalidOptions)
			}
		})
	}
}

// TestOpenAPICoversRoutes walks the route table Register mounts and the
// embedded OpenAPI document: every /api/ route is in the document with
// its method, every operation of the document is a route, and every $ref
// resolves.
func TestOpenAPICoversRoutes(t *testing.T) {
	s, _ := newServer(t, nil)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: got %q, want 3.x", doc.OpenAPI)
	}
	inDoc := map[string]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			inDoc[strings.ToUpper(method)+" "+path] = true
		}
	}
	routed := map[string]bool{}
	for _, rt := range s.routes {
		if !strings.HasPrefix(rt.pattern, "/api/") {
			continue // the dashboard's files
		}
		op := rt.method + " " + rt.pattern
		routed[op] = true
		if !inDoc[op] {
			t.Errorf("route %s is not in openapi.json", op)
		}
	}
	for op := range inDoc {
		if !routed[op] {
			t.Errorf("openapi.json has %s, which is no route", op)
		}
	}
	if len(routed) < 5 {
		t.Errorf("got %d API routes, want at least 5", len(routed))
	}

	// Every $ref points at something.
	var root any
	json.Unmarshal(openAPI, &root)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(root, ref) == nil {
					t.Errorf("$ref %q does not resolve", ref)
				}
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(root)
}

func resolve(root any, ref string) any {
	cur := root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestAnonymousRules checks who is let in without a users file, by the
// client's address and the Host it names, as the broker does for MQTT
// (loopback only without --allow-anonymous), with requests that claim
// any address.
func TestAnonymousRules(t *testing.T) {
	for _, tc := range []struct {
		name, remote, host string
		allowAnon          bool
		want               int
	}{
		{"loopback v4", "127.0.0.1:5000", "127.0.0.1:8080", false, http.StatusOK},
		{"loopback v6", "[::1]:5000", "[::1]:8080", false, http.StatusOK},
		{"loopback, localhost", "127.0.0.1:5000", "localhost:8080", false, http.StatusOK},
		{"loopback, sub.localhost", "127.0.0.1:5000", "lamps.localhost", false, http.StatusOK},
		{"loopback, a DNS name (rebinding)", "127.0.0.1:5000", "evil.example:8080", false, http.StatusForbidden},
		{"LAN address", "192.0.2.7:5000", "192.0.2.1:8080", false, http.StatusForbidden},
		{"LAN address, allow-anonymous", "192.0.2.7:5000", "lamps.example:8080", true, http.StatusOK},
		{"mapped loopback", "[::ffff:127.0.0.1]:5000", "127.0.0.1", false, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newServer(t, func(o *Options) { o.AllowAnonymous = tc.allowAnon })
			r := httptest.NewRequest(http.MethodGet, "/api/lamps", nil)
			r.RemoteAddr, r.Host = tc.remote, tc.host
			w := httptest.NewRecorder()
			s.mux().ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.want)
			}
			if w.Code != http.StatusOK && !strings.Contains(w.Body.String(), `"error":"anonymous client refused`) {
				t.Errorf("body: got %s, want the reason", w.Body)
			}
		})
	}
}

func TestWithRID(t *testing.T) {
	for _, tc := range []struct {
		name, body, payload string
		keys                []string
		err                 string
	}{
		{"one key", `{"brightness":700}`, `{"rid":"r","brightness":700}`, []string{"brightness"}, ""},
		{"spaces kept", " { \"mode\" : \"manual\", \"power\":\"on\" } \n", `{"rid":"r","mode" : "manual", "power":"on" }`, []string{"mode", "power"}, ""},
		{"empty object", `{ }`, `{"rid":"r"}`, nil, ""},
		{"own rid", `{"brightness":1,"rid":"x"}`, "", nil, `"rid" is chosen by the API`},
		{"array", `[1]`, "", nil, "want a JSON object"},
		{"not JSON", `brightness=7`, "", nil, "want a JSON object"},
		{"trailing data", `{"a":1} {}`, "", nil, "want a JSON object"},
		{"empty", ``, "", nil, "want a JSON object"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "", nil, "want a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload, keys, err := withRID([]byte(tc.body), "r")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			if string(payload) != tc.payload || !slices.Equal(keys, tc.keys) {
				t.Fatalf("got %s %v, want %s %v", payload, keys, tc.payload, tc.keys)
			}
			if !json.Valid(payload) {
				t.Fatalf("payload %s is not JSON", payload)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	type kr = map[string]devices.AckStatus
	for _, tc := range []struct {
		name   string
		keys   []string
		acks   kr
		code   int
		done   bool
		status devices.AckStatus
	}{
		{"nothing yet", []string{"a"}, kr{}, 200, false, devices.Confirmed},
		{"written", []string{"a"}, kr{"a": devices.Written}, 200, false, devices.Written},
		{"confirmed", []string{"a"}, kr{"a": devices.Confirmed}, 200, true, devices.Confirmed},
		{"one of two", []string{"a", "b"}, kr{"a": devices.Confirmed}, 200, false, devices.Confirmed},
		{"mixed finals", []string{"a", "b"}, kr{"a": devices.Confirmed, "b": devices.Unconfirmed}, 200, true, devices.Unconfirmed},
		{"queued", []string{"a", "b"}, kr{"a": devices.Queued, "b": devices.Queued}, 202, true, devices.Queued},
		{"queued, one pending", []string{"a", "b"}, kr{"a": devices.Queued}, 202, false, devices.Queued},
		{"superseded", []string{"a"}, kr{"a": devices.Superseded}, 200, true, devices.Superseded},
		{"expired", []string{"a"}, kr{"a": devices.Expired}, 200, true, devices.Expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := CommandResult{Keys: map[string]KeyResult{}}
			for k, st := range tc.acks {
				res.Keys[k] = KeyResult{Status: st}
			}
			code, done := res.settle(tc.keys)
			if code != tc.code || done != tc.done || res.Status != tc.status {
				t.Fatalf("got %d %v %s, want %d %v %s", code, done, res.Status, tc.code, tc.done, tc.status)
			}
		})
	}
}

// smallBuffers shrinks the send buffer of every accepted connection, so
// that a client that does not read fills it with a few kilobytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// sseClient reads an event stream: the data lines of "state" events go
// to states, and done closes at the end of the stream.
type sseClient struct {
	conn   net.Conn
	states chan string
	done   chan struct{}
}

// openStream sends GET /api/events on a raw connection; read starts its
// reader, or not, for a client that falls behind.
func openStream(t *testing.T, addr string, readBuffer int) *sseClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if readBuffer > 0 {
		conn.(*net.TCPConn).SetReadBuffer(readBuffer)
	}
	fmt.Fprintf(conn, "GET /api/events HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	return &sseClient{conn: conn, states: make(chan string, 1<<16), done: make(chan struct{})}
}

func (c *sseClient) read() {
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(c.conn)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "state":
				c.states <- strings.TrimPrefix(line, "data: ")
			}
		}
	}()
}

// TestSlowStreamDropped checks that a stream whose client stops reading
// is dropped once its buffer is full, while a stream that reads gets
// every event, in order, throughout: one slow phone never holds up the
// other dashboards or the bus.
func TestSlowStreamDropped(t *testing.T) {
	s, bus := newServer(t, func(o *Options) { o.EventBuffer = 8 })
	ts := serve(t, s, func(l net.Listener) net.Listener { return smallBuffers{l} })
	addr := ts.Listener.Addr().String()

	fast := openStream(t, addr, 0)
	fast.read()
	slow := openStream(t, addr, 4096) // never read until the end
	testwait.Until(t, "two streams", func() bool { return s.Stats().Streams == 2 })

	deadline := time.After(wait)
	n := 0
	for ; s.Stats().Dropped == 0; n++ {
		if n > 100000 {
			t.Fatalf("slow stream not dropped after %d events", n)
		}
		bus.Publish("lamp/l1/state", fmt.Appendf(nil, `{"brightness":%d}`, n), 0, false)
		want := fmt.Sprintf(`"brightness":%d}`, n)
		select {
		case got := <-fast.states:
			if !strings.Contains(got, want) {
				t.Fatalf("fast stream: got %s, want %s", got, want)
			}
		case <-deadline:
			t.Fatalf("fast stream: no event %d within %v", n, wait)
		}
	}
	t.Logf("slow stream dropped after %d events", n)
	if got := s.Stats().Dropped; got != 1 {
		t.Fatalf("dropped: got %d, want 1", got)
	}
	// The fast one goes on.
	bus.Publish("lamp/l1/state", []byte(`{"brightness":-1}`), 0, false)
	select {
	case got := <-fast.states:
		if !strings.Contains(got, `"brightness":-1`) {
			t.Fatalf("fast stream after the drop: got %s", got)
		}
	case <-time.After(wait):
		t.Fatal("fast stream stalled after the drop")
	}
	// The slow one, read at last, ends.
	slow.conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := io.Copy(io.Discard, slow.conn); err != nil {
		t.Fatalf("slow stream: got %v, want its end", err)
	}
	testwait.Until(t, "the slow stream's handler to return", func() bool { return s.Stats().Streams == 1 })
}

// TestCloseEndsStreams checks that Close ends open streams, as the
// gateway's shutdown does.
func TestCloseEndsStreams(t *testing.T) {
	s, _ := newServer(t, func(o *Options) { o.Heartbeat = time.Hour })
	ts := serve(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type: got %q, want text/event-stream", ct)
	}
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != "retry: 2000\n" {
		t.Fatalf("first line: got %q", line)
	}
	s.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("after Close: got %v, want the end of the stream", err)
	}
}

// TestStreamLimit checks that streams beyond MaxStreams are refused.
func TestStreamLimit(t *testing.T) {
	s, _ := newServer(t, func(o *Options) { o.MaxStreams = 1 })
	ts := serve(t, s, nil)
	openStream(t, ts.Listener.Addr().String(), 0)
	testwait.Until(t, "one stream", func() bool { return s.Stats().Streams == 1 })
	resp, err := http.Get(ts.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream: got %d, want 503", resp.StatusCode)
	}
}

// TestReauthorize checks that a new users file ends the streams of users
// whose rights narrowed, and only those.
func TestReauthorize(t *testing.T) {
	s, _ := newServer(t, nil)
	// Hashes of the lowest cost: auth.ParseUsers wants real ones.
	hs := map[string]string{}
	for _, n := range []string{"stay", "lower"} {
		h, err := auth.HashPassword([]byte(n), 4)
		if err != nil {
			t.Fatal(err)
		}
		hs[n] = h
	}
	stay, _ := s.hub.join(&auth.User{Name: "stay", Role: auth.RoleApp, Hash: hs["stay"]}, 1, 10)
	lower, _ := s.hub.join(&auth.User{Name: "lower", Role: auth.RoleAdmin, Hash: hs["lower"]}, 1, 10)
	gone, _ := s.hub.join(&auth.User{Name: "gone", Role: auth.RoleViewer, Hash: "h-gone"}, 1, 10)
	anon, _ := s.hub.join(auth.Anonymous(nil), 1, 10)
	file := "users:\n" +
		auth.FormatUser(auth.User{Name: "stay", Role: auth.RoleAdmin, Hash: hs["stay"]}) + "\n" +
		auth.FormatUser(auth.User{Name: "lower", Role: auth.RoleViewer, Hash: hs["lower"]}) + "\n"
	us, err := auth.ParseUsers("users.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	s.SetUsers(us)
	for _, tc := range []struct {
		name  string
		st    *stream
		ended bool
	}{
		{"widened", stay, false},
		{"narrowed", lower, true},
		{"removed", gone, true},
		{"anonymous", anon, false},
	} {
		select {
		case <-tc.st.gone:
			if !tc.ended {
				t.Errorf("%s: ended (%s), want it to go on", tc.name, tc.st.why)
			}
		default:
			if tc.ended {
				t.Errorf("%s: goes on, want it ended", tc.name)
			}
		}
	}
	if got := stay.user.Load().Role; got != auth.RoleAdmin {
		t.Errorf("widened user's role: got %v, want admin", got)
	}
}
