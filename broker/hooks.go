package broker

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// policyHook holds the broker's message policy: it keeps retained
// commands out of the retained store and counts messages dropped for slow
// clients.
type policyHook struct {
	mqtt.HookBase
	isCommand func(topic string) bool // nil: no topic is a command topic
	log       zerolog.Logger
	dropLog   zerolog.Logger // sampled: a stuck client drops on every publish
	dropped   atomic.Int64
}

func newPolicyHook(isCommand func(string) bool, log zerolog.Logger) *policyHook {
	return &policyHook{
		isCommand: isCommand,
		log:       log,
		dropLog:   log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
	}
}

func (h *policyHook) ID() string { return "lampgw-policy" }

func (h *policyHook) Provides(b byte) bool {
	return (b == mqtt.OnPublish && h.isCommand != nil) || b == mqtt.OnPublishDropped
}

// OnPublish clears the retain flag of a non-empty PUBLISH to a command
// topic. mochi's processPublish (server.go) assigns the packet returned
// here (pk = pkx) before it tests pk.FixedHeader.Retain to call
// retainMessage, and publishes the same packet to subscribers afterwards,
// so the command is still delivered live but never stored. An empty
// retained PUBLISH keeps its flag: it stores nothing and clears a command
// retained before this hook existed (or by another broker).
func (h *policyHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 && h.isCommand(pk.TopicName) {
		pk.FixedHeader.Retain = false
		h.log.Debug().Str("client", cl.ID).Str("topic", pk.TopicName).Msg("retain flag cleared on command")
	}
	return pk, nil
}

// OnPublishDropped is called by mochi (server.go publishToClient) when a
// client's outbound queue, sized by MaximumClientWritesPending, is full.
func (h *policyHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	n := h.dropped.Add(1)
	h.dropLog.Warn().
		Str("client", cl.ID).
		Str("remote", cl.Net.Remote).
		Str("topic", pk.TopicName).
		Int64("dropped_total", n).
		Msg("client too slow; message dropped")
}

// packetIDHook keeps a client's SUBSCRIBE and UNSUBSCRIBE from being
// refused because of the broker's own packet identifiers. Client and
// server number their packets independently (MQTT 3.1.1 section 2.3.1),
// but mochi v2.7.9 looks a SUBSCRIBE's or UNSUBSCRIBE's identifier up in
// the client's Inflight map, which also holds the QoS > 0 PUBLISHes the
// broker sent the client (server.go processSubscribe and
// processUnsubscribe, ErrPacketIdentifierInUse). A client that subscribes
// while a retained QoS 1 replay is unacknowledged then gets SUBACK 0x91,
// not even a 3.1.1 code, and an UNSUBSCRIBE is acknowledged but not done.
//
// OnPacketRead gives such a packet a substitute identifier that is free
// in Inflight, and OnPacketEncode puts the client's identifier back on
// the SUBACK or UNSUBACK. mochi reads, processes and acknowledges one
// packet at a time per client (Client.Read calls processSubscribe, which
// writes the ack), so one pending substitution per client suffices.
type packetIDHook struct {
	mqtt.HookBase
	mu      sync.Mutex
	pending map[*mqtt.Client]idSwap
}

type idSwap struct{ substitute, original uint16 }

func newPacketIDHook() *packetIDHook {
	return &packetIDHook{pending: map[*mqtt.Client]idSwap{}}
}

func (h *packetIDHook) ID() string { return "lampgw-packet-ids" }

func (h *packetIDHook) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode || b == mqtt.OnDisconnect
}

func (h *packetIDHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if t := pk.FixedHeader.Type; t != packets.Subscribe && t != packets.Unsubscribe {
		return pk, nil
	}
	if _, inUse := cl.State.Inflight.Get(pk.PacketID); !inUse {
		return pk, nil
	}
	// Search from the top: mochi numbers its own packets from 1 up.
	for id := uint16(math.MaxUint16); id > 0; id-- {
		if _, inUse := cl.State.Inflight.Get(id); !inUse {
			h.mu.Lock()
			h.pending[cl] = idSwap{substitute: id, original: pk.PacketID}
			h.mu.Unlock()
			pk.PacketID = id
			return pk, nil
		}
	}
	return pk, nil // every identifier in flight: let mochi refuse it
}

func (h *packetIDHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if t := pk.FixedHeader.Type; t != packets.Suback && t != packets.Unsuback {
		return pk
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if swap, ok := h.pending[cl]; ok && swap.substitute == pk.PacketID {
		pk.PacketID = swap.original
		delete(h.pending, cl)
	}
	return pk
}

// OnDisconnect drops a substitution whose ack was never written.
func (h *packetIDHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.mu.Lock()
	delete(h.pending, cl)
	h.mu.Unlock()
}
