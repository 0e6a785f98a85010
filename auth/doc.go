// Package auth is lampgw's MQTT access control: the users file (names,
// bcrypt hashes, roles, lamp patterns) and the decision of what a client
// may publish, subscribe to and receive.
//
// The decisions (ACL) are pure functions of a *User and a topic; the
// broker asks them on every PUBLISH, SUBSCRIBE and delivery. Verifier is
// the one stateful part: it checks passwords with a cache of successes
// and a per-address limit on failures, because bcrypt is slow on purpose.
//
// # Users file
//
//	users:
//	  - name: alice
//	    role: admin
//	    hash: "$2a$10$..."        # from: lampgw passwd alice --role admin
//	  - name: kitchen-tablet
//	    role: app
//	    hash: "$2a$10$..."
//	    lamps: ["kitchen-*", hall] # only these lamps' topics
//	  - {name: wall, role: viewer, hash: "$2a$10$..."}
//
// The file has one key, users, a list. Each user has name (1 to 64
// printable characters without spaces), role (admin, app or viewer),
// hash (a bcrypt hash; plain passwords are refused) and optionally lamps,
// a non-empty list of glob patterns on the lamp id (* any run of
// characters, ? one; otherwise the id characters A-Z a-z 0-9 _ -). Any
// other key, a repeated key or user, and a bad value are refused with the
// file, line and key.
//
// # Who a client is
//
// A client that logs in is the user of that name. A client without a
// user name is anonymous: with no users file it may do what an admin
// without lamp patterns may (the broker lets it in from loopback only,
// unless --allow-anonymous); with a users file, if --allow-anonymous lets
// it in at all, it is a viewer (Anonymous).
//
// # Rules
//
// Below, prefix is the topic prefix ("lamp"), "under prefix" means the
// topic is prefix or starts with prefix/, its lamp id is the level after
// prefix, and "the lamps allow id" means the user has no lamp patterns or
// one of them matches id. The first rule that applies decides.
//
// Publish (CanWrite):
//
//	W1 a topic starting with $              refused to everyone
//	W2 prefix/+/set or prefix/+/+/set       app and admin, if the lamps allow the id
//	W3 any other topic under prefix         refused to everyone: lamp state is the gateway's
//	W4 lampgw or lampgw/...                 refused to everyone: the gateway's own
//	W5 anything else                        admin only
//
// Receive a message (CanRead):
//
//	R1 a topic starting with $ ($SYS/...)   admin only
//	R2 a topic under prefix                 every role, if the lamps allow the id
//	R3 lampgw or lampgw/...                 every role, but lampgw/replies/<name> and below
//	                                        only the user <name> and admins without lamp patterns
//	R4 anything else                        admin only
//
// Subscribe (CanSubscribe):
//
//	S1 $share/<group>/<filter>              granted if every topic <filter> matches may be read
//	S2 a filter without wildcards           as R1-R4 for that topic
//	S3 a filter with + or #                 granted if some topic it matches may be read
//
// S3 grants "#" to a viewer, and "lamp/#" to a user restricted to
// kitchen-*: the broker (mochi v2.7.9) asks CanRead again for every
// message it delivers, retained replays included (server.go
// publishToClient), so such a client receives only what R1-R4 allow. S1
// is stricter because mochi picks one member of a shared group before it
// asks, and a member that may not read the message would swallow it for
// the whole group.
//
// The reply topics are where an MQTT 5 app has the gateway send its
// commands' acknowledgements (the command's Response Topic): R4 keeps an
// app from reading anywhere outside prefix and lampgw/, and nobody may
// publish under lampgw/ (W4), so an app's own lampgw/replies/<name>/...
// is a place only it can read and only the gateway can write. The broker
// sends replies only to a response topic the command's sender may read,
// so nobody has them sent to another user. A user whose name is not one
// topic level (it holds '/', '+' or '#') has no reply topics; an admin
// may use any topic outside prefix and lampgw/.
//
// Roles are ordered viewer < app < admin; each may do what the ones
// before it may. Lamp patterns restrict admins too, under prefix only.
// Nobody may publish lamp state or lampgw/...: only the gateway itself,
// through the broker's inline client, which the broker never checks.
package auth
