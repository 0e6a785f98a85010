package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Limits of a users file. Anything past them is a mistake, not a site.
const (
	MaxFileSize     = 1 << 20
	MaxFileUsers    = 10000
	MaxNameLen      = 64
	MaxLampPatterns = 256
	maxPatternLen   = 64
	// bcryptHashLen is the length of every bcrypt hash: "$2a$10$", a
	// 22-character salt and a 31-character hash.
	bcryptHashLen = 60
	// MaxPasswordLen is the most bcrypt reads of a password; it ignores
	// the rest, so longer passwords are refused rather than cut.
	MaxPasswordLen = 72
)

// Role is what a user may do (see the rules in the package doc). Roles
// are ordered: each may do what the roles before it may.
type Role uint8

// The roles. RoleNone, the zero Role, may do nothing.
const (
	RoleNone Role = iota
	RoleViewer
	RoleApp
	RoleAdmin
)

var roleNames = [...]string{"none", "viewer", "app", "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// ParseRole returns the role named s: admin, app or viewer.
func ParseRole(s string) (Role, error) {
	for r := RoleViewer; int(r) < len(roleNames); r++ {
		if s == roleNames[r] {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("want admin, app or viewer, got %q", s)
}

// User is one user of a users file, or an anonymous client's rights.
type User struct {
	// Name is the MQTT user name; "" for an anonymous client.
	Name string
	Role Role
	// Hash is the bcrypt hash of the password; "" for an anonymous
	// client, whose rights no password opens.
	Hash string
	// Lamps are glob patterns on lamp ids; the user may read and write
	// only the topics of lamps one of them matches. nil means every lamp.
	Lamps []string
	// Line is where the user starts in its file, for messages.
	Line int
}

// Anonymous returns the rights of a client without a user name, given
// the users file in force: an unrestricted admin's with none (users is
// nil), a viewer's with one. Whether such a client may connect at all is
// the broker's decision.
func Anonymous(users *Users) *User {
	if users == nil {
		return &User{Role: RoleAdmin}
	}
	return &User{Role: RoleViewer}
}

// allowsLamp reports whether u's lamp patterns let it at lamp id.
func (u *User) allowsLamp(id string) bool {
	if u.Lamps == nil {
		return true
	}
	for _, p := range u.Lamps {
		if matchGlob(p, id) {
			return true
		}
	}
	return false
}

// Narrowed reports whether a client that logged in as old must be
// disconnected now that the users file says new (nil: the user is
// gone): its password hash changed, its role is lower, or its lamp
// patterns may no longer allow every lamp the old ones did. A change that
// keeps or widens the rights is not narrowing. Lamp patterns are compared
// by what can be proved cheaply: an old pattern is kept if new has the
// same pattern, "*", or (for a pattern without wildcards) one that
// matches it.
func Narrowed(old, new *User) bool {
	if new == nil || new.Hash != old.Hash || new.Role < old.Role {
		return true
	}
	if new.Lamps == nil {
		return false
	}
	if old.Lamps == nil {
		return true
	}
	for _, p := range old.Lamps {
		kept := false
		for _, q := range new.Lamps {
			if q == p || q == "*" || !strings.ContainsAny(p, "*?") && matchGlob(q, p) {
				kept = true
				break
			}
		}
		if !kept {
			return true
		}
	}
	return false
}

// Users is a parsed users file. It is never changed after ParseUsers, so
// it may be shared; a nil *Users has no users.
type Users struct {
	// Path is the file it was read from, for messages.
	Path string
	// List holds the users in file order.
	List   []User
	byName map[string]int
}

// Lookup returns the user called name.
func (us *Users) Lookup(name string) (*User, bool) {
	if us == nil {
		return nil, false
	}
	i, ok := us.byName[name]
	if !ok {
		return nil, false
	}
	return &us.List[i], true
}

// Len returns the number of users.
func (us *Users) Len() int {
	if us == nil {
		return 0
	}
	return len(us.List)
}

// CheckName returns nil if name can be a user name: 1 to MaxNameLen
// bytes of UTF-8 without spaces or control characters, so that it reads
// the same in the file, in logs and on a command line.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) }) {
		return fmt.Errorf("want 1 to %d bytes without spaces or control characters, got %q", MaxNameLen, name)
	}
	return nil
}

// checkHash returns nil if hash is a bcrypt hash.
func checkHash(hash string) error {
	if len(hash) == bcryptHashLen {
		if _, err := bcrypt.Cost([]byte(hash)); err == nil {
			return nil
		}
	}
	return errors.New(`want a bcrypt hash like "$2a$10$" and 53 more characters (make one with: lampgw passwd <name>)`)
}

// checkPattern returns nil if p can be a lamp pattern: 1 to 64 of the id
// characters A-Z a-z 0-9 _ - and the wildcards * and ?.
func checkPattern(p string) error {
	if p == "" || len(p) > maxPatternLen {
		return fmt.Errorf("want 1 to %d characters, got %q", maxPatternLen, p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(isIDChar(c) || c == '*' || c == '?') {
			return fmt.Errorf("want lamp id characters (A-Z a-z 0-9 _ -) and the wildcards * and ?, got %q", p)
		}
	}
	return nil
}

// userKeys lists the keys of a user, for the unknown-key message.
const userKeys = "name, role, hash, lamps"

// ParseUsers parses the YAML of a users file; name is used in messages.
// Every error is a *FileError. An empty file, or one without users, has
// no users (and still refuses every anonymous client it would have
// refused with users).
func ParseUsers(name string, data []byte) (*Users, error) {
	p := usersParser{file: name}
	if len(data) > MaxFileSize {
		return nil, p.fail(nil, "", "larger than %d bytes", MaxFileSize)
	}
	us := &Users{Path: name, byName: map[string]int{}}
	list, err := p.usersList(data)
	if err != nil {
		return nil, err
	}
	if list == nil {
		return us, nil
	}
	if len(list.Content) > MaxFileUsers {
		return nil, p.fail(list, "users", "more than %d users", MaxFileUsers)
	}
	for _, n := range list.Content {
		u, err := p.user(deref(n))
		if err != nil {
			return nil, err
		}
		if prev, dup := us.byName[u.Name]; dup {
			return nil, p.fail(n, "name", "%q is already the user at line %d", u.Name, us.List[prev].Line)
		}
		us.byName[u.Name] = len(us.List)
		us.List = append(us.List, u)
	}
	return us, nil
}

// usersParser walks the yaml.v3 node tree of one users file, so that
// every error names the line it is about and unknown keys are refused.
type usersParser struct{ file string }

// fail returns a FileError at n's line (none for a nil n).
func (p usersParser) fail(n *yaml.Node, key, format string, args ...any) error {
	e := &FileError{File: p.file, Key: key, Err: fmt.Errorf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	return e
}

// usersList decodes data and returns the users sequence, or nil when the
// file has none.
func (p usersParser) usersList(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, p.syntax(err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, p.fail(nil, "", "want one YAML document, found more")
	}
	root := deref(doc.Content[0])
	if null(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.fail(root, "", `want a mapping with the key "users"`)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		switch {
		case k.Value != "users":
			return nil, p.fail(k, k.Value, `unknown key (the file has one key, "users")`)
		case list != nil:
			return nil, p.fail(k, k.Value, "set twice")
		}
		list = deref(root.Content[i+1])
	}
	if list == nil || null(list) {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, p.fail(list, "users", "want a list of users")
	}
	return list, nil
}

// user parses one entry of the users list.
func (p usersParser) user(n *yaml.Node) (User, error) {
	u := User{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		return u, p.fail(n, "", "want a user: a mapping with name, role and hash")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		key := k.Value
		if seen[key] {
			return u, p.fail(k, key, "set twice")
		}
		seen[key] = true
		if key == "lamps" {
			lamps, err := p.lamps(v)
			if err != nil {
				return u, err
			}
			u.Lamps = lamps
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return u, p.fail(v, key, "want a single value, not a list or mapping")
		}
		val := v.Value
		if null(v) {
			val = ""
		}
		var err error
		switch key {
		case "name":
			err = CheckName(val)
			u.Name = val
		case "role":
			u.Role, err = ParseRole(val)
		case "hash":
			err = checkHash(val)
			u.Hash = val
		default:
			return u, p.fail(k, key, "unknown key (known: %s)", userKeys)
		}
		if err != nil {
			return u, p.fail(v, key, "%v", err)
		}
	}
	for _, req := range []struct {
		key     string
		missing bool
	}{{"name", u.Name == ""}, {"role", u.Role == RoleNone}, {"hash", u.Hash == ""}} {
		if req.missing {
			return u, p.fail(n, req.key, "missing: every user needs name, role and hash")
		}
	}
	return u, nil
}

// lamps parses a user's lamp patterns: a non-empty list of scalars.
func (p usersParser) lamps(v *yaml.Node) ([]string, error) {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		return nil, p.fail(v, "lamps", "want a non-empty list of lamp id patterns, like [\"kitchen-*\"]; leave lamps out for every lamp")
	}
	if len(v.Content) > MaxLampPatterns {
		return nil, p.fail(v, "lamps", "more than %d patterns", MaxLampPatterns)
	}
	lamps := make([]string, 0, len(v.Content))
	for _, e := range v.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode {
			return nil, p.fail(e, "lamps", "want a pattern, not a list or mapping")
		}
		if err := checkPattern(e.Value); err != nil {
			return nil, p.fail(e, "lamps", "%v", err)
		}
		lamps = append(lamps, e.Value)
	}
	return lamps, nil
}

// syntax turns yaml.v3's "yaml: line 3: did not find ..." into a
// FileError at that line.
func (p usersParser) syntax(err error) error {
	e := &FileError{File: p.file, Err: err}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if line, convErr := strconv.Atoi(num); convErr == nil {
				e.Line, e.Err = line, errors.New(after)
				return e
			}
		}
	}
	e.Err = errors.New(msg)
	return e
}

func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func null(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// FormatUser returns u as one line for a users file, a list entry in
// YAML flow style, as `lampgw passwd` prints it:
//
//	users:
//	- {name: "alice", role: app, hash: "$2a$10$..."}
//
// Name and hash are quoted as JSON strings, which YAML reads as they are.
func FormatUser(u User) string {
	var b strings.Builder
	b.WriteString(`- {name: `)
	b.WriteString(strconv.Quote(u.Name))
	b.WriteString(`, role: `)
	b.WriteString(u.Role.String())
	b.WriteString(`, hash: `)
	b.WriteString(strconv.Quote(u.Hash))
	if u.Lamps != nil {
		b.WriteString(`, lamps: [`)
		for i, p := range u.Lamps {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(p))
		}
		b.WriteString(`]`)
	}
	b.WriteString(`}`)
	return b.String()
}

// HashPassword returns the bcrypt hash of password at cost, 0 meaning
// bcrypt.DefaultCost (10: about 50-100 ms a check; each step up doubles
// it). It refuses an empty password and one longer than MaxPasswordLen
// bytes, which bcrypt would cut short.
func HashPassword(password []byte, cost int) (string, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	switch {
	case len(password) == 0:
		return "", errors.New("empty password")
	case len(password) > MaxPasswordLen:
		return "", fmt.Errorf("password longer than %d bytes, which bcrypt would cut short", MaxPasswordLen)
	case cost < bcrypt.MinCost || cost > bcrypt.MaxCost:
		return "", fmt.Errorf("bcrypt cost must be between %d and %d, got %d", bcrypt.MinCost, bcrypt.MaxCost, cost)
	}
	h, err := bcrypt.GenerateFromPassword(password, cost)
	return string(h), err
}
