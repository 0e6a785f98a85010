package topics

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultPrefix is the topic prefix used when none is configured.
const DefaultPrefix = "lamp"

// GatewayStatus is the retained topic where the gateway announces itself
// "online" on start and "offline" on shutdown.
const GatewayStatus = "lampgw/status"

// Replies is the root of the reply topics: an MQTT 5 app logged in as
// user may name Replies/<user> or a topic below it as the response topic
// of a command, and only that user (or an admin without lamp patterns)
// may read there (package auth). Nobody but the gateway publishes under
// lampgw/, so a reply there is the gateway's.
const Replies = "lampgw/replies"

// Payloads of availability topics.
const (
	Online  = "online"
	Offline = "offline"
)

// Reserved last levels. None of them can be a lamp key.
const (
	suffixState        = "state"
	suffixAvailability = "availability"
	suffixError        = "error"
	suffixAck          = "ack"
	suffixSet          = "set"
)

// Limits of ids and keys, from the wire protocol.
const (
	MaxIDLen  = 64
	MaxKeyLen = 32
)

// Errors returned by the validators and by Parse.
var (
	// ErrBadID means a device id is not 1..64 of [A-Za-z0-9_-].
	ErrBadID = errors.New("topics: invalid device id")
	// ErrBadKey means a key does not match ^[a-z][a-z0-9_]{0,31}$.
	ErrBadKey = errors.New("topics: invalid key")
	// ErrReservedKey means a key is one of the reserved topic levels.
	ErrReservedKey = errors.New("topics: reserved key")
	// ErrBadPrefix means a prefix is empty, has empty levels, wildcards
	// or starts with '$'.
	ErrBadPrefix = errors.New("topics: invalid prefix")
	// ErrNotLamp means a topic is not under the prefix or has no lamp
	// meaning there.
	ErrNotLamp = errors.New("topics: not a lamp topic")
)

// Kind says what a lamp topic carries.
type Kind uint8

// The kinds of lamp topics.
const (
	KindInvalid      Kind = iota
	KindValue             // prefix/<id>/<key>
	KindState             // prefix/<id>/state
	KindAvailability      // prefix/<id>/availability
	KindError             // prefix/<id>/error
	KindAck               // prefix/<id>/ack
	KindSet               // prefix/<id>/set
	KindSetKey            // prefix/<id>/<key>/set
)

var kindNames = [...]string{"invalid", "value", "state", "availability", "error", "ack", "set", "set-key"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// IsCommand reports whether topics of this kind carry commands to a lamp.
func (k Kind) IsCommand() bool { return k == KindSet || k == KindSetKey }

// Topic is a parsed lamp topic. Key is set only for KindValue and
// KindSetKey.
type Topic struct {
	Kind   Kind
	Device string
	Key    string
}

// ValidID reports whether id is a valid device id: 1 to 64 characters of
// [A-Za-z0-9_-]. Ids become one topic level, so '/', '+', '#' and the
// empty string are refused.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CheckKey returns nil when key can be a lamp key: it matches
// ^[a-z][a-z0-9_]{0,31}$ (ErrBadKey otherwise) and is not a reserved
// level (ErrReservedKey).
func CheckKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen || key[0] < 'a' || key[0] > 'z' {
		return ErrBadKey
	}
	for i := 1; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return ErrBadKey
		}
	}
	if reserved(key) {
		return ErrReservedKey
	}
	return nil
}

func reserved(level string) bool {
	switch level {
	case suffixState, suffixAvailability, suffixError, suffixAck, suffixSet:
		return true
	}
	return false
}

// CheckPrefix returns ErrBadPrefix unless prefix is one or more non-empty
// topic levels without wildcards that does not start with '$' (topics
// starting with '$' are the broker's own, [MQTT-4.7.2-1]) and that is
// valid UTF-8 [MQTT-4.7.3-2].
func CheckPrefix(prefix string) error {
	if prefix == "" || prefix[0] == '$' || strings.ContainsAny(prefix, "+#\x00") || !utf8.ValidString(prefix) {
		return ErrBadPrefix
	}
	for _, level := range strings.Split(prefix, "/") {
		if level == "" {
			return ErrBadPrefix
		}
	}
	return nil
}

// ReplyOwner returns the user whose reply topics hold topic: user for
// Replies/<user> and Replies/<user>/... . ok is false for any other
// topic, Replies itself and an empty user level included.
func ReplyOwner(topic string) (user string, ok bool) {
	rest, ok := strings.CutPrefix(topic, Replies+"/")
	if !ok {
		return "", false
	}
	user, _, _ = strings.Cut(rest, "/")
	return user, user != ""
}

// Value is the retained topic of one reported key: prefix/id/key.
func Value(prefix, id, key string) string { return prefix + "/" + id + "/" + key }

// State is the retained JSON state topic: prefix/id/state.
func State(prefix, id string) string { return prefix + "/" + id + "/" + suffixState }

// Availability is the retained online/offline topic: prefix/id/availability.
func Availability(prefix, id string) string { return prefix + "/" + id + "/" + suffixAvailability }

// Error is where refused commands are reported: prefix/id/error.
func Error(prefix, id string) string { return prefix + "/" + id + "/" + suffixError }

// Ack is where command progress is reported: prefix/id/ack.
func Ack(prefix, id string) string { return prefix + "/" + id + "/" + suffixAck }

// Set is the JSON command topic: prefix/id/set.
func Set(prefix, id string) string { return prefix + "/" + id + "/" + suffixSet }

// SetKey is the plain command topic of one key: prefix/id/key/set.
func SetKey(prefix, id, key string) string { return prefix + "/" + id + "/" + key + "/" + suffixSet }

// SetFilter matches every JSON command topic: prefix/+/set.
func SetFilter(prefix string) string { return prefix + "/+/" + suffixSet }

// SetKeyFilter matches every per-key command topic: prefix/+/+/set.
func SetKeyFilter(prefix string) string { return prefix + "/+/+/" + suffixSet }

// LampSetKeyFilter matches id's per-key command topics: prefix/id/+/set.
// With Set(prefix, id) it is every command topic of one lamp, what a
// bridge that holds only some lamps subscribes (package cluster).
func LampSetKeyFilter(prefix, id string) string { return prefix + "/" + id + "/+/" + suffixSet }

// Build returns the topic for t under prefix. It does not validate; use
// Check for untrusted parts.
func Build(prefix string, t Topic) string {
	switch t.Kind {
	case KindValue:
		return Value(prefix, t.Device, t.Key)
	case KindState:
		return State(prefix, t.Device)
	case KindAvailability:
		return Availability(prefix, t.Device)
	case KindError:
		return Error(prefix, t.Device)
	case KindAck:
		return Ack(prefix, t.Device)
	case KindSet:
		return Set(prefix, t.Device)
	case KindSetKey:
		return SetKey(prefix, t.Device, t.Key)
	}
	return ""
}

// Check returns nil when t has a known kind, a valid device id and, for
// kinds with a key, a valid key; otherwise ErrNotLamp, ErrBadID, ErrBadKey
// or ErrReservedKey.
func (t Topic) Check() error {
	if t.Kind == KindInvalid || int(t.Kind) >= len(kindNames) {
		return ErrNotLamp
	}
	if !ValidID(t.Device) {
		return ErrBadID
	}
	if t.Kind == KindValue || t.Kind == KindSetKey {
		return CheckKey(t.Key)
	}
	if t.Key != "" {
		return ErrBadKey
	}
	return nil
}

// Parse splits a topic under prefix into its parts. It returns ErrNotLamp
// for topics outside the scheme and ErrBadID, ErrBadKey or ErrReservedKey
// when the shape fits but a part is invalid, so a caller can tell a
// foreign topic from a malformed lamp topic.
func Parse(prefix, topic string) (Topic, error) {
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok || len(rest) < 2 || rest[0] != '/' {
		return Topic{}, ErrNotLamp
	}
	rest = rest[1:]
	id, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return Topic{}, ErrNotLamp
	}
	second, third, hasThird := strings.Cut(rest, "/")
	var t Topic
	switch {
	case hasThird && third == suffixSet:
		t = Topic{Kind: KindSetKey, Device: id, Key: second}
	case hasThird:
		return Topic{}, ErrNotLamp
	case second == suffixState:
		t = Topic{Kind: KindState, Device: id}
	case second == suffixAvailability:
		t = Topic{Kind: KindAvailability, Device: id}
	case second == suffixError:
		t = Topic{Kind: KindError, Device: id}
	case second == suffixAck:
		t = Topic{Kind: KindAck, Device: id}
	case second == suffixSet:
		t = Topic{Kind: KindSet, Device: id}
	default:
		t = Topic{Kind: KindValue, Device: id, Key: second}
	}
	if err := t.Check(); err != nil {
		return Topic{}, err
	}
	return t, nil
}
