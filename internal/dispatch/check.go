package dispatch

import (
	"errors"
	"fmt"
)

// Errors of CheckPublish and CheckSubscribe. Both bus adapters return
// these very values (broker.ErrInvalidTopic == dispatch.ErrInvalidTopic),
// so callers match them the same way whichever bus they hold.
var (
	// ErrInvalidTopic means a topic is empty, too long, not UTF-8, holds a
	// wildcard or NUL, or starts with '$' (reserved for the broker).
	ErrInvalidTopic = errors.New("bus: invalid topic")
	// ErrInvalidFilter means a topic filter breaks the MQTT rules for
	// wildcards or is a shared subscription, which the buses cannot route.
	ErrInvalidFilter = errors.New("bus: invalid topic filter")
	// ErrInvalidQoS means a QoS above 2.
	ErrInvalidQoS = errors.New("bus: invalid QoS")
	// ErrNilHandler means Subscribe was given a nil handler.
	ErrNilHandler = errors.New("bus: nil handler")
)

// CheckPublish validates the arguments of a bus Publish.
func CheckPublish(topic string, qos byte) error {
	switch {
	case !ValidTopic(topic):
		return fmt.Errorf("%w: %q", ErrInvalidTopic, topic)
	case qos > 2:
		return fmt.Errorf("%w: %d", ErrInvalidQoS, qos)
	}
	return nil
}

// CheckSubscribe validates the arguments of a bus Subscribe.
func CheckSubscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) error {
	if err := CheckFilter(filter, qos); err != nil {
		return err
	}
	if handler == nil {
		return ErrNilHandler
	}
	return nil
}

// CheckFilter validates the filter and QoS of a subscription.
func CheckFilter(filter string, qos byte) error {
	switch {
	case !ValidFilter(filter):
		return fmt.Errorf("%w: %q", ErrInvalidFilter, filter)
	case qos > 2:
		return fmt.Errorf("%w: %d", ErrInvalidQoS, qos)
	}
	return nil
}
