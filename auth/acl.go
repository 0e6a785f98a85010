package auth

import (
	"strings"

	"github.com/lampgw/lampgw/topics"
)

// gatewayRoot is the first level of the gateway's own topics
// (lampgw/status).
var gatewayRoot, _, _ = strings.Cut(topics.GatewayStatus, "/")

// repliesLevel is the second level of the reply topics (topics.Replies).
var _, repliesLevel, _ = strings.Cut(topics.Replies, "/")

// sharePrefix starts a shared subscription's filter [MQTT-4.8.2];
// mochi matches it in any case (topics.go IsSharedFilter), so do we.
const sharePrefix = "$share/"

// ACL applies the rules in the package doc for one topic prefix. Its
// methods are pure and safe for concurrent use; a nil *User may do
// nothing.
type ACL struct {
	prefix string
	// levels is prefix split on '/'.
	levels []string
}

// NewACL returns the ACL for lamp topics under prefix, which must pass
// topics.CheckPrefix.
func NewACL(prefix string) (*ACL, error) {
	if topics.CheckPrefix(prefix) != nil {
		return nil, ErrBadPrefix
	}
	return &ACL{prefix: prefix, levels: strings.Split(prefix, "/")}, nil
}

// Prefix returns the topic prefix the ACL was made for.
func (a *ACL) Prefix() string { return a.prefix }

// lamp reports whether topic is under the prefix, and if so its lamp id
// level and what follows it ("" when there is none).
func (a *ACL) lamp(topic string) (id, rest string, under bool) {
	after, ok := strings.CutPrefix(topic, a.prefix)
	if !ok {
		return "", "", false
	}
	if after == "" {
		return "", "", true
	}
	after, ok = strings.CutPrefix(after, "/")
	if !ok {
		return "", "", false // "lamps/x" is not under "lamp"
	}
	id, rest, _ = strings.Cut(after, "/")
	return id, rest, true
}

// inGateway reports whether topic is lampgw or under lampgw/.
func inGateway(topic string) bool {
	rest, ok := strings.CutPrefix(topic, gatewayRoot)
	return ok && (rest == "" || rest[0] == '/')
}

// isCommandRest reports whether rest, what follows a lamp id, makes a
// command topic: "set" (prefix/+/set) or "<key>/set" (prefix/+/+/set).
// The key is not checked: the gateway refuses a bad one on the lamp's
// error topic, which only a delivered command can cause.
func isCommandRest(rest string) bool {
	key, last, two := strings.Cut(rest, "/")
	if !two {
		return key == "set"
	}
	return last == "set"
}

// mayLamp reports whether u may reach the lamp with id under the prefix.
// A topic with no id level (the prefix itself, or an empty level) has no
// lamp, so only users without lamp patterns may reach it.
func (u *User) mayLamp(id string) bool {
	if u.Lamps == nil {
		return true
	}
	return id != "" && u.allowsLamp(id)
}

// zone is where a topic lies, in the order the rules look: $-topics,
// then the lamp topics, then the gateway's own, then the rest.
type zone uint8

const (
	zoneDollar  zone = iota // starts with '$'
	zoneLamps               // under the prefix
	zoneGateway             // lampgw or lampgw/...
	zoneOther
)

// zoneOf returns topic's zone and, in zoneLamps, its lamp id and what
// follows the id.
func (a *ACL) zoneOf(topic string) (z zone, id, rest string) {
	if strings.HasPrefix(topic, "$") {
		return zoneDollar, "", ""
	}
	if id, rest, under := a.lamp(topic); under {
		return zoneLamps, id, rest
	}
	if inGateway(topic) {
		return zoneGateway, "", ""
	}
	return zoneOther, "", ""
}

// CanWrite reports whether u may publish to topic (rules W1-W5). It is
// also what a client's will message must pass when it is sent.
func (a *ACL) CanWrite(u *User, topic string) bool {
	if u == nil || u.Role == RoleNone {
		return false
	}
	switch z, id, rest := a.zoneOf(topic); z {
	case zoneDollar, zoneGateway:
		return false // W1, W4
	case zoneLamps:
		return isCommandRest(rest) && u.Role >= RoleApp && u.mayLamp(id) // W2, W3
	}
	return u.Role == RoleAdmin // W5
}

// CanRead reports whether a message on topic may be delivered to u
// (rules R1-R4).
func (a *ACL) CanRead(u *User, topic string) bool {
	if u == nil || u.Role == RoleNone {
		return false
	}
	switch z, id, _ := a.zoneOf(topic); z {
	case zoneLamps:
		return u.mayLamp(id) // R2
	case zoneGateway:
		if owner, ok := topics.ReplyOwner(topic); ok {
			return u.Name == owner || u.unrestrictedAdmin() // R3, reply topics
		}
		return true // R3
	}
	return u.Role == RoleAdmin // R1, R4
}

// unrestrictedAdmin reports whether u is an admin without lamp patterns,
// who may read every lamp's acknowledgements on prefix/+/ack and so
// every reply topic too.
func (u *User) unrestrictedAdmin() bool { return u.Role == RoleAdmin && u.Lamps == nil }

// CanSubscribe reports whether u may subscribe to filter (rules S1-S3).
// For a filter without wildcards it is CanRead, so a broker that asks one
// question for both subscriptions and deliveries (mochi's OnACLCheck)
// gets the right answer to each.
func (a *ACL) CanSubscribe(u *User, filter string) bool {
	if u == nil || u.Role == RoleNone {
		return false
	}
	if len(filter) >= len(sharePrefix) && strings.EqualFold(filter[:len(sharePrefix)], sharePrefix) {
		_, inner, _ := strings.Cut(filter[len(sharePrefix):], "/")
		return a.covers(u, inner) // S1
	}
	if !strings.ContainsAny(filter, "+#") {
		return a.CanRead(u, filter) // S2
	}
	return a.meets(u, filter) // S3
}

// meets reports whether filter matches at least one topic u may read.
func (a *ACL) meets(u *User, filter string) bool {
	if strings.HasPrefix(filter, "$") {
		// Only R1 and R4 reach topics starting with '$'; wildcards at the
		// first level never match them [MQTT-4.7.2-1].
		return u.Role == RoleAdmin
	}
	if a.meetsLamps(u, filter) {
		return true
	}
	first, _, _ := strings.Cut(filter, "/")
	if first == gatewayRoot {
		return meetsGateway(u, filter) // R3
	}
	if u.Role == RoleAdmin {
		return !a.inside(filter) // R4: a topic outside the prefix
	}
	return first == "#" || first == "+" // R3: lampgw/status at least
}

// meetsGateway reports whether filter, whose first level is gatewayRoot,
// matches a topic of the gateway's that u may read (R3): any, unless
// filter names another user's reply topics.
func meetsGateway(u *User, filter string) bool {
	f := levels{rest: filter, more: true}
	f.next()
	if l, ok := f.next(); !ok || l != repliesLevel {
		return true // lampgw itself, or lampgw/status matches
	}
	owner, ok := f.next()
	if !ok || owner == "+" || owner == "#" {
		return true // lampgw/replies itself, or u's own replies
	}
	return owner == u.Name || u.unrestrictedAdmin()
}

// coversReplies reports whether u may read every reply topic filter
// matches (R3): filter reaches no other user's.
func coversReplies(u *User, filter string) bool {
	if u.unrestrictedAdmin() {
		return true
	}
	f := levels{rest: filter, more: true}
	for _, want := range []string{gatewayRoot, repliesLevel} {
		l, ok := f.next()
		switch {
		case !ok:
			return true // it ends above the reply topics
		case l == "#":
			return false
		case l != "+" && l != want:
			return true // it matches no reply topic
		}
	}
	owner, ok := f.next()
	switch {
	case !ok:
		return true // lampgw/replies itself, which is nobody's
	case owner == "+" || owner == "#":
		return false
	}
	return owner == u.Name
}

// meetsLamps reports whether filter matches a topic under the prefix
// whose lamp u may read (R2).
func (a *ACL) meetsLamps(u *User, filter string) bool {
	f := levels{rest: filter, more: true}
	for _, pl := range a.levels {
		l, ok := f.next()
		switch {
		case !ok:
			return false // the filter ends above the prefix
		case l == "#":
			return true // some allowed lamp exists: patterns match an id
		case l != "+" && l != pl:
			return false
		}
	}
	id, ok := f.next()
	switch {
	case !ok:
		return u.mayLamp("") // only the prefix itself
	case id == "#" || id == "+":
		return true
	}
	return u.mayLamp(id)
}

// inside reports whether every topic filter matches is under the prefix:
// it starts with the prefix levels, none of them a wildcard.
func (a *ACL) inside(filter string) bool {
	f := levels{rest: filter, more: true}
	for _, pl := range a.levels {
		if l, ok := f.next(); !ok || l != pl {
			return false
		}
	}
	return true
}

// outside reports whether filter matches no topic under the prefix.
func (a *ACL) outside(filter string) bool {
	f := levels{rest: filter, more: true}
	for _, pl := range a.levels {
		l, ok := f.next()
		switch {
		case !ok:
			return true // it ends above the prefix
		case l == "#":
			return false
		case l != "+" && l != pl:
			return true
		}
	}
	return false
}

// covers reports whether u may read every topic filter matches. Filters
// whose topics would be readable only by different rules together are
// not covered: a shared subscription must lie within one rule.
func (a *ACL) covers(u *User, filter string) bool {
	if u.Role == RoleAdmin && u.Lamps == nil {
		return true
	}
	if a.coveredByLamps(u, filter) {
		return true
	}
	if !a.outside(filter) || !coversReplies(u, filter) {
		return false
	}
	if u.Role == RoleAdmin {
		return true // R1, R4: everything outside the prefix
	}
	first, _, _ := strings.Cut(filter, "/")
	return first == gatewayRoot // R3
}

// coveredByLamps reports whether every topic filter matches is under the
// prefix with a lamp u may read.
func (a *ACL) coveredByLamps(u *User, filter string) bool {
	if !a.inside(filter) {
		return false
	}
	if u.Lamps == nil {
		return true
	}
	f := levels{rest: filter, more: true}
	for range a.levels {
		f.next()
	}
	id, ok := f.next()
	return ok && id != "+" && id != "#" && u.mayLamp(id)
}

// levels iterates over the levels of a topic or filter without
// allocating.
type levels struct {
	rest string
	more bool
}

func (l *levels) next() (string, bool) {
	if !l.more {
		return "", false
	}
	var level string
	level, l.rest, l.more = strings.Cut(l.rest, "/")
	return level, true
}

// isIDChar reports whether c may appear in a lamp id (topics.ValidID).
func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// matchGlob reports whether id matches pattern, where * matches any run
// of characters (none included) and ? exactly one; every other byte
// matches itself. Ids and patterns are ASCII (checkPattern,
// topics.ValidID), so bytes are characters. It backtracks only to the
// last *, so it runs in O(len(pattern) * len(id)) at worst.
func matchGlob(pattern, id string) bool {
	p, s := 0, 0
	star, mark := -1, 0
	for s < len(id) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == id[s]):
			p++
			s++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, s
			p++
		case star >= 0:
			p = star + 1
			mark++
			s = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
