package broker

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lampgw/lampgw/auth"
	"github.com/lampgw/lampgw/internal/testwait"
)

// remoteConn is one end of a net.Pipe that claims to come from remote, so
// that a test can play a client on another host without leaving loopback.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// login is what a raw test client sends in its CONNECT.
type login struct {
	user, password string // user "" sends no user name
	willTopic      string // "" sends no will
	willRetain     bool
}

// connectPipe runs mochi's real connection path for a client at remote
// with a CONNECT of version v, and returns the client's end and the
// CONNACK return code.
func connectPipe(t *testing.T, b *Broker, remote string, v byte, id string, l login) (net.Conn, byte) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	addr, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		t.Fatal(err)
	}
	go b.srv.EstablishConnection("mqtt", remoteConn{server, addr})
	name := "MQTT"
	if v == 3 {
		name = "MQIsdp"
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: v,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte(name),
			Clean:            true,
			Keepalive:        30,
			ClientIdentifier: id,
			UsernameFlag:     l.user != "",
			Username:         []byte(l.user),
			PasswordFlag:     l.user != "",
			Password:         []byte(l.password),
			WillFlag:         l.willTopic != "",
			WillTopic:        l.willTopic,
			WillPayload:      []byte("fake"),
			WillRetain:       l.willRetain,
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	p := readRaw(t, client)
	if p.kind() != packets.Connack {
		t.Fatalf("got packet type %d, want CONNACK", p.kind())
	}
	return client, p.body[1]
}

// connectFrom returns the CONNACK return code of an anonymous CONNECT of
// version v from remote.
func connectFrom(t *testing.T, b *Broker, remote string, v byte) byte {
	t.Helper()
	_, code := connectPipe(t, b, remote, v, "far-"+remote, login{})
	return code
}

func TestAnonymousOnlyFromLoopback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  bool
		remote string
		v      byte
		want   byte
	}{
		{"v5 from the LAN", false, "192.0.2.7:50000", 5, packets.ErrNotAuthorized.Code},
		{"v3.1.1 from the LAN", false, "192.0.2.7:50000", 4, 5}, // 5: not authorized
		{"v3.1 from the LAN", false, "[2001:db8::7]:50000", 3, 5},
		{"v5 from 127.0.0.1", false, "127.0.0.1:50000", 5, 0},
		{"v3.1.1 from ::1", false, "[::1]:50000", 4, 0},
		{"v3.1.1 from mapped loopback", false, "[::ffff:127.0.0.1]:50000", 4, 0},
		{"v5 from the LAN, allowed", true, "192.0.2.7:50000", 5, 0},
		{"v3.1.1 from the LAN, allowed", true, "192.0.2.7:50000", 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Options{AllowAnonymous: tc.allow})
			if got := connectFrom(t, b, tc.remote, tc.v); got != tc.want {
				t.Errorf("CONNACK code: got %#x, want %#x", got, tc.want)
			}
		})
	}
}

// Hashes at bcrypt.MinCost, so that tests under -race stay fast.
const testUsersYAML = `users:
- {name: alice, role: app, hash: "$2a$04$n2iB.BEz5NbZK4CxkyHSHO5k92UmZpKDPIWYGyMxREKw/st0nQPS."}
- {name: bob, role: viewer, hash: "$2a$04$mTWx1yTqsIGzaG6DnOggd.4E9CDz8Gb1m/ExnfLkIruA8yXeXHtgS"}
`

func testACL(t *testing.T) *auth.ACL {
	t.Helper()
	acl, err := auth.NewACL("lamp")
	if err != nil {
		t.Fatal(err)
	}
	return acl
}

func testUsers(t *testing.T, yaml string) *auth.Users {
	t.Helper()
	us, err := auth.ParseUsers("users.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return us
}

// TestUsersLogin checks who a broker with a users file lets in, and that
// every refusal reads "not authorized" in the client's MQTT version, as
// Mosquitto 2 answers them.
func TestUsersLogin(t *testing.T) {
	const (
		ok      = 0
		notAuth = 0x87 // v5
		notAu3  = 5    // v3.1.1 and v3.1
	)
	for _, tc := range []struct {
		name   string
		allow  bool
		remote string
		v      byte
		l      login
		want   byte
	}{
		{"right password, v5", false, "192.0.2.7:1", 5, login{user: "alice", password: "alice-pw"}, ok},
		{"right password, v3.1.1, loopback", false, "127.0.0.1:1", 4, login{user: "bob", password: "bob-pw"}, ok},
		{"wrong password, v5", false, "192.0.2.7:1", 5, login{user: "alice", password: "bob-pw"}, notAuth},
		{"wrong password, v3.1.1", false, "192.0.2.7:1", 4, login{user: "alice", password: "bob-pw"}, notAu3},
		{"wrong password, v3.1", false, "192.0.2.7:1", 3, login{user: "alice", password: "x"}, notAu3},
		{"unknown user, v5", false, "192.0.2.7:1", 5, login{user: "mallory", password: "alice-pw"}, notAuth},
		{"unknown user, v3.1.1", false, "192.0.2.7:1", 4, login{user: "mallory", password: "alice-pw"}, notAu3},
		{"anonymous from loopback, v5", false, "127.0.0.1:1", 5, login{}, notAuth},
		{"anonymous from loopback, v3.1.1", false, "[::1]:1", 4, login{}, notAu3},
		{"anonymous with --allow-anonymous", true, "192.0.2.7:1", 4, login{}, ok},
		{"wrong password with --allow-anonymous", true, "192.0.2.7:1", 5, login{user: "alice", password: "x"}, notAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Options{AllowAnonymous: tc.allow, ACL: testACL(t), Users: testUsers(t, testUsersYAML)})
			if _, got := connectPipe(t, b, tc.remote, tc.v, "c", tc.l); got != tc.want {
				t.Errorf("CONNACK code: got %#x, want %#x", got, tc.want)
			}
		})
	}
}

func TestUsersNeedACL(t *testing.T) {
	if _, err := New(Options{Users: testUsers(t, testUsersYAML)}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("New with Users and no ACL: got %v, want ErrInvalidOptions", err)
	}
	b := startBroker(t, Options{ACL: testACL(t)})
	if _, err := b.SetUsers(testUsers(t, testUsersYAML)); !errors.Is(err, ErrNoUsers) {
		t.Errorf("SetUsers without a users file: got %v, want ErrNoUsers", err)
	}
	b = startBroker(t, Options{ACL: testACL(t), Users: testUsers(t, testUsersYAML)})
	if _, err := b.SetUsers(nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("SetUsers(nil): got %v, want ErrInvalidOptions", err)
	}
}

// rawPublish sends a PUBLISH of version v with QoS 1 and packet id 1.
func rawPublish(t *testing.T, c net.Conn, v byte, topic string) {
	t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: v,
		TopicName:       topic,
		PacketID:        1,
		Payload:         []byte("512"),
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// TestFakeStateRefusedV5 checks what an MQTT v5 client that publishes
// lamp state at QoS 1 reads: PUBACK "not authorized", and a command
// topic is acknowledged as usual. Nothing reaches the bus.
func TestFakeStateRefusedV5(t *testing.T) {
	b := startBroker(t, Options{ACL: testACL(t)})
	seen := make(chan string, 16)
	if _, err := b.Bus().Subscribe("#", 0, func(topic string, _ []byte, _ bool) { seen <- topic }); err != nil {
		t.Fatal(err)
	}
	c, code := connectPipe(t, b, "127.0.0.1:1", 5, "faker", login{})
	if code != 0 {
		t.Fatalf("CONNACK: got %#x, want 0", code)
	}
	for _, tc := range []struct {
		topic   string
		refused bool
	}{
		{"lamp/kitchen/state", true},
		{"lamp/kitchen/brightness", true},
		{"lampgw/status", true},
		{"lamp/kitchen/brightness/set", false},
	} {
		rawPublish(t, c, 5, tc.topic)
		p := readRaw(t, c)
		if p.kind() != packets.Puback {
			t.Fatalf("%s: got packet type %d, want PUBACK", tc.topic, p.kind())
		}
		// A v5 PUBACK may leave out a success reason code [MQTT-3.4.2.1].
		if refused := len(p.body) > 2 && p.body[2] == packets.ErrNotAuthorized.Code; refused != tc.refused {
			t.Errorf("%s: PUBACK % x: got refused %v, want %v", tc.topic, p.body, refused, tc.refused)
		}
	}
	if got := <-seen; got != "lamp/kitchen/brightness/set" {
		t.Errorf("bus: got %q first, want only the command", got)
	}
}

// TestWillMustPassTheACL: a will on lamp state is dropped when the client
// goes, and a will elsewhere is sent.
func TestWillMustPassTheACL(t *testing.T) {
	b := startBroker(t, Options{ACL: testACL(t)})
	seen := make(chan string, 16)
	if _, err := b.Bus().Subscribe("#", 0, func(topic string, _ []byte, _ bool) { seen <- topic }); err != nil {
		t.Fatal(err)
	}
	for _, l := range []login{
		{willTopic: "lamp/kitchen/availability", willRetain: true},
		{willTopic: "apps/dashboard/status", willRetain: true},
	} {
		c, code := connectPipe(t, b, "127.0.0.1:1", 4, "will-"+l.willTopic, l)
		if code != 0 {
			t.Fatalf("CONNACK: got %#x, want 0", code)
		}
		c.Close() // no DISCONNECT: the will is due
		testwait.Until(t, "the client to be gone", func() bool {
			_, ok := b.srv.Clients.Get("will-" + l.willTopic)
			return !ok
		})
	}
	if got := <-seen; got != "apps/dashboard/status" {
		t.Errorf("bus: got %q, want only the allowed will", got)
	}
	for topic := range b.srv.Topics.Retained.GetAll() {
		if topic == "lamp/kitchen/availability" {
			t.Errorf("retained: got %s, want no refused will", topic)
		}
	}
}

// TestInlineClientIDRefused: the broker's in-process client is named
// "inline"; a network client must not take its session over.
func TestInlineClientIDRefused(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.MQTTAddr().String()).
		SetClientID("inline").SetAutoReconnect(false).SetConnectTimeout(waitTimeout))
	tok := c.Connect()
	if !tok.WaitTimeout(waitTimeout) || tok.Error() == nil {
		c.Disconnect(0)
		t.Fatalf("connect as \"inline\": got %v, want refused", tok.Error())
	}
	// The bus, which uses that client, still works.
	got := make(chan string, 1)
	unsub, err := b.Bus().Subscribe("x", 0, func(_ string, p []byte, _ bool) { got <- string(p) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	b.Bus().Publish("x", []byte("still here"), 0, false)
	select {
	case s := <-got:
		if s != "still here" {
			t.Errorf("got %q", s)
		}
	case <-time.After(waitTimeout):
		t.Fatal("bus dead after the refused client")
	}
}
