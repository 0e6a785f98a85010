package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/internal/engine"
)

func TestNATSStarts(t *testing.T) {
	p, err := engine.StartNATS(context.Background(), engine.NATSOptions{Dir: t.TempDir()})
	engine.Require(t, err)
	engine.Cleanup(t, p)
	checkRetainedAcross(t, p, p)
	p.Kill()
	if _, err := net.Dial("tcp", p.Addr); err == nil {
		t.Fatalf("%s still accepts after Kill", p.Addr)
	}
}

// TestNATSClusterShares starts a 3-node cluster and checks that what one
// node's MQTT client retains and publishes reaches a client on each other
// node, and that the cluster keeps serving MQTT when a node is killed
// (JetStream's streams have 3 replicas, so 2 nodes keep a quorum).
func TestNATSClusterShares(t *testing.T) {
	begin := time.Now()
	procs, err := engine.StartNATSCluster(context.Background(), engine.NATSOptions{Dir: t.TempDir()})
	engine.Require(t, err)
	t.Logf("3-node cluster ready in %v", time.Since(begin).Round(time.Millisecond))
	for _, p := range procs {
		engine.Cleanup(t, p)
	}
	if len(procs) != 3 {
		t.Fatalf("got %d nodes, want 3", len(procs))
	}
	seen := map[string]bool{}
	for _, p := range procs {
		if seen[p.Addr] {
			t.Fatalf("two nodes on %s", p.Addr)
		}
		seen[p.Addr] = true
	}
	checkRetainedAcross(t, procs[0], procs[1])
	checkRetainedAcross(t, procs[2], procs[0])

	// Killing a node loses the leaders it held; the survivors elect new
	// ones. Until then nats-server 2.9.10 acknowledges a retained PUBLISH
	// it could not store ("unable to store retained message ... timeout
	// for request type MS" in its log), so the check is retried as a
	// whole, with a new payload each time, until the failover is done.
	procs[0].Kill()
	killed := time.Now()
	deadline := killed.Add(60 * time.Second)
	for i := 0; ; i++ {
		err := retainedRoundTrip(procs[1], procs[2], fmt.Sprintf("enginetest/failover/%d", i))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no retained round trip after a node was killed: %v", err)
		}
		t.Logf("after kill (%v): %v", time.Since(killed).Round(time.Millisecond), err)
	}
	t.Logf("retained messages work again %v after a node was killed", time.Since(killed).Round(time.Millisecond))
}

// retainedRoundTrip retains a message through from and wants it replayed
// to a new subscriber on to within a few seconds.
func retainedRoundTrip(from, to *engine.Proc, topic string) error {
	const step = 5 * time.Second
	pub, err := dial(from, "rt-pub", step)
	if err != nil {
		return err
	}
	defer pub.Disconnect(0)
	if err := await("publish through "+from.Name, pub.Publish(topic, 1, true, "kept"), step); err != nil {
		return err
	}
	sub, err := dial(to, "rt-sub", step)
	if err != nil {
		return err
	}
	defer sub.Disconnect(0)
	got := make(chan string, 1)
	tok := sub.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if err := await("subscribe through "+to.Name, tok, step); err != nil {
		return err
	}
	select {
	case p := <-got:
		if p != "kept" {
			return fmt.Errorf("got %q, want %q", p, "kept")
		}
		return nil
	case <-time.After(step):
		return fmt.Errorf("%s: no retained replay", to.Name)
	}
}

func TestNATSClusterBadSize(t *testing.T) {
	if _, err := engine.StartNATSCluster(context.Background(), engine.NATSOptions{Dir: t.TempDir(), Nodes: -1}); err == nil {
		t.Fatal("a cluster of -1 nodes started")
	}
}

const waitTimeout = 20 * time.Second

// dial connects a clean MQTT client to p.
func dial(p *engine.Proc, id string, timeout time.Duration) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(p.URL()).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(timeout))
	if err := await("connect to "+p.Name+" ("+p.Addr+")", c.Connect(), timeout); err != nil {
		return nil, err
	}
	return c, nil
}

// await waits for tok, what naming it in the error.
func await(what string, tok paho.Token, timeout time.Duration) error {
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

type message struct {
	topic, payload string
	retained       bool
}

// checkRetainedAcross retains a message through from, subscribes through
// to, and wants the retained replay, then a live message from to's side
// through from. The check is retried as a whole, with new clients and a
// new topic, for up to a minute: on a busy 2-core machine JetStream may
// still be settling after the cluster's readiness probe, and nats-server
// then times out a store request and drops the client that made it (CI
// saw "timeout for request type MS" and the publisher's connection lost).
func checkRetainedAcross(t *testing.T, from, to *engine.Proc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		err := retainedAcross(from, to, fmt.Sprintf("enginetest/%s/%s-%s/%d", t.Name(), from.Name, to.Name, i),
			fmt.Sprintf("%s-%s-%d", from.Name, to.Name, i))
		if err == nil {
			return
		}
		if errors.Is(err, errWrongMessage) || time.Now().After(deadline) {
			t.Fatalf("%s to %s: %v", from.Name, to.Name, err)
		}
		t.Logf("%s to %s, attempt %d: %v", from.Name, to.Name, i+1, err)
	}
}

// errWrongMessage: a message came, but not the one sent; no retry helps.
var errWrongMessage = errors.New("wrong message")

func retainedAcross(from, to *engine.Proc, topic, id string) error {
	done := func(what string, tok paho.Token) error { return await(what, tok, waitTimeout) }
	pub, err := dial(from, "pub-"+id, waitTimeout)
	if err != nil {
		return err
	}
	defer pub.Disconnect(0)
	if err := done("retained publish", pub.Publish(topic, 1, true, "kept")); err != nil {
		return err
	}
	got := make(chan message, 10)
	sub, err := dial(to, "sub-"+id, waitTimeout)
	if err != nil {
		return err
	}
	defer sub.Disconnect(0)
	handler := func(_ paho.Client, m paho.Message) {
		got <- message{m.Topic(), string(m.Payload()), m.Retained()}
	}
	// The retained stream is read by each node on its own; the PUBACK
	// above does not mean `to` has it yet. Subscribe again until the
	// replay comes, within the deadline.
	deadline := time.Now().Add(waitTimeout)
	for replayed := false; !replayed; {
		if err := done("subscribe", sub.Subscribe(topic, 1, handler)); err != nil {
			return err
		}
		select {
		case m := <-got:
			if want := (message{topic, "kept", true}); m != want {
				return fmt.Errorf("%w: got %v, want %v", errWrongMessage, m, want)
			}
			replayed = true
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no retained replay of %s published through %s", to.Name, topic, from.Name)
			}
			if err := done("unsubscribe", sub.Unsubscribe(topic)); err != nil {
				return err
			}
		}
	}
	if err := done("live publish", pub.Publish(topic, 1, false, "live")); err != nil {
		return err
	}
	select {
	case m := <-got:
		if want := (message{topic, "live", false}); m != want {
			return fmt.Errorf("%w: got %v, want %v", errWrongMessage, m, want)
		}
	case <-time.After(waitTimeout):
		return fmt.Errorf("%s: live message through %s not received", to.Name, from.Name)
	}
	return done("clear retained", pub.Publish(topic, 1, true, ""))
}
