package topics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/topics"
)

// The tables below drive the unit tests and seed FuzzParse, so every edge
// case written down once is also a starting point for the fuzzer.

var (
	id64  = strings.Repeat("a", topics.MaxIDLen)
	id65  = strings.Repeat("a", topics.MaxIDLen+1)
	key32 = "k" + strings.Repeat("0", topics.MaxKeyLen-1)
	key33 = "k" + strings.Repeat("0", topics.MaxKeyLen)
)

var idTests = []struct {
	name string
	id   string
	want bool
}{
	{name: "simple", id: "kitchen", want: true},
	{name: "one char", id: "a", want: true},
	{name: "max length", id: id64, want: true},
	{name: "underscore and dash", id: "_-", want: true},
	{name: "mixed", id: "Lamp_01-b", want: true},
	{name: "digits", id: "0123456789", want: true},
	// A reserved level is a fine id: it sits in the id position, so
	// lamp/state/state still has one meaning.
	{name: "reserved word", id: "state", want: true},
	{name: "empty", id: "", want: false},
	{name: "too long", id: id65, want: false},
	{name: "slash", id: "a/b", want: false},
	{name: "multi-level wildcard", id: "#", want: false},
	{name: "single-level wildcard", id: "+", want: false},
	{name: "space", id: "a b", want: false},
	{name: "non-ASCII", id: "küche", want: false},
	{name: "NUL", id: "a\x00b", want: false},
	{name: "dot", id: "a.b", want: false},
	{name: "dollar", id: "$SYS", want: false},
}

func TestValidID(t *testing.T) {
	for _, tc := range idTests {
		t.Run(tc.name, func(t *testing.T) {
			if got := topics.ValidID(tc.id); got != tc.want {
				t.Errorf("ValidID(%q): got %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

var keyTests = []struct {
	name string
	key  string
	want error
}{
	{name: "simple", key: "brightness", want: nil},
	{name: "one char", key: "a", want: nil},
	{name: "max length", key: key32, want: nil},
	{name: "digits and underscore", key: "color_temp_2", want: nil},
	{name: "looks like a payload", key: "online", want: nil},
	{name: "empty", key: "", want: topics.ErrBadKey},
	{name: "uppercase", key: "Brightness", want: topics.ErrBadKey},
	{name: "uppercase inside", key: "brightNess", want: topics.ErrBadKey},
	{name: "leading digit", key: "1brightness", want: topics.ErrBadKey},
	{name: "leading underscore", key: "_brightness", want: topics.ErrBadKey},
	{name: "too long", key: key33, want: topics.ErrBadKey},
	{name: "dash", key: "a-b", want: topics.ErrBadKey},
	{name: "slash", key: "a/b", want: topics.ErrBadKey},
	{name: "wildcard", key: "+", want: topics.ErrBadKey},
	{name: "non-ASCII", key: "hellé", want: topics.ErrBadKey},
	// Reserved levels would make lamp/<id>/<key> ambiguous.
	{name: "reserved state", key: "state", want: topics.ErrReservedKey},
	{name: "reserved availability", key: "availability", want: topics.ErrReservedKey},
	{name: "reserved error", key: "error", want: topics.ErrReservedKey},
	{name: "reserved ack", key: "ack", want: topics.ErrReservedKey},
	{name: "reserved set", key: "set", want: topics.ErrReservedKey},
}

func TestCheckKey(t *testing.T) {
	for _, tc := range keyTests {
		t.Run(tc.name, func(t *testing.T) {
			got := topics.CheckKey(tc.key)
			if tc.want == nil {
				if got != nil {
					t.Errorf("CheckKey(%q): got %v, want nil", tc.key, got)
				}
				return
			}
			if !errors.Is(got, tc.want) {
				t.Errorf("CheckKey(%q): got %v, want %v", tc.key, got, tc.want)
			}
		})
	}
}

var prefixTests = []struct {
	name   string
	prefix string
	want   error
}{
	{name: "default", prefix: topics.DefaultPrefix, want: nil},
	{name: "two levels", prefix: "home/lamp", want: nil},
	{name: "three levels", prefix: "a/b/c", want: nil},
	// Only a leading '$' belongs to the broker [MQTT-4.7.2-1].
	{name: "dollar inside", prefix: "home/$lamp", want: nil},
	{name: "empty", prefix: "", want: topics.ErrBadPrefix},
	{name: "broker topic", prefix: "$SYS", want: topics.ErrBadPrefix},
	{name: "empty inner level", prefix: "a//b", want: topics.ErrBadPrefix},
	{name: "trailing slash", prefix: "a/", want: topics.ErrBadPrefix},
	{name: "leading slash", prefix: "/a", want: topics.ErrBadPrefix},
	{name: "only slash", prefix: "/", want: topics.ErrBadPrefix},
	{name: "single-level wildcard", prefix: "a/+", want: topics.ErrBadPrefix},
	{name: "multi-level wildcard", prefix: "#", want: topics.ErrBadPrefix},
	{name: "wildcard inside level", prefix: "la+mp", want: topics.ErrBadPrefix},
	// U+0000 is forbidden in topic names [MQTT-4.7.3-2].
	{name: "NUL", prefix: "la\x00mp", want: topics.ErrBadPrefix},
}

func TestCheckPrefix(t *testing.T) {
	for _, tc := range prefixTests {
		t.Run(tc.name, func(t *testing.T) {
			got := topics.CheckPrefix(tc.prefix)
			if tc.want == nil {
				if got != nil {
					t.Errorf("CheckPrefix(%q): got %v, want nil", tc.prefix, got)
				}
				return
			}
			if !errors.Is(got, tc.want) {
				t.Errorf("CheckPrefix(%q): got %v, want %v", tc.prefix, got, tc.want)
			}
		})
	}
}

// parseErrors are the errors Parse may return; each failing topic must
// match exactly one of them, so callers can tell a foreign topic
// (ErrNotLamp) from a malformed lamp topic.
var parseErrors = []error{topics.ErrNotLamp, topics.ErrBadID, topics.ErrBadKey, topics.ErrReservedKey}

var parseTests = []struct {
	name    string
	prefix  string
	topic   string
	want    topics.Topic
	wantErr error
}{
	// Every kind under the default prefix.
	{name: "value", prefix: "lamp", topic: "lamp/kitchen/brightness",
		want: topics.Topic{Kind: topics.KindValue, Device: "kitchen", Key: "brightness"}},
	{name: "state", prefix: "lamp", topic: "lamp/kitchen/state",
		want: topics.Topic{Kind: topics.KindState, Device: "kitchen"}},
	{name: "availability", prefix: "lamp", topic: "lamp/kitchen/availability",
		want: topics.Topic{Kind: topics.KindAvailability, Device: "kitchen"}},
	{name: "error", prefix: "lamp", topic: "lamp/kitchen/error",
		want: topics.Topic{Kind: topics.KindError, Device: "kitchen"}},
	{name: "ack", prefix: "lamp", topic: "lamp/kitchen/ack",
		want: topics.Topic{Kind: topics.KindAck, Device: "kitchen"}},
	{name: "set", prefix: "lamp", topic: "lamp/kitchen/set",
		want: topics.Topic{Kind: topics.KindSet, Device: "kitchen"}},
	{name: "set key", prefix: "lamp", topic: "lamp/kitchen/brightness/set",
		want: topics.Topic{Kind: topics.KindSetKey, Device: "kitchen", Key: "brightness"}},

	// Every kind under a multi-level prefix.
	{name: "multi-level value", prefix: "home/lamp", topic: "home/lamp/kitchen/brightness",
		want: topics.Topic{Kind: topics.KindValue, Device: "kitchen", Key: "brightness"}},
	{name: "multi-level state", prefix: "home/lamp", topic: "home/lamp/kitchen/state",
		want: topics.Topic{Kind: topics.KindState, Device: "kitchen"}},
	{name: "multi-level availability", prefix: "home/lamp", topic: "home/lamp/kitchen/availability",
		want: topics.Topic{Kind: topics.KindAvailability, Device: "kitchen"}},
	{name: "multi-level error", prefix: "home/lamp", topic: "home/lamp/kitchen/error",
		want: topics.Topic{Kind: topics.KindError, Device: "kitchen"}},
	{name: "multi-level ack", prefix: "home/lamp", topic: "home/lamp/kitchen/ack",
		want: topics.Topic{Kind: topics.KindAck, Device: "kitchen"}},
	{name: "multi-level set", prefix: "home/lamp", topic: "home/lamp/kitchen/set",
		want: topics.Topic{Kind: topics.KindSet, Device: "kitchen"}},
	{name: "multi-level set key", prefix: "home/lamp", topic: "home/lamp/kitchen/brightness/set",
		want: topics.Topic{Kind: topics.KindSetKey, Device: "kitchen", Key: "brightness"}},
	{name: "three-level prefix", prefix: "a/b/c", topic: "a/b/c/d/e/set",
		want: topics.Topic{Kind: topics.KindSetKey, Device: "d", Key: "e"}},

	// Edge-case ids and keys that are still valid.
	{name: "max id and key", prefix: "lamp", topic: "lamp/" + id64 + "/" + key32,
		want: topics.Topic{Kind: topics.KindValue, Device: id64, Key: key32}},
	{name: "short id and key", prefix: "lamp", topic: "lamp/_/a/set",
		want: topics.Topic{Kind: topics.KindSetKey, Device: "_", Key: "a"}},
	{name: "reserved word as id", prefix: "lamp", topic: "lamp/state/state",
		want: topics.Topic{Kind: topics.KindState, Device: "state"}},
	{name: "set as id and command", prefix: "lamp", topic: "lamp/set/set",
		want: topics.Topic{Kind: topics.KindSet, Device: "set"}},
	{name: "set as id with key", prefix: "lamp", topic: "lamp/set/brightness/set",
		want: topics.Topic{Kind: topics.KindSetKey, Device: "set", Key: "brightness"}},
	{name: "prefix as id", prefix: "lamp", topic: "lamp/lamp/lamp",
		want: topics.Topic{Kind: topics.KindValue, Device: "lamp", Key: "lamp"}},

	// Foreign topics.
	{name: "foreign", prefix: "lamp", topic: "other/x/brightness", wantErr: topics.ErrNotLamp},
	{name: "prefix lookalike", prefix: "lamp", topic: "lampx/a/b", wantErr: topics.ErrNotLamp},
	{name: "gateway status", prefix: "lamp", topic: topics.GatewayStatus, wantErr: topics.ErrNotLamp},
	{name: "partial multi-level prefix", prefix: "home/lamp", topic: "home/kitchen/brightness", wantErr: topics.ErrNotLamp},
	{name: "inner level of prefix", prefix: "home/lamp", topic: "lamp/kitchen/brightness", wantErr: topics.ErrNotLamp},
	{name: "leading slash", prefix: "lamp", topic: "/lamp/kitchen/state", wantErr: topics.ErrNotLamp},
	{name: "empty topic", prefix: "lamp", topic: "", wantErr: topics.ErrNotLamp},
	{name: "broker topic", prefix: "lamp", topic: "$SYS/broker/uptime", wantErr: topics.ErrNotLamp},

	// Too few or too many levels.
	{name: "prefix only", prefix: "lamp", topic: "lamp", wantErr: topics.ErrNotLamp},
	{name: "prefix and slash", prefix: "lamp", topic: "lamp/", wantErr: topics.ErrNotLamp},
	{name: "id only", prefix: "lamp", topic: "lamp/kitchen", wantErr: topics.ErrNotLamp},
	{name: "multi-level id only", prefix: "home/lamp", topic: "home/lamp/kitchen", wantErr: topics.ErrNotLamp},
	{name: "four levels not set", prefix: "lamp", topic: "lamp/kitchen/brightness/get", wantErr: topics.ErrNotLamp},
	{name: "state with extra level", prefix: "lamp", topic: "lamp/kitchen/state/x", wantErr: topics.ErrNotLamp},
	{name: "five levels", prefix: "lamp", topic: "lamp/kitchen/a/b/set", wantErr: topics.ErrNotLamp},
	{name: "set key with extra level", prefix: "lamp", topic: "lamp/kitchen/brightness/set/x", wantErr: topics.ErrNotLamp},
	{name: "set set set", prefix: "lamp", topic: "lamp/kitchen/set/set/set", wantErr: topics.ErrNotLamp},
	{name: "wildcard in extra level", prefix: "lamp", topic: "lamp/kitchen/brightness/#", wantErr: topics.ErrNotLamp},

	// Right shape, bad id.
	{name: "space in id", prefix: "lamp", topic: "lamp/a b/brightness", wantErr: topics.ErrBadID},
	{name: "id too long", prefix: "lamp", topic: "lamp/" + id65 + "/state", wantErr: topics.ErrBadID},
	{name: "non-ASCII id", prefix: "lamp", topic: "lamp/küche/state", wantErr: topics.ErrBadID},
	{name: "wildcard id", prefix: "lamp", topic: "lamp/+/set", wantErr: topics.ErrBadID},
	{name: "multi-level wildcard id", prefix: "lamp", topic: "lamp/#/state", wantErr: topics.ErrBadID},
	{name: "NUL id", prefix: "lamp", topic: "lamp/a\x00/state", wantErr: topics.ErrBadID},
	// The id is checked before the key.
	{name: "bad id and bad key", prefix: "lamp", topic: "lamp/a b/B", wantErr: topics.ErrBadID},

	// Right shape, bad key in the value position. A reserved word there is
	// not an error: it is another kind (see "state" above).
	{name: "uppercase value key", prefix: "lamp", topic: "lamp/kitchen/Brightness", wantErr: topics.ErrBadKey},
	{name: "uppercase reserved word", prefix: "lamp", topic: "lamp/kitchen/State", wantErr: topics.ErrBadKey},
	{name: "leading digit value key", prefix: "lamp", topic: "lamp/kitchen/1x", wantErr: topics.ErrBadKey},
	{name: "dash value key", prefix: "lamp", topic: "lamp/kitchen/a-b", wantErr: topics.ErrBadKey},
	{name: "value key too long", prefix: "lamp", topic: "lamp/kitchen/" + key33, wantErr: topics.ErrBadKey},
	{name: "wildcard value key", prefix: "lamp", topic: "lamp/kitchen/+", wantErr: topics.ErrBadKey},
	{name: "multi-level wildcard value key", prefix: "lamp", topic: "lamp/kitchen/#", wantErr: topics.ErrBadKey},

	// Right shape, bad or reserved key in the set-key position.
	{name: "uppercase set key", prefix: "lamp", topic: "lamp/kitchen/Brightness/set", wantErr: topics.ErrBadKey},
	{name: "leading underscore set key", prefix: "lamp", topic: "lamp/kitchen/_b/set", wantErr: topics.ErrBadKey},
	{name: "wildcard set key", prefix: "lamp", topic: "lamp/kitchen/+/set", wantErr: topics.ErrBadKey},
	{name: "reserved set key state", prefix: "lamp", topic: "lamp/x/state/set", wantErr: topics.ErrReservedKey},
	{name: "reserved set key availability", prefix: "lamp", topic: "lamp/x/availability/set", wantErr: topics.ErrReservedKey},
	{name: "reserved set key error", prefix: "lamp", topic: "lamp/x/error/set", wantErr: topics.ErrReservedKey},
	{name: "reserved set key ack", prefix: "lamp", topic: "lamp/x/ack/set", wantErr: topics.ErrReservedKey},
	{name: "reserved set key set", prefix: "lamp", topic: "lamp/x/set/set", wantErr: topics.ErrReservedKey},
	{name: "multi-level reserved set key", prefix: "home/lamp", topic: "home/lamp/x/state/set", wantErr: topics.ErrReservedKey},

	// Empty levels: the shape decides ErrNotLamp, then the empty id or key
	// is invalid like any other.
	{name: "empty id", prefix: "lamp", topic: "lamp//brightness", wantErr: topics.ErrBadID},
	{name: "empty id and key", prefix: "lamp", topic: "lamp//", wantErr: topics.ErrBadID},
	{name: "empty id set", prefix: "lamp", topic: "lamp//set", wantErr: topics.ErrBadID},
	{name: "empty id and key set", prefix: "lamp", topic: "lamp///set", wantErr: topics.ErrBadID},
	{name: "empty value key", prefix: "lamp", topic: "lamp/kitchen/", wantErr: topics.ErrBadKey},
	{name: "empty set key", prefix: "lamp", topic: "lamp/kitchen//set", wantErr: topics.ErrBadKey},
	{name: "empty last level", prefix: "lamp", topic: "lamp/kitchen/brightness/", wantErr: topics.ErrNotLamp},
	{name: "empty level after prefix", prefix: "home/lamp", topic: "home/lamp//kitchen/state", wantErr: topics.ErrNotLamp},
	{name: "empty level inside prefix", prefix: "home/lamp", topic: "home//lamp/kitchen/state", wantErr: topics.ErrNotLamp},
}

func TestParse(t *testing.T) {
	for _, tc := range parseTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := topics.Parse(tc.prefix, tc.topic)
			if got != tc.want {
				t.Errorf("Parse(%q, %q): got %+v, want %+v", tc.prefix, tc.topic, got, tc.want)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Errorf("Parse(%q, %q): got error %v, want nil", tc.prefix, tc.topic, err)
				}
				return
			}
			// Exactly one sentinel must match, so ErrNotLamp and the
			// malformed-topic errors stay apart.
			for _, sentinel := range parseErrors {
				if got, want := errors.Is(err, sentinel), sentinel == tc.wantErr; got != want {
					t.Errorf("Parse(%q, %q) = %v; errors.Is(err, %v): got %v, want %v",
						tc.prefix, tc.topic, err, sentinel, got, want)
				}
			}
		})
	}
}

// roundTripPrefixes and roundTripTopics are crossed: every valid Topic
// under every valid prefix.
var roundTripPrefixes = []string{topics.DefaultPrefix, "home/lamp", "a/b/c", "lampgw", "set"}

var roundTripTopics = []topics.Topic{
	{Kind: topics.KindValue, Device: "kitchen", Key: "brightness"},
	{Kind: topics.KindValue, Device: id64, Key: key32},
	{Kind: topics.KindValue, Device: "a", Key: "a"},
	{Kind: topics.KindValue, Device: "set", Key: "online"},
	{Kind: topics.KindState, Device: "kitchen"},
	{Kind: topics.KindState, Device: "state"},
	{Kind: topics.KindAvailability, Device: "_-"},
	{Kind: topics.KindError, Device: "0123456789"},
	{Kind: topics.KindAck, Device: "Lamp-01"},
	{Kind: topics.KindSet, Device: "kitchen"},
	{Kind: topics.KindSet, Device: "set"},
	{Kind: topics.KindSetKey, Device: "kitchen", Key: "brightness"},
	{Kind: topics.KindSetKey, Device: "set", Key: "color_temp"},
	{Kind: topics.KindSetKey, Device: id64, Key: key32},
}

func TestRoundTrip(t *testing.T) {
	for _, prefix := range roundTripPrefixes {
		for _, tp := range roundTripTopics {
			topic := topics.Build(prefix, tp)
			t.Run(topic, func(t *testing.T) {
				if err := tp.Check(); err != nil {
					t.Fatalf("%+v.Check(): got %v, want nil", tp, err)
				}
				got, err := topics.Parse(prefix, topic)
				if err != nil {
					t.Fatalf("Parse(%q, %q): got error %v, want nil", prefix, topic, err)
				}
				if got != tp {
					t.Errorf("Parse(%q, %q): got %+v, want %+v", prefix, topic, got, tp)
				}
			})
		}
	}
}

// TestBuild pins Build to the per-kind helpers, so the round trip above
// also covers Value, State, Availability, Error, Ack, Set and SetKey.
func TestBuild(t *testing.T) {
	const p, id, key = "home/lamp", "kitchen", "brightness"
	tests := []struct {
		name string
		in   topics.Topic
		want string
	}{
		{name: "value", in: topics.Topic{Kind: topics.KindValue, Device: id, Key: key}, want: topics.Value(p, id, key)},
		{name: "state", in: topics.Topic{Kind: topics.KindState, Device: id}, want: topics.State(p, id)},
		{name: "availability", in: topics.Topic{Kind: topics.KindAvailability, Device: id}, want: topics.Availability(p, id)},
		{name: "error", in: topics.Topic{Kind: topics.KindError, Device: id}, want: topics.Error(p, id)},
		{name: "ack", in: topics.Topic{Kind: topics.KindAck, Device: id}, want: topics.Ack(p, id)},
		{name: "set", in: topics.Topic{Kind: topics.KindSet, Device: id}, want: topics.Set(p, id)},
		{name: "set key", in: topics.Topic{Kind: topics.KindSetKey, Device: id, Key: key}, want: topics.SetKey(p, id, key)},
		{name: "invalid kind", in: topics.Topic{Kind: topics.KindInvalid, Device: id}, want: ""},
		{name: "unknown kind", in: topics.Topic{Kind: 200, Device: id}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := topics.Build(p, tc.in); got != tc.want {
				t.Errorf("Build(%q, %+v): got %q, want %q", p, tc.in, got, tc.want)
			}
		})
	}
}

func TestTopicCheck(t *testing.T) {
	tests := []struct {
		name string
		in   topics.Topic
		want error
	}{
		{name: "value", in: topics.Topic{Kind: topics.KindValue, Device: "a", Key: "b"}, want: nil},
		{name: "state", in: topics.Topic{Kind: topics.KindState, Device: "a"}, want: nil},
		{name: "zero", in: topics.Topic{}, want: topics.ErrNotLamp},
		{name: "unknown kind", in: topics.Topic{Kind: 8, Device: "a"}, want: topics.ErrNotLamp},
		{name: "bad id", in: topics.Topic{Kind: topics.KindState, Device: "a/b"}, want: topics.ErrBadID},
		{name: "value without key", in: topics.Topic{Kind: topics.KindValue, Device: "a"}, want: topics.ErrBadKey},
		{name: "reserved key", in: topics.Topic{Kind: topics.KindSetKey, Device: "a", Key: "set"}, want: topics.ErrReservedKey},
		// Build would drop the key, so Parse could not give it back.
		{name: "key on keyless kind", in: topics.Topic{Kind: topics.KindSet, Device: "a", Key: "b"}, want: topics.ErrBadKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.Check()
			if tc.want == nil {
				if got != nil {
					t.Errorf("%+v.Check(): got %v, want nil", tc.in, got)
				}
				return
			}
			if !errors.Is(got, tc.want) {
				t.Errorf("%+v.Check(): got %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		kind    topics.Kind
		name    string
		command bool
	}{
		{topics.KindInvalid, "invalid", false},
		{topics.KindValue, "value", false},
		{topics.KindState, "state", false},
		{topics.KindAvailability, "availability", false},
		{topics.KindError, "error", false},
		{topics.KindAck, "ack", false},
		{topics.KindSet, "set", true},
		{topics.KindSetKey, "set-key", true},
		{topics.Kind(8), "Kind(8)", false},
		{topics.Kind(255), "Kind(255)", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kind.String(); got != tc.name {
				t.Errorf("String(): got %v, want %v", got, tc.name)
			}
			if got := tc.kind.IsCommand(); got != tc.command {
				t.Errorf("IsCommand(): got %v, want %v", got, tc.command)
			}
		})
	}
}

// matchFilter reports whether an MQTT topic filter matches a topic name
// [MQTT-4.7]: '+' matches exactly one level, a trailing '#' matches the
// parent level and any number of levels below it, and a wildcard in the
// first level does not match topics starting with '$' [MQTT-4.7.2-1].
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		topic  string
		want   bool
	}{
		{name: "exact", filter: "a/b", topic: "a/b", want: true},
		{name: "plus", filter: "a/+/c", topic: "a/b/c", want: true},
		{name: "plus matches empty level", filter: "a/+/c", topic: "a//c", want: true},
		{name: "plus is one level", filter: "a/+/c", topic: "a/b/x/c", want: false},
		{name: "too short", filter: "a/+/c", topic: "a/b", want: false},
		{name: "too long", filter: "a/+", topic: "a/b/c", want: false},
		{name: "hash", filter: "a/#", topic: "a/b/c", want: true},
		{name: "hash matches parent", filter: "a/#", topic: "a", want: true},
		{name: "dollar", filter: "+/b", topic: "$SYS/b", want: false},
		{name: "literal differs", filter: "a/b", topic: "a/c", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchFilter(tc.filter, tc.topic); got != tc.want {
				t.Errorf("matchFilter(%q, %q): got %v, want %v", tc.filter, tc.topic, got, tc.want)
			}
		})
	}
}

// checkFilters fails t unless SetFilter(prefix) matches exactly the KindSet
// topics and SetKeyFilter(prefix) exactly the KindSetKey topics, which is
// what the bridge subscribes to for commands.
func checkFilters(t *testing.T, prefix, topic string, kind topics.Kind) {
	t.Helper()
	if got, want := matchFilter(topics.SetFilter(prefix), topic), kind == topics.KindSet; got != want {
		t.Errorf("SetFilter(%q) matches %q (%v): got %v, want %v", prefix, topic, kind, got, want)
	}
	if got, want := matchFilter(topics.SetKeyFilter(prefix), topic), kind == topics.KindSetKey; got != want {
		t.Errorf("SetKeyFilter(%q) matches %q (%v): got %v, want %v", prefix, topic, kind, got, want)
	}
	// A bridge holding some lamps subscribes each one's own command
	// topics (package cluster): they must match its commands only.
	if p, err := topics.Parse(prefix, topic); err == nil {
		if got, want := matchFilter(topics.LampSetKeyFilter(prefix, p.Device), topic), kind == topics.KindSetKey; got != want {
			t.Errorf("LampSetKeyFilter(%q, %q) matches %q (%v): got %v, want %v", prefix, p.Device, topic, kind, got, want)
		}
		if matchFilter(topics.LampSetKeyFilter(prefix, p.Device+"x"), topic) {
			t.Errorf("LampSetKeyFilter(%q, %q) matches %q of lamp %q", prefix, p.Device+"x", topic, p.Device)
		}
	}
}

func TestFilters(t *testing.T) {
	for _, prefix := range roundTripPrefixes {
		for _, tp := range roundTripTopics {
			topic := topics.Build(prefix, tp)
			t.Run(topic, func(t *testing.T) {
				checkFilters(t, prefix, topic, tp.Kind)
			})
		}
	}
	// Every valid topic in the parse table, too.
	for _, tc := range parseTests {
		if tc.wantErr != nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			checkFilters(t, tc.prefix, tc.topic, tc.want.Kind)
		})
	}
}

// refParse is a second, deliberately naive reading of the scheme in
// doc.go: split into levels, decide the shape (ErrNotLamp), then validate
// the id and key. FuzzParse checks Parse against it.
func refParse(prefix, topic string) (topics.Topic, error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return topics.Topic{}, topics.ErrNotLamp
	}
	var t topics.Topic
	switch levels := strings.Split(rest, "/"); {
	case len(levels) == 2:
		t.Device = levels[0]
		switch levels[1] {
		case "state":
			t.Kind = topics.KindState
		case "availability":
			t.Kind = topics.KindAvailability
		case "error":
			t.Kind = topics.KindError
		case "ack":
			t.Kind = topics.KindAck
		case "set":
			t.Kind = topics.KindSet
		default:
			t.Kind, t.Key = topics.KindValue, levels[1]
		}
	case len(levels) == 3 && levels[2] == "set":
		t = topics.Topic{Kind: topics.KindSetKey, Device: levels[0], Key: levels[1]}
	default:
		return topics.Topic{}, topics.ErrNotLamp
	}
	if !topics.ValidID(t.Device) {
		return topics.Topic{}, topics.ErrBadID
	}
	if t.Kind == topics.KindValue || t.Kind == topics.KindSetKey {
		if err := topics.CheckKey(t.Key); err != nil {
			return topics.Topic{}, err
		}
	}
	return t, nil
}

func FuzzParse(f *testing.F) {
	// Seeds: (prefix, topic) to parse, and a Topic (kind, device, key) to
	// build and parse back. All come from the tables above.
	for _, tc := range parseTests {
		f.Add(tc.prefix, tc.topic, uint8(tc.want.Kind), tc.want.Device, tc.want.Key)
	}
	for _, prefix := range roundTripPrefixes {
		for _, tp := range roundTripTopics {
			f.Add(prefix, topics.Build(prefix, tp), uint8(tp.Kind), tp.Device, tp.Key)
		}
	}
	for _, tc := range prefixTests {
		f.Add(tc.prefix, tc.prefix+"/kitchen/brightness", uint8(topics.KindValue), "kitchen", "brightness")
	}
	for _, tc := range idTests {
		f.Add(topics.DefaultPrefix, topics.State(topics.DefaultPrefix, tc.id), uint8(topics.KindState), tc.id, "")
	}
	for _, tc := range keyTests {
		f.Add(topics.DefaultPrefix, topics.SetKey(topics.DefaultPrefix, "a", tc.key), uint8(topics.KindSetKey), "a", tc.key)
	}

	f.Fuzz(func(t *testing.T, prefix, topic string, kind uint8, device, key string) {
		if topics.CheckPrefix(prefix) != nil {
			t.Skip()
		}

		got, err := topics.Parse(prefix, topic)
		want, wantErr := refParse(prefix, topic)
		if got != want || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("Parse(%q, %q): got %+v, %v, want %+v, %v", prefix, topic, got, err, want, wantErr)
		}
		if err == nil {
			if err := got.Check(); err != nil {
				t.Errorf("Parse(%q, %q) = %+v; Check(): got %v, want nil", prefix, topic, got, err)
			}
			if b := topics.Build(prefix, got); b != topic {
				t.Errorf("Build(%q, Parse(%q)): got %q, want %q", prefix, topic, b, topic)
			}
			checkFilters(t, prefix, topic, got.Kind)
		} else {
			n := 0
			for _, sentinel := range parseErrors {
				if errors.Is(err, sentinel) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("Parse(%q, %q): got error %v matching %d sentinels, want 1", prefix, topic, err, n)
			}
		}

		in := topics.Topic{Kind: topics.Kind(kind), Device: device, Key: key}
		if in.Check() != nil {
			return
		}
		built := topics.Build(prefix, in)
		back, err := topics.Parse(prefix, built)
		if err != nil || back != in {
			t.Errorf("Parse(%q, Build(%+v) = %q): got %+v, %v, want %+v, nil", prefix, in, built, back, err, in)
		}
		checkFilters(t, prefix, built, in.Kind)
	})
}
