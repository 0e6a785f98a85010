package dispatch

import (
	"strings"
	"testing"
)

// matchCases is the spec's own examples ([MQTT-4.7]) plus the edge cases
// where mochi's index and the spec disagree; it also seeds FuzzMatch.
var matchCases = []struct {
	filter, topic string
	want          bool
}{
	{"sport/tennis/player1/#", "sport/tennis/player1", true}, // 4.7.1.2: "#" includes the parent
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/#", "sport", true},
	{"sport/tennis/#", "sport/tennis", true},
	{"sport/tennis/#", "sport/tenniss", false},
	{"#", "sport", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/tennis/+", "sport/tennis", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true}, // 4.7.1.3: "+" matches an empty level
	{"+", "sport", true},
	{"+", "sport/", false},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/tennis", true},
	{"+/#", "sport", true},
	{"a/b", "a/b", true},
	{"a/b", "a/b/", false},
	{"a/b/", "a/b", false},
	{"a/b", "a", false},
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a/b/d", false},
	{"a/+/c", "a/c", false},
	{"a/+/+/set", "a/k/on/set", true},
	{"A/b", "a/b", false}, // topics are case-sensitive [MQTT-4.7.3-4]
	// [MQTT-4.7.2-1]: wildcard-first filters never see $-topics.
	{"#", "$SYS/broker/version", false},
	{"+/broker/version", "$SYS/broker/version", false},
	{"+/#", "$SYS/broker", false},
	{"$SYS/#", "$SYS/broker/version", true},
	{"$SYS/+/version", "$SYS/broker/version", true},
	{"$SYS", "$SYS", true},
}

func TestMatch(t *testing.T) {
	for _, tc := range matchCases {
		t.Run(tc.filter+" "+tc.topic, func(t *testing.T) {
			if got := Match(tc.filter, tc.topic); got != tc.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
			}
		})
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		name, filter string
		want         bool
	}{
		{"plain", "a/b", true},
		{"hash alone", "#", true},
		{"plus alone", "+", true},
		{"hash last", "a/#", true},
		{"plus middle", "a/+/c", true},
		{"empty levels", "/a//b/", true},
		{"sys", "$SYS/#", true},
		{"empty", "", false},
		{"hash not last", "a/#/b", false},
		{"hash in level", "a/b#", false},
		{"plus in level", "a/b+/c", false},
		{"plus suffix", "a+", false},
		{"nul", "a/\x00", false},
		{"bad utf8", "a/\xff", false},
		{"too long", strings.Repeat("a", maxTopicLen+1), false},
		{"longest", strings.Repeat("a", maxTopicLen), true},
		{"shared", "$share/g/a/b", false},
		{"shared upper", "$SHARE/g/a/b", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidFilter(tc.filter); got != tc.want {
				t.Errorf("ValidFilter(%.40q) = %v, want %v", tc.filter, got, tc.want)
			}
		})
	}
}

func TestValidTopic(t *testing.T) {
	tests := []struct {
		name, topic string
		want        bool
	}{
		{"plain", "lamp/kitchen/state", true},
		{"empty levels", "/a//", true},
		{"empty", "", false},
		{"plus", "a/+", false},
		{"hash", "a/#", false},
		{"dollar", "$SYS/x", false},
		{"nul", "a\x00b", false},
		{"bad utf8", "\xc3\x28", false},
		{"too long", strings.Repeat("a", maxTopicLen+1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidTopic(tc.topic); got != tc.want {
				t.Errorf("ValidTopic(%.40q) = %v, want %v", tc.topic, got, tc.want)
			}
		})
	}
}

func TestHashParent(t *testing.T) {
	tests := []struct {
		filter, parent string
		ok             bool
	}{
		{"x/#", "x", true},
		{"a/+/#", "a/+", true},
		{"+/#", "+", true},
		{"/#", "", true},
		{"#", "", false},
		{"x/+", "", false},
	}
	for _, tc := range tests {
		parent, ok := HashParent(tc.filter)
		if parent != tc.parent || ok != tc.ok {
			t.Errorf("HashParent(%q) = %q, %v, want %q, %v", tc.filter, parent, ok, tc.parent, tc.ok)
		}
	}
}

// FuzzMatch checks Match against a slow, obviously-correct reference built
// on strings.Split, seeded with the table above.
func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.filter, tc.topic)
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		if !ValidFilter(filter) || !validString(topic) || strings.ContainsAny(topic, "+#") {
			return
		}
		if got, want := Match(filter, topic), refMatch(filter, topic); got != want {
			t.Errorf("Match(%q, %q) = %v, want %v", filter, topic, got, want)
		}
		if ValidTopic(topic) && !Match(topic, topic) {
			t.Errorf("Match(%q, itself) = false, want true", topic)
		}
	})
}

func refMatch(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return len(ts) >= i // "#" also matches the parent: len(ts) == i
		}
		if i >= len(ts) || (f != "+" && f != ts[i]) {
			return false
		}
	}
	return len(fs) == len(ts)
}

func BenchmarkMatch(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		Match("lamp/+/+/set", "lamp/kitchen/brightness/set")
	}
}
