package broker

import (
	"bytes"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/dispatch"
)

// replies is the InlineBus's part in MQTT 5 request/response [MQTT-4.10]:
// who may have replies sent where, and the client replies are published
// as.
type replies struct {
	// client publishes replies. It is an inline client like mochi's own
	// (Server.NewClient with inline set: never ACL-checked, no receive
	// quota), made apart because mochi's is unexported and
	// Clients.Get(InlineClientId) could return a network client that
	// connected with the client id "inline".
	client *mqtt.Client
	// mayRead reports whether the client with id origin may read topic;
	// nil allows everything. Broker.New sets it to the ACL's answer.
	mayRead func(origin, topic string) bool
	// warn is rate limited: any client may send requests at will.
	warn zerolog.Logger
}

func newReplies(srv *mqtt.Server, log zerolog.Logger) replies {
	return replies{
		client: srv.NewClient(nil, mqtt.LocalListener, mqtt.InlineClientId, true),
		warn:   log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Second}),
	}
}

// of returns pk's response topic and a copy of its correlation data, or
// nothing if pk has no response topic or its sender may not read there.
// It runs on the publisher's goroutine, within its PUBLISH.
func (r *replies) of(pk packets.Packet) (string, []byte) {
	topic := pk.Properties.ResponseTopic
	if topic == "" {
		return "", nil
	}
	if r.mayRead != nil && !r.mayRead(pk.Origin, topic) {
		r.warn.Warn().Str("client", pk.Origin).Str("topic", pk.TopicName).Str("response_topic", clip(topic, 256)).
			Msg("response topic refused: its sender may not read there; no replies")
		return "", nil
	}
	return topic, bytes.Clone(pk.Properties.CorrelationData)
}

// SubscribeRequests is Subscribe for requests [MQTT-4.10]: handler also
// gets each live message's MQTT 5 Response Topic and Correlation Data,
// for PublishReply. The bridge's ReplyBus (bridge/reply.go) is this.
//
// responseTopic is "" when the message has none, and when the broker's
// ACL (Options.ACL) would not let the message's sender read it, so that
// nobody has replies sent where they could not subscribe themselves (to
// another user's reply topics); such a refusal is a rate-limited warning.
// The sender is looked up by the packet's origin (mochi hands inline
// subscribers the packet, not its sender: server.go publishToSubscribers),
// within the sender's PUBLISH, so it is the sender unless a client took
// its id over in that instant. Retained messages replayed on subscribing
// carry neither property: a retained request is not a live one.
func (b *InlineBus) SubscribeRequests(filter string, qos byte, handler func(topic string, payload []byte, retained bool, responseTopic string, correlation []byte)) (unsubscribe func(), err error) {
	if err := dispatch.CheckFilter(filter, qos); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, ErrNilHandler
	}
	return b.subscribe(filter, func(m dispatch.Message) {
		handler(m.Topic, m.Payload, m.Retained, m.ResponseTopic, m.Correlation)
	}, true)
}

// PublishReply publishes payload to topic as the broker itself, not
// retained, with correlation as its Correlation Data [MQTT-3.3.2.3.6]
// (none if empty). MQTT 5 subscribers get the property; MQTT 3
// subscribers, which have no properties, the payload alone. The ACL is
// not asked about publishing (the broker publishes where no client may,
// lampgw/replies/...), only about each delivery, as for Publish. Payload
// and correlation are copied before PublishReply returns; errors are as
// Publish's.
func (b *InlineBus) PublishReply(topic string, correlation, payload []byte, qos byte) error {
	if err := dispatch.CheckPublish(topic, qos); err != nil {
		return err
	}
	if b.closed.Load() {
		return ErrClosed
	}
	// Server.Publish cannot carry properties; InjectPacket is what it
	// wraps, with the same packet plus ours.
	err := b.srv.InjectPacket(b.replies.client, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     bytes.Clone(payload),
		Properties:  packets.Properties{CorrelationData: bytes.Clone(correlation)},
		// As Server.Publish: never acknowledged, but a QoS > 0 PUBLISH
		// needs an id to pass PublishValidate [MQTT-2.2.1-3].
		PacketID: uint16(qos),
	})
	if err != nil {
		return fmt.Errorf("broker: publish reply %q: %w", topic, err)
	}
	return nil
}

// mayRead is replies.mayRead for the ACL: whether the client with id
// origin may read topic. A client that is gone may not; the inline
// client (the gateway's own publishes) may.
func (h *authHook) mayRead(origin, topic string) bool {
	if h.acl == nil {
		return true
	}
	cl, ok := h.srv.Clients.Get(origin)
	switch {
	case !ok:
		return false
	case cl.Net.Inline:
		return true
	}
	return h.acl.CanRead(h.user(cl), topic)
}
