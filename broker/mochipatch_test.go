package broker

import (
	"reflect"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRetainedPacketsRoundTrip: the patched mochi holds each packet of a
// packets.Packets (the retained store) compactly, its Connect and
// Properties behind pointers; Get and GetAll must give back exactly the
// packet that was added, whichever parts it has.
func TestRetainedPacketsRoundTrip(t *testing.T) {
	expiry := uint32(60)
	full := packets.Packet{
		Connect: packets.ConnectParams{
			WillProperties:   packets.Properties{ContentType: "text/plain"},
			Password:         []byte("pw"),
			Username:         []byte("user"),
			ProtocolName:     []byte("MQTT"),
			WillPayload:      []byte("gone"),
			ClientIdentifier: "lamp-1",
			WillTopic:        "lamp/1/availability",
			Keepalive:        30,
			PasswordFlag:     true,
			UsernameFlag:     true,
			WillQos:          1,
			WillFlag:         true,
			WillRetain:       true,
			Clean:            true,
		},
		Properties: packets.Properties{
			CorrelationData:        []byte{1, 2},
			User:                   []packets.UserProperty{{Key: "k", Val: "v"}},
			ContentType:            "application/json",
			ResponseTopic:          "app/replies",
			MessageExpiryInterval:  expiry,
			PayloadFormat:          1,
			PayloadFormatFlag:      true,
			SubscriptionIdentifier: []int{3},
		},
		Payload:         []byte(`{"brightness":512}`),
		ReasonCodes:     []byte{0x80},
		Filters:         packets.Subscriptions{{Filter: "lamp/+/state", Qos: 1}},
		TopicName:       "lamp/1/state",
		Origin:          "inline",
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true, Remaining: 30},
		Created:         1000,
		Expiry:          1060,
		Mods:            packets.Mods{MaxSize: 1 << 20, DisallowProblemInfo: true, AllowResponseInfo: true},
		PacketID:        7,
		ProtocolVersion: 5,
		SessionPresent:  true,
		ReasonCode:      0x10,
		ReservedBit:     1,
		Ignore:          true,
	}
	// If mochi's Packet gains a field, this sample must set it too, or
	// the test would not see the compact store drop it.
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("the sample leaves Packet.%s zero", v.Type().Field(i).Name)
		}
	}
	bare := packets.Packet{
		Payload:     []byte("online"),
		TopicName:   "lamp/1/availability",
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		Created:     1000,
	}
	propsOnly := bare
	propsOnly.TopicName = "lamp/2/availability"
	propsOnly.Properties = packets.Properties{ContentType: "text/plain"}

	store := packets.NewPackets()
	want := map[string]packets.Packet{"full": full, "bare": bare, "props": propsOnly}
	for id, pk := range want {
		store.Add(id, pk)
	}
	for id, pk := range want {
		got, ok := store.Get(id)
		if !ok || !reflect.DeepEqual(got, pk) {
			t.Errorf("Get(%q) = %+v, %v; want %+v", id, got, ok, pk)
		}
	}
	if all := store.GetAll(); !reflect.DeepEqual(all, want) {
		t.Errorf("GetAll = %+v, want %+v", all, want)
	}
	// The expiring count follows replacements and deletions.
	if n := store.Expiring(); n != 1 {
		t.Errorf("Expiring = %d, want 1 (only full has an Expiry)", n)
	}
	store.Add("full", bare)
	store.Delete("bare")
	if n := store.Expiring(); n != 0 {
		t.Errorf("Expiring after replacing full = %d, want 0", n)
	}
	if _, ok := store.Get("bare"); ok || store.Len() != 2 {
		t.Errorf("after Delete: bare still there, or Len %d, want 2", store.Len())
	}
}
