package broker

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lampgw/lampgw/internal/testwait"
	"github.com/lampgw/lampgw/store"
)

const storageNS = "mqtt/"

// stored is a broker on a data dir. stop closes the broker, then the
// store, as the gateway does.
type stored struct {
	*Broker
	db *store.DB
	ns *store.Namespace
}

func startStored(t *testing.T, dir string, opts Options) *stored {
	t.Helper()
	db, _, err := store.Open(store.Options{Dir: dir, Logger: testLogger(t)}, storageNS)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	s := &stored{db: db, ns: db.Namespace(storageNS)}
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = "127.0.0.1:0"
	}
	opts.Storage = s.ns
	s.Broker = startBroker(t, opts)
	t.Cleanup(s.stop)
	return s
}

func (s *stored) stop() {
	s.Broker.Close()
	s.db.Close()
}

// keys lists the stored keys under prefix.
func (s *stored) keys(t *testing.T, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.ns.Scan([]byte(prefix), func(k, _ []byte) error {
		keys = append(keys, strings.ReplaceAll(string(k), "\x00", "|"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func (s *stored) url() string { return "tcp://" + s.MQTTAddr().String() }

// retained returns the retained payload of each topic under prefix, as
// mochi holds them.
func (s *stored) retained(prefix string) map[string]string {
	out := map[string]string{}
	for topic, pk := range s.srv.Topics.Retained.GetAll() {
		if strings.HasPrefix(topic, prefix) {
			out[topic] = string(pk.Payload)
		}
	}
	return out
}

func TestStorageRetainedSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := startStored(t, dir, Options{})
	bus := s.Bus()
	for _, m := range []struct{ topic, payload string }{
		{"lamp/a/brightness", "512"},
		{"lamp/a/availability", "online"},
		{"lamp/b/availability", "offline"},
		{"lamp/c/mode", "auto"},
		{"lamp/c/mode", ""}, // cleared
	} {
		if err := bus.Publish(m.topic, []byte(m.payload), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	// A network client's retained message is kept the same way.
	app := connect(t, s.url(), "app")
	wait(t, "publish", app.Publish("app/setting", 1, true, "on"))
	app.Disconnect(0)
	s.stop()

	var restored []string
	s = startStored(t, dir, Options{RestoreRetained: func(topic string, payload []byte) []byte {
		restored = append(restored, topic+"="+string(payload))
		if strings.HasSuffix(topic, "/availability") && string(payload) == "online" {
			return []byte("offline")
		}
		if topic == "app/setting" {
			return nil // dropped
		}
		return payload
	}})
	slices.Sort(restored)
	if want := []string{"app/setting=on", "lamp/a/availability=online", "lamp/a/brightness=512", "lamp/b/availability=offline"}; !slices.Equal(restored, want) {
		t.Errorf("RestoreRetained saw %v, want %v", restored, want)
	}
	want := map[string]string{"lamp/a/brightness": "512", "lamp/a/availability": "offline", "lamp/b/availability": "offline"}
	if got := s.retained("lamp/"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("retained after restart: got %v, want %v", got, want)
	}
	if got := s.retained("app/"); len(got) != 0 {
		t.Errorf("retained app/: got %v, want the dropped message gone", got)
	}

	// A network subscriber gets them as any retained message.
	sub := connect(t, s.url(), "sub")
	defer sub.Disconnect(0)
	if got := next(t, "subscriber", pahoSub(t, sub, "lamp/a/brightness")); got != (pahoMsg{"lamp/a/brightness", "512", true}) {
		t.Errorf("subscriber: got %v, want the restored retained message", got)
	}

	// The rewrite and the drop reached the disk: a third start sees them.
	s.stop()
	restored = nil
	s = startStored(t, dir, Options{RestoreRetained: func(topic string, payload []byte) []byte {
		restored = append(restored, topic+"="+string(payload))
		return payload
	}})
	slices.Sort(restored)
	if want := []string{"lamp/a/availability=offline", "lamp/a/brightness=512", "lamp/b/availability=offline"}; !slices.Equal(restored, want) {
		t.Errorf("third start: RestoreRetained saw %v, want %v", restored, want)
	}
}

// persistentClient connects id with clean session 0, every message to
// msgs.
func persistentClient(t *testing.T, url, id string, msgs chan<- pahoMsg) (paho.Client, bool) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(false).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			msgs <- pahoMsg{m.Topic(), string(m.Payload()), m.Retained()}
		})
	c := paho.NewClient(opts)
	tok := c.Connect()
	wait(t, "connect "+id, tok)
	return c, tok.(*paho.ConnectToken).SessionPresent()
}

func TestStorageSessionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := startStored(t, dir, Options{})
	msgs := make(chan pahoMsg, 10)
	app, _ := persistentClient(t, s.url(), "phone", msgs)
	wait(t, "subscribe", app.Subscribe("news/#", 1, nil))
	app.Disconnect(100)
	testwait.Until(t, "the client to be gone", func() bool {
		cl, ok := s.srv.Clients.Get("phone")
		return ok && cl.Closed()
	})
	// Queued for the client while it is away, QoS 1.
	if err := s.Bus().Publish("news/1", []byte("while away"), 1, false); err != nil {
		t.Fatal(err)
	}
	if got := s.keys(t, "inflight/"); len(got) != 1 {
		t.Fatalf("inflight records: got %v, want the queued message", got)
	}
	s.stop()

	s = startStored(t, dir, Options{})
	app, present := persistentClient(t, s.url(), "phone", msgs)
	defer app.Disconnect(0)
	if !present {
		t.Error("CONNACK session present: got false, want the restored session")
	}
	if got := next(t, "phone", msgs); got != (pahoMsg{"news/1", "while away", false}) {
		t.Errorf("after restart: got %v, want the message queued before it", got)
	}
	if err := s.Bus().Publish("news/2", []byte("live"), 1, false); err != nil {
		t.Fatal(err)
	}
	if got := next(t, "phone", msgs); got != (pahoMsg{"news/2", "live", false}) {
		t.Errorf("after restart: got %v, want the restored subscription to deliver", got)
	}
	testwait.Until(t, "the delivered message's record to go", func() bool { return len(s.keys(t, "inflight/")) == 0 })

	// A clean start ends the session, on disk too.
	app.Disconnect(100)
	clean := connect(t, s.url(), "phone")
	clean.Disconnect(100)
	testwait.Until(t, "the session's records to go", func() bool {
		return len(s.keys(t, "")) == len(s.keys(t, "retained/"))
	})
}

// TestStorageCleanSessionsWriteNothing: dashboards and lamps connect with
// clean sessions; they must not cost a write per connection or message.
func TestStorageCleanSessionsWriteNothing(t *testing.T) {
	s := startStored(t, t.TempDir(), Options{})
	c := connect(t, s.url(), "dashboard")
	in := pahoSub(t, c, "room/#")
	wait(t, "publish", c.Publish("room/1", 1, false, "x"))
	next(t, "dashboard", in)
	c.Disconnect(100)
	if got := s.keys(t, ""); len(got) != 0 {
		t.Errorf("stored after a clean session: got %v, want nothing", got)
	}
}

func TestStorageSessionExpiry(t *testing.T) {
	s := startStored(t, t.TempDir(), Options{MaxSessionExpiry: time.Second})
	msgs := make(chan pahoMsg, 10)
	app, _ := persistentClient(t, s.url(), "brief", msgs)
	wait(t, "subscribe", app.Subscribe("news/#", 1, nil))
	app.Disconnect(100)
	if got := s.keys(t, ""); len(got) != 2 {
		t.Fatalf("stored session: got %v, want client and subscription", got)
	}
	// mochi checks expiry every second, with second resolution: a 1 s
	// session is gone 2 to 3 s after its client left.
	deadline := time.Now().Add(30 * time.Second)
	for len(s.keys(t, "")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stored after expiry: got %v, want nothing", s.keys(t, ""))
		}
		<-time.After(50 * time.Millisecond)
	}
	// expiryHook: the expired session no longer subscribes.
	if subs := s.srv.Topics.Subscribers("news/1"); len(subs.Subscriptions) != 0 {
		t.Errorf("subscribers of news/1 after expiry: got %v, want none", subs.Subscriptions)
	}
}

func TestStorageOrphansAndUndecodable(t *testing.T) {
	dir := t.TempDir()
	db, _, err := store.Open(store.Options{Dir: dir}, storageNS)
	if err != nil {
		t.Fatal(err)
	}
	ns := db.Namespace(storageNS)
	sub, _ := json.Marshal(map[string]any{"client": "gone", "filter": "x/#", "qos": 1})
	ns.Set(subKey("gone", "x/#"), sub)
	ns.Set(inflightKey("gone", 7), []byte(`{"client":"gone","topic_name":"x/1","payload":"eA=="}`))
	ns.Set(retainedKey("bad"), []byte("{not json"))
	good, _ := json.Marshal(newStoredMessage("", packets.Packet{TopicName: "good", Payload: []byte("1"), FixedHeader: packets.FixedHeader{Retain: true}}, 0))
	ns.Set(retainedKey("good"), good)
	db.Close()

	s := startStored(t, dir, Options{})
	if got, want := s.keys(t, ""), []string{"retained/bad", "retained/good"}; !slices.Equal(got, want) {
		t.Errorf("stored after load: got %v, want %v (orphans deleted, the undecodable record kept for a look)", got, want)
	}
	if got := s.retained(""); got["good"] != "1" || len(got) != 1+len(s.retained("$SYS")) {
		t.Errorf("retained: got %v, want good=1 and $SYS only", got)
	}
	if subs := s.srv.Topics.Subscribers("x/1"); len(subs.Subscriptions) != 0 {
		t.Errorf("subscribers of x/1: got %v, want none: an orphan subscription is no subscription", subs.Subscriptions)
	}
}

// TestStoredMessageKeepsExpiry: mochi's storage.Message.ToPacket drops
// Expiry and the protocol version, without which an MQTT 5 message
// would never expire after a restart.
func TestStoredMessageKeepsExpiry(t *testing.T) {
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:       "a/b",
		Payload:         []byte("p"),
		PacketID:        9,
		Created:         1000,
		Expiry:          1060,
		ProtocolVersion: 5,
		Properties:      packets.Properties{MessageExpiryInterval: 60, ContentType: "text/plain"},
	}
	data, err := json.Marshal(newStoredMessage("c", pk, 1001))
	if err != nil {
		t.Fatal(err)
	}
	var m storedMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	got := m.toPacket()
	if got.Expiry != 1060 || got.ProtocolVersion != 5 || got.PacketID != 9 || got.Created != 1000 ||
		string(got.Payload) != "p" || got.Properties.MessageExpiryInterval != 60 || got.Properties.ContentType != "text/plain" {
		t.Errorf("round trip: got %+v, want %+v", got, pk)
	}
}

func TestMaxSessionExpiry(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want uint32
	}{
		{"default", 0, 86400},
		{"custom", time.Hour, 3600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{MaxSessionExpiry: tc.in})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := b.srv.Options.Capabilities.MaximumSessionExpiryInterval; got != tc.want {
				t.Errorf("MaximumSessionExpiryInterval: got %d, want %d", got, tc.want)
			}
		})
	}
	if _, err := New(Options{MaxSessionExpiry: -time.Second}); err == nil {
		t.Error("New with a negative MaxSessionExpiry: got no error")
	}
}
