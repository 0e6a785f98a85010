package bridge

// Bus is what the bridge needs from an MQTT broker. The embedded broker's
// inline client (broker.Broker.Bus) and the MQTT client adapter for an
// external broker (package mqttbus) both satisfy it; the signatures use
// only built-in types so neither adapter imports this package.
type Bus interface {
	// Publish sends payload to topic. The bus copies payload before it
	// returns, so the caller may reuse it.
	Publish(topic string, payload []byte, qos byte, retain bool) error

	// Subscribe calls handler for every message matching filter until
	// unsubscribe is called. Handler calls for one subscription are
	// serial and in the order each publisher published; they never run on
	// the publisher's goroutine, so a handler may publish. The handler owns
	// payload. retained is true only for messages replayed from the
	// retained store when the subscription is made, never for live
	// messages ([MQTT-3.3.1-9]).
	Subscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) (unsubscribe func(), err error)
}
