package auth

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// principals are the users the ACL table is about, by name.
var principals = map[string]*User{
	"admin":   {Name: "admin", Role: RoleAdmin},
	"adminK":  {Name: "adminK", Role: RoleAdmin, Lamps: []string{"kitchen-*"}},
	"app":     {Name: "app", Role: RoleApp},
	"appK":    {Name: "appK", Role: RoleApp, Lamps: []string{"kitchen-*"}},
	"viewer":  {Name: "viewer", Role: RoleViewer},
	"viewerK": {Name: "viewerK", Role: RoleViewer, Lamps: []string{"kitchen-*"}},
}

var principalNames = []string{"admin", "adminK", "app", "appK", "viewer", "viewerK"}

// Operations of the ACL table.
const (
	opWrite = "write"
	opRead  = "read"
	opSub   = "subscribe"
)

// aclCases: for each operation on a topic or filter, the principals
// allowed ("" for none, "all" for all six).
var aclCases = []struct {
	prefix, op, topic, allowed string
}{
	// W2: commands, for apps and admins whose lamps allow the id.
	{"lamp", opWrite, "lamp/kitchen-1/brightness/set", "admin adminK app appK"},
	{"lamp", opWrite, "lamp/kitchen-1/set", "admin adminK app appK"},
	{"lamp", opWrite, "lamp/hall/set", "admin app"},
	{"lamp", opWrite, "lamp/hall/brightness/set", "admin app"},
	{"lamp", opWrite, "lamp/hall/state/set", "admin app"}, // the gateway refuses the key, on lamp/hall/error
	{"lamp", opWrite, "lamp//set", "admin app"},
	// W3: nobody fakes a lamp.
	{"lamp", opWrite, "lamp/kitchen-1/brightness", ""},
	{"lamp", opWrite, "lamp/kitchen-1/state", ""},
	{"lamp", opWrite, "lamp/kitchen-1/availability", ""},
	{"lamp", opWrite, "lamp/kitchen-1/error", ""},
	{"lamp", opWrite, "lamp/kitchen-1/ack", ""},
	{"lamp", opWrite, "lamp/kitchen-1/a/b/set", ""},
	{"lamp", opWrite, "lamp/kitchen-1", ""},
	{"lamp", opWrite, "lamp", ""},
	{"lamp", opWrite, "lamp/", ""},
	// W4: nor the gateway.
	{"lamp", opWrite, "lampgw/status", ""},
	{"lamp", opWrite, "lampgw", ""},
	{"lamp", opWrite, "lampgw/bus/x/fence", ""},
	{"lamp", opWrite, "lampgw/replies/app/1", ""},
	// W1 and W5.
	{"lamp", opWrite, "$SYS/broker/uptime", ""},
	{"lamp", opWrite, "$share/g/x", ""},
	{"lamp", opWrite, "lampgwx/y", "admin adminK"},
	{"lamp", opWrite, "lamps/x/set", "admin adminK"},
	{"lamp", opWrite, "zigbee2mqtt/bridge/request", "admin adminK"},
	{"lamp", opWrite, "", "admin adminK"},

	{"lamp", opRead, "lamp/kitchen-1/state", "all"},
	{"lamp", opRead, "lamp/kitchen-1/brightness/set", "all"},
	{"lamp", opRead, "lamp/hall/state", "admin app viewer"},
	{"lamp", opRead, "lamp", "admin app viewer"},
	{"lamp", opRead, "lampgw/status", "all"},
	{"lamp", opRead, "lampgw", "all"},
	// R3's reply topics: their user's, and unrestricted admins'.
	{"lamp", opRead, "lampgw/replies/app", "admin app"},
	{"lamp", opRead, "lampgw/replies/app/x/y", "admin app"},
	{"lamp", opRead, "lampgw/replies/appK/1", "admin appK"},
	{"lamp", opRead, "lampgw/replies/adminK/1", "admin adminK"},
	{"lamp", opRead, "lampgw/replies/nobody/1", "admin"},
	{"lamp", opRead, "lampgw/replies", "all"},
	{"lamp", opRead, "lampgw/replies/", "all"},
	{"lamp", opRead, "lampgw/repliesx/app", "all"},
	{"lamp", opRead, "zigbee/x", "admin adminK"},
	{"lamp", opRead, "lampgwx", "admin adminK"},
	{"lamp", opRead, "$SYS/broker/uptime", "admin adminK"},

	{"lamp", opSub, "#", "all"},
	{"lamp", opSub, "lamp/#", "all"},
	{"lamp", opSub, "lamp/+", "all"},
	{"lamp", opSub, "lamp/+/state", "all"},
	{"lamp", opSub, "lamp/kitchen-1/#", "all"},
	{"lamp", opSub, "lamp/hall/#", "admin app viewer"},
	{"lamp", opSub, "lamp/hall/state", "admin app viewer"},
	{"lamp", opSub, "+/status", "all"},
	{"lamp", opSub, "+/hall/state", "all"}, // lampgw/hall/state is R3's
	{"lamp", opSub, "+", "all"},
	{"lamp", opSub, "lampgw/#", "all"},
	{"lamp", opSub, "lampgw/replies/#", "all"},
	{"lamp", opSub, "lampgw/replies/+", "all"},
	{"lamp", opSub, "lampgw/replies/app/#", "admin app"},
	{"lamp", opSub, "lampgw/replies/app", "admin app"},
	{"lamp", opSub, "lampgw/+/app/#", "all"}, // lampgw/status/app is R3's
	{"lamp", opSub, "zigbee/#", "admin adminK"},
	{"lamp", opSub, "$SYS/#", "admin adminK"},
	{"lamp", opSub, "$share/g/lamp/#", "admin app viewer"},
	{"lamp", opSub, "$share/g/lamp/kitchen-1/#", "all"},
	{"lamp", opSub, "$share/g/lamp/hall/state", "admin app viewer"},
	{"lamp", opSub, "$share/g/lamp/+/state", "admin app viewer"},
	{"lamp", opSub, "$share/g/#", "admin"},
	{"lamp", opSub, "$share/g/+/status", "admin"},
	{"lamp", opSub, "$share/g/lampgw/#", "admin"}, // others' replies
	{"lamp", opSub, "$share/g/lampgw/status", "all"},
	{"lamp", opSub, "$share/g/lampgw/+", "all"},
	{"lamp", opSub, "$share/g/lampgw/replies/app/#", "admin app"},
	{"lamp", opSub, "$share/g/lampgw/replies/+/x", "admin"},
	{"lamp", opSub, "$share/g/lampgw/+/app/#", "admin app"},
	{"lamp", opSub, "$SHARE/g/zigbee/#", "admin adminK"},
	{"lamp", opSub, "$share/g/$SYS/#", "admin adminK"},

	{"home/lamp", opWrite, "home/lamp/k/set", "admin app"},
	{"home/lamp", opWrite, "home/lamp/kitchen-1/set", "admin adminK app appK"},
	{"home/lamp", opWrite, "home/lamp/kitchen-1/mode", ""},
	{"home/lamp", opWrite, "home/other", "admin adminK"},
	{"home/lamp", opWrite, "lamp/x/set", "admin adminK"},
	{"home/lamp", opRead, "home/lamp/kitchen-2/state", "all"},
	{"home/lamp", opRead, "home/lamp", "admin app viewer"},
	{"home/lamp", opRead, "home", "admin adminK"},
	{"home/lamp", opSub, "home/+/kitchen-2/state", "all"},
	{"home/lamp", opSub, "home/+/hall/state", "admin adminK app viewer"},
	{"home/lamp", opSub, "home/lamp/hall/#", "admin app viewer"},
	{"home/lamp", opSub, "home/#", "all"},
	{"home/lamp", opSub, "+/#", "all"},
	{"home/lamp", opSub, "home", "admin adminK"},
	{"home/lamp", opSub, "home/+", "admin adminK app viewer"}, // home/lamp itself
	{"home/lamp", opSub, "$share/g/home/lamp/kitchen-9/state", "all"},
	{"home/lamp", opSub, "$share/g/home/+/x", "admin"},
	{"home/lamp", opSub, "$share/g/home/other/#", "admin adminK"},
	{"home/lamp", opSub, "$share/g/+/replies/x", "admin"},
	{"home/lamp", opSub, "$share/g/+/replies/adminK", "admin adminK"},
}

func check(a *ACL, op string, u *User, topic string) bool {
	switch op {
	case opWrite:
		return a.CanWrite(u, topic)
	case opRead:
		return a.CanRead(u, topic)
	}
	return a.CanSubscribe(u, topic)
}

func mustACL(t testing.TB, prefix string) *ACL {
	t.Helper()
	a, err := NewACL(prefix)
	if err != nil {
		t.Fatalf("NewACL(%q): %v", prefix, err)
	}
	return a
}

func TestACL(t *testing.T) {
	for _, tc := range aclCases {
		t.Run(fmt.Sprintf("%s %s %s", tc.prefix, tc.op, tc.topic), func(t *testing.T) {
			a := mustACL(t, tc.prefix)
			want := strings.Fields(tc.allowed)
			if tc.allowed == "all" {
				want = principalNames
			}
			var got []string
			for _, name := range principalNames {
				if check(a, tc.op, principals[name], tc.topic) {
					got = append(got, name)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("allowed: got %q, want %q", got, want)
			}
			// Anonymous clients are admins without users, viewers with;
			// nobody else may do anything.
			for _, eq := range []struct {
				anon *User
				as   string
			}{{Anonymous(nil), "admin"}, {Anonymous(&Users{}), "viewer"}} {
				if g, w := check(a, tc.op, eq.anon, tc.topic), check(a, tc.op, principals[eq.as], tc.topic); g != w {
					t.Errorf("anonymous as %s: got %v, want %v", eq.as, g, w)
				}
			}
			for _, u := range []*User{nil, {Name: "x", Role: RoleNone}} {
				if check(a, tc.op, u, tc.topic) {
					t.Errorf("%v: allowed, want refused", u)
				}
			}
		})
	}
}

func TestNewACLRefusesBadPrefix(t *testing.T) {
	for _, p := range []string{"", "a/+", "$SYS", "a//b", "#"} {
		if _, err := NewACL(p); err != ErrBadPrefix {
			t.Errorf("NewACL(%q): got %v, want ErrBadPrefix", p, err)
		}
	}
	if got := mustACL(t, "home/lamp").Prefix(); got != "home/lamp" {
		t.Errorf("Prefix: got %q", got)
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, id string
		want        bool
	}{
		{"kitchen-*", "kitchen-1", true},
		{"kitchen-*", "kitchen-", true},
		{"kitchen-*", "kitchen", false},
		{"kitchen-*", "my-kitchen-1", false},
		{"*-1", "kitchen-1", true},
		{"*", "x", true},
		{"*", "", true},
		{"?", "x", true},
		{"?", "", false},
		{"?", "xy", false},
		{"k?t*n-*", "kitchen-2", true},
		{"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"hall", "hall", true},
		{"hall", "Hall", false},
		{"**", "anything", true},
	} {
		if got := matchGlob(tc.pattern, tc.id); got != tc.want {
			t.Errorf("matchGlob(%q, %q): got %v, want %v", tc.pattern, tc.id, got, tc.want)
		}
	}
}

func BenchmarkCanRead(b *testing.B) {
	a := mustACL(b, "lamp")
	u := principals["appK"]
	b.ReportAllocs()
	for b.Loop() {
		if !a.CanRead(u, "lamp/kitchen-1/brightness") {
			b.Fatal("refused")
		}
	}
}
