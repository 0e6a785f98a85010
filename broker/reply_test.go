package broker

import (
	"errors"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lampgw/lampgw/internal/testwait"
)

func TestReplyArguments(t *testing.T) {
	b := startBroker(t, Options{})
	bus := b.Bus()
	h := func(string, []byte, bool, string, []byte) {}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"bad filter", first(bus.SubscribeRequests("a/b+", 0, h)), ErrInvalidFilter},
		{"bad QoS", first(bus.SubscribeRequests("a/+", 3, h)), ErrInvalidQoS},
		{"nil handler", first(bus.SubscribeRequests("a/+", 0, nil)), ErrNilHandler},
		{"wildcard reply topic", bus.PublishReply("a/#", nil, nil, 0), ErrInvalidTopic},
		{"$ reply topic", bus.PublishReply("$SYS/x", nil, nil, 0), ErrInvalidTopic},
		{"bad reply QoS", bus.PublishReply("a/b", nil, nil, 3), ErrInvalidQoS},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	b.Close()
	if _, err := bus.SubscribeRequests("a/+", 0, h); !errors.Is(err, ErrClosed) {
		t.Errorf("SubscribeRequests after Close: got %v, want %v", err, ErrClosed)
	}
	if err := bus.PublishReply("a/b", nil, nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishReply after Close: got %v, want %v", err, ErrClosed)
	}
}

func first(_ func(), err error) error { return err }

// TestRequestProperties: SubscribeRequests hands over a live message's
// response topic and correlation data (none for a message without), and
// PublishReply publishes like Publish.
func TestRequestProperties(t *testing.T) {
	b := startBroker(t, Options{})
	bus := b.Bus()
	type request struct {
		topic, payload, responseTopic, correlation string
	}
	requests := make(chan request, 4)
	unsub, err := bus.SubscribeRequests("req/+", 1, func(topic string, payload []byte, _ bool, rt string, corr []byte) {
		requests <- request{topic, string(payload), rt, string(corr)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	replies := make(chan string, 4)
	unsub2, err := bus.Subscribe("resp/#", 0, func(topic string, payload []byte, _ bool) { replies <- topic + " " + string(payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()

	// A PUBLISH with properties, as a v5 client's; its sender is the
	// inline client replies go out as, which may read anywhere.
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   "req/1",
		Payload:     []byte("on"),
		Properties:  packets.Properties{ResponseTopic: "resp/1", CorrelationData: []byte{0, 1}},
	}
	if err := b.srv.InjectPacket(bus.replies.client, pk); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish("req/2", []byte("off"), 0, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []request{{"req/1", "on", "resp/1", "\x00\x01"}, {"req/2", "off", "", ""}} {
		select {
		case got := <-requests:
			if got != want {
				t.Errorf("request: got %+v, want %+v", got, want)
			}
		case <-time.After(testwait.Timeout):
			t.Fatalf("no request %+v", want)
		}
	}

	if err := bus.PublishReply("resp/1", []byte{0, 1}, []byte(`{"status":"written"}`), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-replies:
		if want := `resp/1 {"status":"written"}`; got != want {
			t.Errorf("reply: got %s, want %s", got, want)
		}
	case <-time.After(testwait.Timeout):
		t.Fatal("no reply")
	}
}
