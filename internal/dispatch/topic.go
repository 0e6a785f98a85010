package dispatch

import (
	"strings"
	"unicode/utf8"
)

// maxTopicLen is the longest topic name or filter an MQTT packet can carry
// in its two-byte length prefix [MQTT-1.5.3].
const maxTopicLen = 65535

// Match reports whether topic matches filter under MQTT 3.1.1 rules. Both
// must be valid (see ValidFilter and ValidTopic; Match also accepts
// $-topics, which only the server publishes). It differs from mochi's own
// index in two places, both following the spec: "x/#" matches "x"
// [MQTT-4.7.1-2], and a filter starting with a wildcard never matches a
// topic starting with '$' [MQTT-4.7.2-1].
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && WildcardFirst(filter) {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			// The topic ended but the filter goes on: only "/#" may
			// follow, since "#" includes the parent level.
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// ValidFilter reports whether filter is a topic filter both bus adapters
// accept: 1 to 65535 bytes of UTF-8 without NUL [MQTT-4.7.3-1]
// [MQTT-4.7.3-2], '+' only as a whole level [MQTT-4.7.1-3], '#' only as
// the whole last level [MQTT-4.7.1-2]. Shared subscriptions ($share/...)
// are refused: neither adapter can route them yet.
func ValidFilter(filter string) bool {
	if !validString(filter) || strings.HasPrefix(strings.ToLower(filter), "$share/") {
		return false
	}
	rest := filter
	for {
		level, r, more := strings.Cut(rest, "/")
		if strings.ContainsAny(level, "+#") && level != "+" && level != "#" {
			return false
		}
		if level == "#" && more {
			return false
		}
		if !more {
			return true
		}
		rest = r
	}
}

// ValidTopic reports whether an application may publish to topic: 1 to
// 65535 bytes of UTF-8 without NUL or wildcards [MQTT-3.3.2-2], and not
// starting with '$', which is reserved for the server's own topics
// ([MQTT-4.7.2], non-normative: clients should not publish there).
func ValidTopic(topic string) bool {
	return validString(topic) && !strings.ContainsAny(topic, "+#") && !strings.HasPrefix(topic, "$")
}

func validString(s string) bool {
	return s != "" && len(s) <= maxTopicLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// HashParent returns the parent a multi-level filter also matches: "x" for
// "x/#" [MQTT-4.7.1-2]. ok is false for filters not ending in "/#".
// Adapters subscribe the parent as well where the broker's own matching
// or retained replay misses it.
func HashParent(filter string) (parent string, ok bool) {
	parent, ok = strings.CutSuffix(filter, "/#")
	if !ok {
		return "", false
	}
	return parent, true
}

// WildcardFirst reports whether filter starts with a wildcard, the filters
// that must not see $-topics [MQTT-4.7.2-1].
func WildcardFirst(filter string) bool {
	return strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")
}
