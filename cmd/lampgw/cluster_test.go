package main

// The cluster scenario of docs/scale-out.md on real processes and real
// brokers: two lampgw instances on one broker cluster, one killed with
// SIGKILL, its lamps offline within 1.5 times the keep alive, back
// online on the other instance with their pending commands delivered.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/internal/engine"
)

// clusterKeepAlive is the instances' --broker-keepalive. NATS 2.9 drops
// MQTT clients with a keep alive of 1s every few seconds on a loaded
// machine; a killed process's will comes at once anyway, as the kernel
// closes its sockets.
const clusterKeepAlive = 5 * time.Second

func TestClusterKillMosquitto(t *testing.T) {
	t.Parallel()
	p, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir()})
	engine.Require(t, err)
	engine.Cleanup(t, p)
	runClusterKill(t, p.URL(), p.URL(), p.URL())
}

// TestClusterKillNATS runs the instances on different nodes of a NATS
// cluster, and the app on a third, so every message crosses the cluster.
func TestClusterKillNATS(t *testing.T) {
	t.Parallel()
	nodes, err := engine.StartNATSCluster(context.Background(), engine.NATSOptions{Dir: t.TempDir(), Nodes: 3})
	engine.Require(t, err)
	for _, n := range nodes {
		engine.Cleanup(t, n)
	}
	runClusterKill(t, nodes[0].URL(), nodes[1].URL(), nodes[2].URL())
}

func runClusterKill(t *testing.T, urlA, urlB, urlApp string) {
	a, addrA := startInstanceProc(t, urlA, "a", clusterKeepAlive)
	_, addrB := startInstanceProc(t, urlB, "b", clusterKeepAlive)
	app := newClusterApp(t, urlApp, "lamp/+/availability", "lamp/+/ack", "lampgw/holders/+", "lampgw/+/status")

	l1 := app.hello(t, addrA, "l1", "a")
	l2 := app.hello(t, addrA, "l2", "a")
	l3 := app.hello(t, addrB, "l3", "b")
	app.command(t, "l1", 100, "c1")
	l1.expect(t, "brightness=100")
	app.command(t, "l3", 300, "c3")
	l3.expect(t, "brightness=300")

	// l2 goes away while a is alive: a keeps its command pending, in
	// the broker.
	l2.conn.Close()
	app.waitFor(t, "lamp/l2/availability", "offline")
	app.command(t, "l2", 222, "p1")
	app.waitAck(t, "l2", "p1", "queued")

	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.waitExit(t, stepTimeout)
	l1.expectClosed(t)
	app.waitFor(t, "lamp/l1/availability", "offline")
	offlineAfter := time.Since(killed)
	app.waitFor(t, "lampgw/holders/l2", `{"instance":"b","adopted":true}`)
	// Logged, not asserted: a slow machine must not fail the test. The
	// will comes after 1.5 keep alives; adoption is one round trip more.
	t.Logf("l1 offline %v after SIGKILL (keep alive %v)", offlineAfter.Round(time.Millisecond), clusterKeepAlive)

	// A command while l1 is away, held by b for it.
	app.command(t, "l1", 111, "p2")
	app.waitAck(t, "l1", "p2", "queued")

	// Back through the load balancer, on b: pending commands arrive.
	l1 = app.hello(t, addrB, "l1", "b")
	l1.expect(t, "brightness=111")
	l2 = app.hello(t, addrB, "l2", "b")
	l2.expect(t, "brightness=222")
	app.waitAck(t, "l2", "p1", "written")
	app.command(t, "l3", 303, "c4")
	l3.expect(t, "brightness=303")
}

// TestClusterFrozenInstance stops an instance (SIGSTOP) without closing
// a socket, as a hung host does: the broker publishes its will after 1.5
// keep alives and its lamps go offline; one comes back on the other
// instance. When the frozen one resumes (SIGCONT) it lets that lamp go
// without a stale offline, and claims back the one still connected to
// it, which the other had adopted.
func TestClusterFrozenInstance(t *testing.T) {
	t.Parallel()
	p, err := engine.StartMosquitto(context.Background(), engine.MosquittoOptions{Dir: t.TempDir()})
	engine.Require(t, err)
	engine.Cleanup(t, p)
	const keepAlive = 2 * time.Second
	a, addrA := startInstanceProc(t, p.URL(), "a", keepAlive)
	_, addrB := startInstanceProc(t, p.URL(), "b", keepAlive)
	app := newClusterApp(t, p.URL(), "lamp/+/availability", "lamp/+/brightness", "lampgw/holders/+", "lampgw/+/status")
	old := app.hello(t, addrA, "l1", "a")
	l2 := app.hello(t, addrA, "l2", "a")

	frozen := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) })
	app.waitFor(t, "lampgw/a/status", "offline")
	app.waitFor(t, "lamp/l1/availability", "offline")
	t.Logf("l1 offline %v after SIGSTOP (keep alive %v; the will is due after %v)",
		time.Since(frozen).Round(time.Millisecond), keepAlive, keepAlive*3/2)
	app.waitFor(t, "lampgw/holders/l2", `{"instance":"b","adopted":true}`)

	moved := app.hello(t, addrB, "l1", "b")
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	old.expectClosed(t)
	app.waitFor(t, "lampgw/holders/l2", `{"instance":"a"}`)
	mark := len(app.seen)
	// a publishes l2's report on its one connection after anything it
	// published on letting l1 go.
	if _, err := l2.conn.Write([]byte("brightness=7\n")); err != nil {
		t.Fatal(err)
	}
	app.waitFor(t, "lamp/l2/brightness", "7")
	for _, m := range app.seen[mark:] {
		if m == [2]string{"lamp/l1/availability", "offline"} {
			t.Fatalf("a published a stale offline for l1 after resuming; seen %q", app.seen[mark:])
		}
	}
	app.command(t, "l1", 500, "m1")
	moved.expect(t, "brightness=500")
	app.command(t, "l2", 600, "m2")
	l2.expect(t, "brightness=600")
}

// startInstanceProc starts lampgw as cluster instance id on broker url
// and returns it with its bridge address.
func startInstanceProc(t *testing.T, url, id string, keepAlive time.Duration) (*proc, string) {
	t.Helper()
	cmd := exec.Command(lampgwBinary(t),
		"--broker-url", url, "--instance-id", id, "--broker-keepalive", keepAlive.String(),
		"--http-addr", "127.0.0.1:0", "--bridge-addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = cleanEnv()
	stderr := newLineLog()
	cmd.Stderr = stderr
	p := startProc(t, cmd, stderr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lampgw %s stderr:\n%s", id, strings.Join(stderr.Lines(), "\n"))
		}
	})
	var started struct {
		Message, Bridge, Instance, MQTT string
	}
	stderr.waitFor(t, `the "lampgw listening" log line`, startTimeout, func(line string) bool {
		return json.Unmarshal([]byte(line), &started) == nil && started.Message == "lampgw listening"
	})
	if started.Instance != id || started.MQTT != "off" {
		t.Fatalf("instance %q, mqtt %q: want %q and no embedded broker", started.Instance, started.MQTT, id)
	}
	return p, started.Bridge
}

// clusterApp is a paho client on the broker cluster, playing a phone app.
type clusterApp struct {
	c    paho.Client
	msgs chan [2]string
	seen [][2]string
}

var appSeq atomic.Int64

func newClusterApp(t *testing.T, url string, filters ...string) *clusterApp {
	t.Helper()
	a := &clusterApp{msgs: make(chan [2]string, 1024)}
	a.c = paho.NewClient(paho.NewClientOptions().AddBroker(url).
		SetClientID(fmt.Sprintf("cluster-app-%d", appSeq.Add(1))).
		SetCleanSession(true).SetAutoReconnect(false).SetOrderMatters(true).SetConnectTimeout(stepTimeout))
	if tok := a.c.Connect(); !tok.WaitTimeout(stepTimeout) || tok.Error() != nil {
		t.Fatalf("app connect to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { a.c.Disconnect(100) })
	for _, f := range filters {
		tok := a.c.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			a.msgs <- [2]string{m.Topic(), string(m.Payload())}
		})
		if !tok.WaitTimeout(stepTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	return a
}

// waitFor waits for payload on topic.
func (a *clusterApp) waitFor(t *testing.T, topic, payload string) {
	t.Helper()
	a.waitMatch(t, topic+" "+payload, func(m [2]string) bool { return m[0] == topic && m[1] == payload })
}

// waitMatch waits for a message match accepts, among those seen before
// too: a wait for one message may have read past another. Each test
// step waits for something that happens once.
func (a *clusterApp) waitMatch(t *testing.T, what string, match func([2]string) bool) {
	t.Helper()
	if slices.ContainsFunc(a.seen, match) {
		return
	}
	deadline := time.After(stepTimeout)
	for {
		select {
		case m := <-a.msgs:
			a.seen = append(a.seen, m)
			if match(m) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s within %v; seen %q", what, stepTimeout, a.seen)
		}
	}
}

// waitAck waits for the ack of command rid with status.
func (a *clusterApp) waitAck(t *testing.T, id, rid, status string) {
	t.Helper()
	a.waitMatch(t, "ack "+rid+" "+status, func(m [2]string) bool {
		var ack struct{ RID, Status string }
		return m[0] == "lamp/"+id+"/ack" && json.Unmarshal([]byte(m[1]), &ack) == nil && ack.RID == rid && ack.Status == status
	})
}

func (a *clusterApp) command(t *testing.T, id string, brightness int, rid string) {
	t.Helper()
	tok := a.c.Publish("lamp/"+id+"/set", 1, false, fmt.Sprintf(`{"brightness":%d,"rid":%q}`, brightness, rid))
	if !tok.WaitTimeout(stepTimeout) || tok.Error() != nil {
		t.Fatalf("publish command: %v", tok.Error())
	}
}

// hello connects lamp id to a bridge and waits until it is online there
// and its holder record names instance (sent once its command
// subscriptions are made).
func (a *clusterApp) hello(t *testing.T, bridge, id, instance string) *socketLamp {
	t.Helper()
	conn, err := net.DialTimeout("tcp", bridge, stepTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	l := &socketLamp{conn: conn, r: bufio.NewReader(conn)}
	if _, err := conn.Write([]byte("HELLO " + id + "\n")); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "lampgw/holders/"+id, `{"instance":"`+instance+`"}`)
	return l
}

// socketLamp is a lamp's TCP socket.
type socketLamp struct {
	conn net.Conn
	r    *bufio.Reader
}

// expect reads lines until want, failing after stepTimeout.
func (l *socketLamp) expect(t *testing.T, want string) {
	t.Helper()
	l.conn.SetReadDeadline(time.Now().Add(stepTimeout))
	var got []string
	for {
		s, err := l.r.ReadString('\n')
		if err != nil {
			t.Fatalf("lamp: want %q, read %q then %v", want, got, err)
		}
		s = strings.TrimSuffix(s, "\n")
		if s == want {
			return
		}
		got = append(got, s)
	}
}

func (l *socketLamp) expectClosed(t *testing.T) {
	t.Helper()
	l.conn.SetReadDeadline(time.Now().Add(stepTimeout))
	for {
		if _, err := l.r.ReadString('\n'); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("lamp socket still open after %v", stepTimeout)
			}
			return
		}
	}
}
