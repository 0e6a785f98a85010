package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Hashes at bcrypt.MinCost, so that tests under -race stay fast.
const (
	hashAlice = "$2a$04$n2iB.BEz5NbZK4CxkyHSHO5k92UmZpKDPIWYGyMxREKw/st0nQPS." // alice-pw
	hashBob   = "$2a$04$mTWx1yTqsIGzaG6DnOggd.4E9CDz8Gb1m/ExnfLkIruA8yXeXHtgS" // bob-pw
)

// goodFiles parse; want lists each user as name/role/lamps.
var goodFiles = []struct {
	name, yaml string
	want       []string
}{
	{"empty", "", nil},
	{"comments only", "# nobody yet\n", nil},
	{"null", "~\n", nil},
	{"no users", "users:\n", nil},
	{"empty list", "users: []\n", nil},
	{"block", `
users:
  - name: alice
    role: admin
    hash: "` + hashAlice + `"
  - name: kitchen-tablet
    role: app
    hash: ` + hashBob + `
    lamps: ["kitchen-*", hall]
`, []string{"alice/admin/*", "kitchen-tablet/app/kitchen-*,hall"}},
	{"flow at column 0, as lampgw passwd prints", `users:
- {name: "wall", role: viewer, hash: "` + hashBob + `"}
- {name: "ünïcode@example.com", role: app, hash: "` + hashAlice + `", lamps: ["?"]}
`, []string{"wall/viewer/*", "ünïcode@example.com/app/?"}},
	{"aliases", `
users:
  - {name: a, role: app, hash: "` + hashAlice + `", lamps: &l [x]}
  - {name: b, role: viewer, hash: "` + hashAlice + `", lamps: *l}
`, []string{"a/app/x", "b/viewer/x"}},
}

func describe(u User) string {
	lamps := "*"
	if u.Lamps != nil {
		lamps = strings.Join(u.Lamps, ",")
	}
	return u.Name + "/" + u.Role.String() + "/" + lamps
}

func TestParseUsers(t *testing.T) {
	for _, tc := range goodFiles {
		t.Run(tc.name, func(t *testing.T) {
			us, err := ParseUsers("users.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatalf("ParseUsers: %v", err)
			}
			var got []string
			for _, u := range us.List {
				got = append(got, describe(u))
				if found, ok := us.Lookup(u.Name); !ok || found.Name != u.Name {
					t.Errorf("Lookup(%q): got %v %v, want the user", u.Name, found, ok)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("users: got %q, want %q", got, tc.want)
			}
			if us.Len() != len(tc.want) {
				t.Errorf("Len: got %d, want %d", us.Len(), len(tc.want))
			}
		})
	}
}

func TestParseUsersLines(t *testing.T) {
	i := slices.IndexFunc(goodFiles, func(f struct {
		name, yaml string
		want       []string
	}) bool {
		return f.name == "block"
	})
	us, err := ParseUsers("users.yaml", []byte(goodFiles[i].yaml))
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{us.List[0].Line, us.List[1].Line}; !slices.Equal(got, []int{3, 6}) {
		t.Errorf("lines: got %v, want [3 6]", got)
	}
	if us.List[0].Hash != hashAlice {
		t.Errorf("hash: got %q, want %q", us.List[0].Hash, hashAlice)
	}
	if _, ok := us.Lookup("nobody"); ok {
		t.Errorf("Lookup(nobody): got a user, want none")
	}
	var none *Users
	if _, ok := none.Lookup("alice"); ok || none.Len() != 0 {
		t.Errorf("nil Users: got a user, want none")
	}
}

// badFiles are refused with exactly want.
var badFiles = []struct {
	name, yaml, want string
}{
	{"unknown top key", "user:\n  - {name: a}\n", `users.yaml:1: user: unknown key (the file has one key, "users")`},
	{"empty unknown top key", "hashes:\nusers:\n", `users.yaml:1: hashes: unknown key (the file has one key, "users")`},
	{"users twice", "users: []\nusers: []\n", "users.yaml:2: users: set twice"},
	{"not a mapping", "- alice\n", `users.yaml:1: want a mapping with the key "users"`},
	{"users not a list", "users: alice\n", "users.yaml:1: users: want a list of users"},
	{"user not a mapping", "users:\n  - alice\n", "users.yaml:2: want a user: a mapping with name, role and hash"},
	{"unknown user key", "users:\n  - name: a\n    password: hunter2\n", "users.yaml:3: password: unknown key (known: name, role, hash, lamps)"},
	{"key twice", "users:\n  - name: a\n    name: b\n", "users.yaml:3: name: set twice"},
	{"missing hash", "users:\n  - name: a\n    role: app\n", "users.yaml:2: hash: missing: every user needs name, role and hash"},
	{"missing role", "users:\n  - {name: a, hash: \"" + hashAlice + "\"}\n", "users.yaml:2: role: missing: every user needs name, role and hash"},
	{"missing name", "users:\n  - {role: app, hash: \"" + hashAlice + "\"}\n", "users.yaml:2: name: missing: every user needs name, role and hash"},
	{"bad role", "users:\n  - {name: a, role: root, hash: \"" + hashAlice + "\"}\n", `users.yaml:2: role: want admin, app or viewer, got "root"`},
	{"role none", "users:\n  - {name: a, role: none, hash: \"" + hashAlice + "\"}\n", `users.yaml:2: role: want admin, app or viewer, got "none"`},
	{"plain password", "users:\n  - {name: a, role: app, hash: hunter2}\n", `users.yaml:2: hash: want a bcrypt hash like "$2a$10$" and 53 more characters (make one with: lampgw passwd <name>)`},
	{"hash too long", "users:\n  - {name: a, role: app, hash: \"" + hashAlice + "x\"}\n", `users.yaml:2: hash: want a bcrypt hash like "$2a$10$" and 53 more characters (make one with: lampgw passwd <name>)`},
	{"hash list", "users:\n  - {name: a, role: app, hash: [x]}\n", "users.yaml:2: hash: want a single value, not a list or mapping"},
	{"name with space", "users:\n  - {name: a b, role: app, hash: \"" + hashAlice + "\"}\n", `users.yaml:2: name: want 1 to 64 bytes without spaces or control characters, got "a b"`},
	{"name empty", "users:\n  - {name: \"\", role: app, hash: \"" + hashAlice + "\"}\n", `users.yaml:2: name: want 1 to 64 bytes without spaces or control characters, got ""`},
	{"name too long", "users:\n  - {name: " + strings.Repeat("n", 65) + ", role: app, hash: \"" + hashAlice + "\"}\n", `users.yaml:2: name: want 1 to 64 bytes without spaces or control characters, got "` + strings.Repeat("n", 65) + `"`},
	{"name twice", "users:\n  - {name: a, role: app, hash: \"" + hashAlice + "\"}\n  - {name: a, role: viewer, hash: \"" + hashBob + "\"}\n", `users.yaml:3: name: "a" is already the user at line 2`},
	{"lamps empty", "users:\n  - {name: a, role: app, hash: \"" + hashAlice + "\", lamps: []}\n", `users.yaml:2: lamps: want a non-empty list of lamp id patterns, like ["kitchen-*"]; leave lamps out for every lamp`},
	{"lamps scalar", "users:\n  - {name: a, role: app, hash: \"" + hashAlice + "\", lamps: kitchen}\n", `users.yaml:2: lamps: want a non-empty list of lamp id patterns, like ["kitchen-*"]; leave lamps out for every lamp`},
	{"lamp with slash", "users:\n  - name: a\n    lamps:\n      - kitchen/1\n", `users.yaml:4: lamps: want lamp id characters (A-Z a-z 0-9 _ -) and the wildcards * and ?, got "kitchen/1"`},
	{"lamp with MQTT wildcard", "users:\n  - name: a\n    lamps: [\"+\"]\n", `users.yaml:3: lamps: want lamp id characters (A-Z a-z 0-9 _ -) and the wildcards * and ?, got "+"`},
	{"lamp empty", "users:\n  - name: a\n    lamps: [\"\"]\n", `users.yaml:3: lamps: want 1 to 64 characters, got ""`},
	{"lamp nested", "users:\n  - name: a\n    lamps: [[x]]\n", "users.yaml:3: lamps: want a pattern, not a list or mapping"},
	{"two documents", "users: []\n---\nusers: []\n", "users.yaml: want one YAML document, found more"},
	{"syntax", "users:\n\t- a\n", "users.yaml:2: found character that cannot start any token"},
}

func TestParseUsersErrors(t *testing.T) {
	for _, tc := range badFiles {
		t.Run(tc.name, func(t *testing.T) {
			us, err := ParseUsers("users.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("got %d users, want error %q", us.Len(), tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\ngot  %q\nwant %q", err.Error(), tc.want)
			}
			if !errors.Is(err, ErrBadFile) {
				t.Errorf("errors.Is(err, ErrBadFile): got false, want true")
			}
			if _, ok := errors.AsType[*FileError](err); !ok {
				t.Errorf("error type: got %T, want *FileError", err)
			}
		})
	}
}

func TestParseUsersTooLarge(t *testing.T) {
	_, err := ParseUsers("users.yaml", make([]byte, MaxFileSize+1))
	if want := "users.yaml: larger than 1048576 bytes"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want Role
	}{{"admin", RoleAdmin}, {"app", RoleApp}, {"viewer", RoleViewer}} {
		got, err := ParseRole(tc.s)
		if err != nil || got != tc.want || got.String() != tc.s {
			t.Errorf("ParseRole(%q): got %v %v, want %v", tc.s, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "none", "Admin", "root"} {
		if _, err := ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q): got no error, want one", bad)
		}
	}
	if !(RoleNone < RoleViewer && RoleViewer < RoleApp && RoleApp < RoleAdmin) {
		t.Errorf("roles are not ordered none < viewer < app < admin")
	}
	if got := Role(9).String(); got != "Role(9)" {
		t.Errorf("Role(9).String(): got %q", got)
	}
}

// TestFormatUserRoundTrip checks that what lampgw passwd prints is read
// back as the same user, appended under "users:" at column 0.
func TestFormatUserRoundTrip(t *testing.T) {
	for _, u := range []User{
		{Name: "alice", Role: RoleApp, Hash: hashAlice},
		{Name: `qu"o\te:#{}`, Role: RoleAdmin, Hash: hashBob},
		{Name: "ünï", Role: RoleViewer, Hash: hashBob, Lamps: []string{"kitchen-*", "h?ll"}},
	} {
		line := FormatUser(u)
		us, err := ParseUsers("users.yaml", []byte("users:\n"+line+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		got := us.List[0]
		if got.Name != u.Name || got.Role != u.Role || got.Hash != u.Hash || !slices.Equal(got.Lamps, u.Lamps) {
			t.Errorf("%s: got %+v, want %+v", line, got, u)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkHash(h); err != nil {
		t.Errorf("checkHash(%q): %v", h, err)
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost != bcrypt.MinCost {
		t.Errorf("cost: got %d, want %d", cost, bcrypt.MinCost)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
		t.Errorf("hash does not check against its password")
	}
	for _, bad := range []struct {
		password string
		cost     int
	}{{"", 0}, {strings.Repeat("x", MaxPasswordLen+1), 0}, {"s3cret", 3}, {"s3cret", 32}} {
		if _, err := HashPassword([]byte(bad.password), bad.cost); err == nil {
			t.Errorf("HashPassword(%d bytes, cost %d): got no error, want one", len(bad.password), bad.cost)
		}
	}
}

func TestNarrowed(t *testing.T) {
	alice := &User{Name: "alice", Role: RoleApp, Hash: hashAlice, Lamps: []string{"kitchen-*", "hall"}}
	with := func(f func(u *User)) *User {
		u := *alice
		u.Lamps = slices.Clone(alice.Lamps)
		f(&u)
		return &u
	}
	for _, tc := range []struct {
		name string
		new  *User
		want bool
	}{
		{"unchanged", with(func(u *User) {}), false},
		{"removed", nil, true},
		{"password changed", with(func(u *User) { u.Hash = hashBob }), true},
		{"role lower", with(func(u *User) { u.Role = RoleViewer }), true},
		{"role higher", with(func(u *User) { u.Role = RoleAdmin }), false},
		{"every lamp", with(func(u *User) { u.Lamps = nil }), false},
		{"pattern dropped", with(func(u *User) { u.Lamps = []string{"hall"} }), true},
		{"pattern added", with(func(u *User) { u.Lamps = append(u.Lamps, "porch") }), false},
		{"star", with(func(u *User) { u.Lamps = []string{"*"} }), false},
		{"literal covered by a glob", with(func(u *User) { u.Lamps = []string{"kitchen-*", "h*"} }), false},
		{"glob narrowed", with(func(u *User) { u.Lamps = []string{"kitchen-1", "hall"} }), true},
		{"line moved", with(func(u *User) { u.Line = 99 }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Narrowed(alice, tc.new); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	all := &User{Name: "bob", Role: RoleViewer, Hash: hashBob}
	if !Narrowed(all, &User{Name: "bob", Role: RoleViewer, Hash: hashBob, Lamps: []string{"*"}}) {
		t.Errorf("every lamp to [*]: got not narrowed, want narrowed (conservative: [*] leaves out the prefix itself)")
	}
}
