package bridge

import (
	"fmt"
	"strings"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/dispatch"
	"github.com/lampgw/lampgw/topics"
)

// ReplyBus is a Bus that also carries MQTT 5 request/response
// [MQTT-4.10]: the Response Topic and Correlation Data of each command,
// and replies published with that Correlation Data. The embedded broker's
// InlineBus has it; mqttbus speaks MQTT 3.1.1, which has no properties,
// and does not. NewServer uses it when its Bus has it, so Bus itself,
// its adapters and their conformance suite (internal/bustest) stay as
// they are. Like Bus, it uses only built-in types.
type ReplyBus interface {
	Bus

	// SubscribeRequests is Subscribe whose handler also gets each live
	// message's Response Topic ("" if it has none) and Correlation Data
	// (nil if none). A bus may withhold a response topic, e.g. one the
	// message's sender may not read; the handler owns correlation.
	SubscribeRequests(filter string, qos byte, handler func(topic string, payload []byte, retained bool, responseTopic string, correlation []byte)) (unsubscribe func(), err error)

	// PublishReply publishes payload, not retained, to topic with
	// correlation as its Correlation Data (none if empty). The bus copies
	// both before it returns.
	PublishReply(topic string, correlation, payload []byte, qos byte) error
}

// Limits of a command's reply address. MQTT allows 65535 bytes of each;
// the registry keeps both with every pending command, in memory and in
// its store, and a request id needs far less (a UUID is 16 bytes, 36 as
// text).
const (
	// MaxResponseTopic is the longest response topic, in bytes.
	MaxResponseTopic = 256
	// MaxCorrelation is the most correlation data, in bytes.
	MaxCorrelation = 256
)

// CheckReply returns nil if the gateway may send a command's
// acknowledgements to r under the lamp topic prefix: r.Topic is a topic
// name an app may publish to (no wildcards, not a $-topic
// [MQTT-3.3.2-2] [MQTT-4.7.2-1]) of at most MaxResponseTopic bytes, not
// under prefix, where only lamp state lives, and not the gateway's own
// (lampgw or lampgw/...) other than topics.Replies/<user>/..., so an app
// cannot make the gateway publish lamp state or its status for it; and
// r.Correlation has at most MaxCorrelation bytes. It returns an error
// wrapping ErrResponseTopic or ErrCorrelationData otherwise.
func CheckReply(prefix string, r devices.Reply) error {
	t := r.Topic
	switch {
	case len(t) > MaxResponseTopic:
		return fmt.Errorf("%w: longer than %d bytes", ErrResponseTopic, MaxResponseTopic)
	case !dispatch.ValidTopic(t):
		return fmt.Errorf("%w: not a topic name", ErrResponseTopic)
	case under(t, prefix):
		return fmt.Errorf("%w: under the lamp prefix %s", ErrResponseTopic, prefix)
	case under(t, gatewayRoot):
		if _, ok := topics.ReplyOwner(t); !ok {
			return fmt.Errorf("%w: the gateway's own, other than %s/<user>", ErrResponseTopic, topics.Replies)
		}
	}
	if len(r.Correlation) > MaxCorrelation {
		return fmt.Errorf("%w: longer than %d bytes", ErrCorrelationData, MaxCorrelation)
	}
	return nil
}

// gatewayRoot is the first level of the gateway's own topics.
var gatewayRoot, _, _ = strings.Cut(topics.GatewayStatus, "/")

// under reports whether topic is root or below it.
func under(topic, root string) bool {
	rest, ok := strings.CutPrefix(topic, root)
	return ok && (rest == "" || rest[0] == '/')
}

// subscribeCommands subscribes to the command topics of filter: with
// their reply address when the bus carries one.
func (s *Server) subscribeCommands(filter string) (unsubscribe func(), err error) {
	if rb, ok := s.opts.Bus.(ReplyBus); ok {
		return rb.SubscribeRequests(filter, s.opts.QoS, s.onRequest)
	}
	return s.opts.Bus.Subscribe(filter, s.opts.QoS, s.onCommand)
}

// onRequest is onCommand for a ReplyBus: a command with an acceptable
// response topic has its acks published there too.
func (s *Server) onRequest(topic string, payload []byte, retained bool, responseTopic string, correlation []byte) {
	var reply *devices.Reply
	if responseTopic != "" {
		r := devices.Reply{Topic: responseTopic, Correlation: correlation}
		if err := CheckReply(s.opts.Prefix, r); err != nil {
			s.warn.Warn().Str("topic", topic).Str("response_topic", clip(responseTopic, MaxResponseTopic)).
				Str("reason", err.Error()).Msg("no replies for this command")
		} else {
			reply = &r
		}
	}
	s.command(topic, payload, retained, reply)
}

// publishReply publishes an ack's JSON to the response topic of its
// command, with its correlation data.
func (s *Server) publishReply(r devices.Reply, payload []byte) {
	rb, ok := s.opts.Bus.(ReplyBus)
	// A command restored from the store was checked when it came, but
	// perhaps under another prefix.
	if !ok || CheckReply(s.opts.Prefix, r) != nil {
		return
	}
	if err := rb.PublishReply(r.Topic, r.Correlation, payload, s.opts.QoS); err != nil {
		s.warn.Warn().Err(err).Str("topic", clip(r.Topic, MaxResponseTopic)).Msg("reply not published")
	}
}

// clip cuts s to at most n bytes for a log line.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
