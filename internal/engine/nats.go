package engine

// NATS Server speaks MQTT 3.1.1 on a listener of its own and keeps every
// piece of MQTT state (sessions, retained messages, QoS 1 messages in
// flight) in JetStream streams it creates for itself. What that means for
// lampgw, as of Debian bookworm's nats-server 2.9.10 (the one CI installs;
// server/README-MQTT.md and docs.nats.io "MQTT" describe each point):
//
//   - JetStream is required: an account without it refuses MQTT
//     connections. The streams ($MQTT_sess, $MQTT_msgs, $MQTT_rmsgs) are
//     created on the first CONNECT, which in a cluster waits for a
//     JetStream meta leader and for the streams' replicas (up to 3) to be
//     placed: seconds after the routes are up, not milliseconds. Until
//     then a CONNECT times out or is refused "server unavailable".
//   - QoS 2 is not supported before 2.10 (nats-server#3244): a
//     subscription asking for QoS 2 is granted QoS 1, and a QoS 2 PUBLISH
//     closes the connection (nats-server#4705 describes 2.9's behaviour
//     as the one its reject_qos2_publish option restores). lampgw
//     publishes at QoS 0 and 1 only.
//   - Topics become NATS subjects: "/" is ".", so before 2.10
//     (nats-server#4243 added the "//" escape) a topic with a "." or a
//     space is refused: SUBSCRIBE gets return code 0x80, and a PUBLISH
//     closes the connection (checked against 2.9.10; empty levels, as
//     in "/a" or "a//b", work). Lamp ids cannot hold either
//     (topics.ValidID); an instance id made from a dotted host name
//     would.
//   - Retained messages live in a stream every server reads; a message
//     retained through one node reaches a subscriber on another once that
//     node has read it from the stream, so a retained write followed at
//     once by a SUBSCRIBE elsewhere can miss it. An empty retained
//     payload deletes it [MQTT-3.3.1-10].
//   - Will messages are published when the server notices the client is
//     gone: a closed socket, or 1.5 times the keep-alive without a packet
//     [MQTT-3.1.2-24]. They are not delayed (MQTT 5's will delay does
//     not exist in 3.1.1).
//   - No $SYS topics are published to MQTT clients: NATS's own $SYS
//     subjects belong to the system account, not to the MQTT user's.
//   - Sessions: a client id may be connected once in the whole cluster;
//     a second CONNECT with the same id, on any node, closes the first
//     (the session stream is the lock).
//   - MQTT 5 is refused at CONNECT (return code 1).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// NATSReadyTimeout bounds how long StartNATS and StartNATSCluster wait,
// after the processes listen, for the routes, the JetStream meta leader
// and a retained message to go through MQTT. A 3-node cluster on a
// loaded 2-core CI machine needs several seconds.
const NATSReadyTimeout = 60 * time.Second

// NATSOptions configure StartNATS and StartNATSCluster.
type NATSOptions struct {
	// Dir holds each node's configuration file and JetStream store
	// (Dir/<node>/); "" means a new directory under os.TempDir that the
	// caller may remove (tests pass t.TempDir).
	Dir string
	// Nodes is the cluster's size for StartNATSCluster; 0 means 3, the
	// smallest cluster that keeps a JetStream quorum when a node dies.
	// StartNATS ignores it.
	Nodes int
}

// natsNode is one node's ports and paths while it starts.
type natsNode struct {
	name                     string
	client, route, mqtt, mon int
	dir                      string
}

// StartNATS runs one Debian nats-server with JetStream and MQTT on free
// loopback ports and returns once an MQTT client can connect and get a
// retained message back. Proc.Addr is its MQTT listener.
func StartNATS(ctx context.Context, opts NATSOptions) (*Proc, error) {
	procs, err := startNATS(ctx, opts.Dir, 1, false)
	if err != nil {
		return nil, err
	}
	return procs[0], nil
}

// StartNATSCluster runs opts.Nodes Debian nats-servers as one cluster
// ("lampgw") with full-mesh routes, JetStream and MQTT on every node, all
// on free loopback ports. It returns, in node order, once every node has
// its routes, JetStream has a meta leader, and a retained message
// published over MQTT through the first node reaches an MQTT subscriber
// on every node. Each Proc.Addr is that node's MQTT listener. On error
// every node started is killed.
func StartNATSCluster(ctx context.Context, opts NATSOptions) ([]*Proc, error) {
	n := opts.Nodes
	if n == 0 {
		n = 3
	}
	if n < 1 {
		return nil, fmt.Errorf("engine: nats cluster of %d nodes", n)
	}
	return startNATS(ctx, opts.Dir, n, true)
}

func startNATS(ctx context.Context, dir string, n int, clustered bool) (procs []*Proc, err error) {
	path, err := lookBinary("nats-server")
	if err != nil {
		return nil, err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "lampgw-nats-"); err != nil {
			return nil, err
		}
	}
	nodes := make([]natsNode, n)
	for i := range nodes {
		nd := &nodes[i]
		nd.name = "nats-" + strconv.Itoa(i+1)
		nd.dir = filepath.Join(dir, nd.name)
		for _, p := range []*int{&nd.client, &nd.route, &nd.mqtt, &nd.mon} {
			if *p, err = FreePort(); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(nd.dir, 0o755); err != nil {
			return nil, fmt.Errorf("engine: nats dir: %w", err)
		}
	}

	defer func() {
		if err != nil {
			for _, p := range procs {
				p.Kill()
			}
			procs = nil
		}
	}()
	for i, nd := range nodes {
		conf := filepath.Join(nd.dir, "nats.conf")
		if err := os.WriteFile(conf, []byte(natsConfig(nodes, i, clustered)), 0o644); err != nil {
			return procs, fmt.Errorf("engine: nats config: %w", err)
		}
		// start waits for the MQTT listener only: nats-server opens it
		// without waiting for the other routes or a meta leader, so the
		// nodes start one after another without a deadlock.
		p, err := start(ctx, nd.name, "127.0.0.1:"+strconv.Itoa(nd.mqtt), path, "-c", conf)
		if err != nil {
			return procs, err
		}
		procs = append(procs, p)
	}

	ctx, cancel := context.WithTimeout(ctx, NATSReadyTimeout)
	defer cancel()
	if err := natsReady(ctx, nodes, procs, clustered); err != nil {
		var out strings.Builder
		for _, p := range procs {
			fmt.Fprintf(&out, "--- %s:\n%s", p.Name, p.Output())
		}
		return procs, fmt.Errorf("engine: nats not ready: %w\n%s", err, out.String())
	}
	return procs, nil
}

// natsConfig is node i's configuration file. Everything listens on
// loopback; the monitoring port is for natsReady's checks.
func natsConfig(nodes []natsNode, i int, clustered bool) string {
	nd := nodes[i]
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n", nd.name, nd.client, nd.mon)
	// The MQTT streams are file streams under store_dir.
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", filepath.Join(nd.dir, "js"))
	// MQTT needs a server_name and, in a cluster, a cluster name
	// (README-MQTT.md "Configuration").
	// stream_replicas: every node holds the MQTT streams, so that one
	// killed node leaves a quorum (nats-server picks fewer when it
	// creates them before it has met every peer).
	replicas := 1
	if clustered {
		replicas = min(len(nodes), 3)
	}
	fmt.Fprintf(&b, "mqtt {\n  listen: 127.0.0.1:%d\n  stream_replicas: %d\n}\n", nd.mqtt, replicas)
	if clustered {
		fmt.Fprintf(&b, "cluster {\n  name: lampgw\n  listen: 127.0.0.1:%d\n  routes: [\n", nd.route)
		for j, other := range nodes {
			if j != i {
				fmt.Fprintf(&b, "    nats-route://127.0.0.1:%d\n", other.route)
			}
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

// natsReady polls until the cluster is whole and MQTT works end to end,
// or ctx ends. Each step is retried, never slept on: a failed attempt
// waits for the next tick.
func natsReady(ctx context.Context, nodes []natsNode, procs []*Proc, clustered bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	wait := func() error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %v", ctx.Err(), last)
		case <-tick.C:
			return nil
		}
	}
	for _, p := range procs {
		select {
		case <-p.Exited():
			return fmt.Errorf("%w: %s", ErrExited, p.Name)
		default:
		}
	}

	// Routes and the meta leader, from each node's monitoring port: a
	// node that sees fewer routes, or no leader, is not ready.
	for i := 0; i < len(nodes); {
		last = natsNodeReady(hc, nodes[i], len(nodes), clustered)
		if last == nil {
			i++
			continue
		}
		if err := wait(); err != nil {
			return err
		}
	}

	// MQTT end to end: a retained message published through the first
	// node, received by a new subscriber on every node. This is what
	// creates the MQTT streams, the slow part, and proves that the
	// retained store is shared.
	topic := "lampgw/engine/probe/" + randomHex(6)
	payload := randomHex(8)
	for {
		last = mqttPublishRetained(procs[0].Addr, topic, []byte(payload))
		if last == nil {
			break
		}
		if err := wait(); err != nil {
			return err
		}
	}
	for i := 0; i < len(procs); {
		last = mqttGetRetained(procs[i].Addr, topic, payload)
		if last == nil {
			i++
			continue
		}
		if err := wait(); err != nil {
			return err
		}
	}
	// Clear it, so that tests subscribing "#" do not get it.
	for {
		last = mqttPublishRetained(procs[0].Addr, topic, nil)
		if last == nil {
			return nil
		}
		if err := wait(); err != nil {
			return err
		}
	}
}

// natsNodeReady checks one node's routes (/routez) and JetStream meta
// leader (/jsz).
func natsNodeReady(hc *http.Client, nd natsNode, n int, clustered bool) error {
	base := "http://127.0.0.1:" + strconv.Itoa(nd.mon)
	if clustered {
		var routez struct {
			NumRoutes int `json:"num_routes"`
		}
		if err := getJSON(hc, base+"/routez", &routez); err != nil {
			return err
		}
		// 2.9 opens one route per peer (pooling came in 2.10).
		if routez.NumRoutes < n-1 {
			return fmt.Errorf("%s: %d routes, want %d", nd.name, routez.NumRoutes, n-1)
		}
	}
	var jsz struct {
		Disabled bool `json:"disabled"`
		Meta     *struct {
			Leader      string `json:"leader"`
			ClusterSize int    `json:"cluster_size"`
		} `json:"meta_cluster"`
	}
	if err := getJSON(hc, base+"/jsz", &jsz); err != nil {
		return err
	}
	switch {
	case jsz.Disabled:
		return fmt.Errorf("%s: JetStream disabled", nd.name)
	case clustered && (jsz.Meta == nil || jsz.Meta.Leader == ""):
		return fmt.Errorf("%s: no JetStream meta leader yet", nd.name)
	case clustered && jsz.Meta.ClusterSize < n:
		return fmt.Errorf("%s: JetStream meta group of %d, want %d", nd.name, jsz.Meta.ClusterSize, n)
	}
	return nil
}

func getJSON(hc *http.Client, url string, v any) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// probeTimeout bounds each MQTT step of a readiness probe; the caller
// retries until its own deadline.
const probeTimeout = 5 * time.Second

// replayWait is how long a probe subscriber waits for its retained
// replay, which follows the SUBACK at once when there is one.
const replayWait = time.Second

// mqttClient connects a clean-session paho client to addr.
func mqttClient(addr string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID("lampgw-engine-probe-" + randomHex(4)).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(probeTimeout).
		SetWriteTimeout(probeTimeout))
	tok := c.Connect()
	if !tok.WaitTimeout(probeTimeout + time.Second) {
		c.Disconnect(0)
		return nil, fmt.Errorf("mqtt connect %s: timed out", addr)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt connect %s: %w", addr, err)
	}
	return c, nil
}

// mqttPublishRetained publishes payload retained at QoS 1 through addr
// and waits for the PUBACK, which NATS sends once the message is in the
// retained stream.
func mqttPublishRetained(addr, topic string, payload []byte) error {
	c, err := mqttClient(addr)
	if err != nil {
		return err
	}
	defer c.Disconnect(100)
	tok := c.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(probeTimeout) {
		return fmt.Errorf("mqtt publish %s: no PUBACK", addr)
	}
	return tok.Error()
}

// mqttGetRetained subscribes topic through addr and waits for the
// retained message with payload.
func mqttGetRetained(addr, topic, payload string) error {
	c, err := mqttClient(addr)
	if err != nil {
		return err
	}
	defer c.Disconnect(100)
	got := make(chan string, 4)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			select {
			case got <- string(m.Payload()):
			default:
			}
		}
	})
	if !tok.WaitTimeout(probeTimeout) {
		return fmt.Errorf("mqtt subscribe %s: no SUBACK", addr)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt subscribe %s: %w", addr, err)
	}
	select {
	case p := <-got:
		if p != payload {
			return fmt.Errorf("mqtt %s: retained %q, want %q", addr, p, payload)
		}
		return nil
	case <-time.After(replayWait):
		// A node replays what it has read of the retained stream at
		// SUBSCRIBE; one that had not read it yet will not send it
		// later, so the caller tries again with a new subscriber.
		return errors.New("mqtt " + addr + ": retained message not replayed")
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
