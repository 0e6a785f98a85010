package broker

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// rawPacket is one MQTT packet as read off the wire.
type rawPacket struct {
	header byte // type << 4 | flags
	body   []byte
}

func (p rawPacket) kind() byte { return p.header >> 4 }

// publishTopic returns the topic of a PUBLISH and its packet id (0 for QoS 0).
func (p rawPacket) publish() (topic string, id uint16) {
	n := binary.BigEndian.Uint16(p.body)
	topic = string(p.body[2 : 2+n])
	if p.header&0x06 != 0 {
		id = binary.BigEndian.Uint16(p.body[2+n:])
	}
	return topic, id
}

func readRaw(t *testing.T, c net.Conn) rawPacket {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	var hdr [1]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read packet: %v", err)
	}
	length, shift := 0, 0
	for {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("read length: %v", err)
		}
		length |= int(b[0]&0x7f) << shift
		if b[0]&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return rawPacket{hdr[0], body}
}

func writeRaw(t *testing.T, c net.Conn, header byte, id uint16, rest ...byte) {
	t.Helper()
	pk := append([]byte{header, byte(2 + len(rest)), byte(id >> 8), byte(id)}, rest...)
	if _, err := c.Write(pk); err != nil {
		t.Fatal(err)
	}
}

func filterBytes(f string) []byte { return append([]byte{0, byte(len(f))}, f...) }

// TestPacketIDsIndependentOfServer checks a client's SUBSCRIBE and
// UNSUBSCRIBE are honoured while the broker has a QoS 1 PUBLISH with the
// same packet identifier in flight to that client. Client and server
// number their packets independently (MQTT 3.1.1 section 2.3.1); mochi
// v2.7.9 checks both against one map and answers SUBACK 0x91, or for
// UNSUBSCRIBE silently keeps the subscription.
func TestPacketIDsIndependentOfServer(t *testing.T) {
	b := startBroker(t, Options{MQTTAddr: "127.0.0.1:0"})
	if err := b.Bus().Publish("col/a", []byte("x"), 1, true); err != nil {
		t.Fatal(err)
	}
	c := rawConnect(t, b.MQTTAddr().String(), "collide")

	// SUBSCRIBE col/# at QoS 1: SUBACK, then the retained PUBLISH at QoS 1,
	// which we never acknowledge, so its id stays in flight.
	writeRaw(t, c, 0x82, 1, append(filterBytes("col/#"), 1)...)
	var inflight uint16
	for inflight == 0 {
		p := readRaw(t, c)
		switch p.kind() {
		case 9: // SUBACK
			if got := p.body[2]; got != 1 {
				t.Fatalf("first SUBACK code: got %#x, want 0x01", got)
			}
		case 3: // PUBLISH
			_, inflight = p.publish()
		}
	}

	writeRaw(t, c, 0x82, inflight, append(filterBytes("other"), 0)...)
	if p := readRaw(t, c); p.kind() != 9 || binary.BigEndian.Uint16(p.body) != inflight || p.body[2] != 0 {
		t.Fatalf("SUBACK for id %d: got header %#x body % x, want SUBACK id %d code 0x00", inflight, p.header, p.body, inflight)
	}
	writeRaw(t, c, 0xa2, inflight, filterBytes("col/#")...)
	if p := readRaw(t, c); p.kind() != 11 || binary.BigEndian.Uint16(p.body) != inflight {
		t.Fatalf("UNSUBACK for id %d: got header %#x body % x", inflight, p.header, p.body)
	}

	// The UNSUBSCRIBE took effect: col/b is not delivered before the marker.
	if err := b.Bus().Publish("col/b", []byte("y"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Bus().Publish("other", []byte("marker"), 0, false); err != nil {
		t.Fatal(err)
	}
	for {
		p := readRaw(t, c)
		if p.kind() != 3 {
			continue
		}
		topic, _ := p.publish()
		if topic == "col/b" {
			t.Fatal("got col/b after unsubscribing col/#")
		}
		if topic == "other" {
			return
		}
	}
}
