package auth

import (
	"slices"
	"strings"
	"testing"

	"github.com/lampgw/lampgw/internal/dispatch"
)

// FuzzParseUsers feeds the users loader the unit tests' files. Whatever it
// accepts must be valid users that FormatUser writes back losslessly, and
// whatever it refuses must be a FileError.
func FuzzParseUsers(f *testing.F) {
	for _, tc := range goodFiles {
		f.Add(tc.yaml)
	}
	for _, tc := range badFiles {
		f.Add(tc.yaml)
	}
	f.Fuzz(func(t *testing.T, data string) {
		us, err := ParseUsers("users.yaml", []byte(data))
		if err != nil {
			if _, ok := err.(*FileError); !ok {
				t.Fatalf("error type: got %T, want *FileError", err)
			}
			if us != nil {
				t.Fatalf("got users and an error")
			}
			return
		}
		seen := map[string]bool{}
		for _, u := range us.List {
			if CheckName(u.Name) != nil || u.Role < RoleViewer || u.Role > RoleAdmin || checkHash(u.Hash) != nil || seen[u.Name] {
				t.Fatalf("accepted an invalid user %+v", u)
			}
			seen[u.Name] = true
			if u.Lamps != nil && len(u.Lamps) == 0 {
				t.Fatalf("accepted an empty lamps list")
			}
			for _, p := range u.Lamps {
				if checkPattern(p) != nil {
					t.Fatalf("accepted lamp pattern %q", p)
				}
			}
			back, err := ParseUsers("users.yaml", []byte("users:\n"+FormatUser(u)+"\n"))
			if err != nil {
				t.Fatalf("FormatUser(%+v) = %s: %v", u, FormatUser(u), err)
			}
			got := back.List[0]
			if got.Name != u.Name || got.Role != u.Role || got.Hash != u.Hash || !slices.Equal(got.Lamps, u.Lamps) {
				t.Fatalf("round trip: got %+v, want %+v", got, u)
			}
		}
	})
}

// FuzzACL checks the subscription rules against the delivery rules, for
// a topic and a filter taken from the ACL table:
//
//   - a filter without wildcards is judged as the topic it is (S2);
//   - a filter that matches a topic a user may read is granted (S3 never
//     refuses a useful subscription);
//   - a shared filter is granted only if every topic it matches may be
//     read (S1 never lets a group member swallow a message).
func FuzzACL(f *testing.F) {
	for _, tc := range aclCases {
		f.Add(tc.prefix, tc.topic, tc.topic)
		for _, other := range aclCases {
			if other.op == opSub && tc.op != opSub {
				f.Add(tc.prefix, other.topic, tc.topic)
			}
		}
	}
	f.Fuzz(func(t *testing.T, prefix, filter, topic string) {
		a, err := NewACL(prefix)
		if err != nil {
			return
		}
		filter = strings.TrimPrefix(filter, "$share/g/")
		// A topic never starts with $share/: nobody may publish there (W1).
		validTopic := topic != "" && !strings.ContainsAny(topic, "+#\x00") && !strings.HasPrefix(strings.ToLower(topic), sharePrefix)
		for _, name := range principalNames {
			u := principals[name]
			if validTopic && a.CanSubscribe(u, topic) != a.CanRead(u, topic) {
				t.Fatalf("%s: CanSubscribe(%q) != CanRead", name, topic)
			}
			if !validTopic || !dispatch.ValidFilter(filter) || !dispatch.Match(filter, topic) {
				continue
			}
			readable := a.CanRead(u, topic)
			if readable && !a.CanSubscribe(u, filter) {
				t.Fatalf("%s may read %q but not subscribe to %q, which matches it", name, topic, filter)
			}
			if !readable && a.CanSubscribe(u, "$share/g/"+filter) {
				t.Fatalf("%s may not read %q but may share %q, which matches it", name, topic, filter)
			}
		}
	})
}
