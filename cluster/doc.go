// Package cluster runs several lampgw bridges on one MQTT broker cluster
// (EMQX, NATS with MQTT, Mosquitto): lamps reach any bridge through a TCP
// load balancer, and apps command them through the broker, whichever
// bridge holds them. There is no cluster of our own; everything the
// bridges share lives in the broker as retained messages:
//
//	lampgw/<instance>/status   online | offline: the bridge instance; its
//	                           MQTT will says offline when it dies.
//	lampgw/holders/<lamp>      the instance in charge of the lamp: the
//	                           one it is connected to, or one that
//	                           adopted it after its bridge died.
//	lampgw/pending/<lamp>      the lamp's pending commands, so they
//	                           outlive the instance that queued them.
//
// A Coordinator is one instance's part. It is the bridge's Custody: when
// a lamp identifies it names this instance the lamp's holder and
// subscribes only that lamp's command topics and pending record, so a
// command reaches the instance in charge of its lamp. When another
// instance becomes the holder (the lamp reconnected there), this one lets
// the lamp go without publishing a stale offline (bridge.Server.Release)
// and forgets its commands, which the other took over from the pending
// record (devices.Registry.Restore).
//
// When an instance dies the broker publishes its will after 1.5 times its
// keep alive. Every survivor then picks, per lamp the dead one held, the
// same adopter among the live instances (rendezvous hashing on lamp and
// instance ids); the adopter publishes the lamp offline, names itself
// holder and subscribes the lamp's commands, so commands sent while the
// lamp is away are kept as its pending commands until it reconnects,
// here or elsewhere. Two survivors that disagree on who is alive both
// adopt, and the later holder message wins: the other lets go.
//
// An instance that restarts with the same id finds itself holder of lamps
// it no longer has (a retained holder message replayed at subscribe):
// it publishes those offline and keeps them in its care.
//
// Limits. A command for a lamp no instance was ever in charge of reaches
// nobody, as a command to an unknown device. With a single instance
// nobody is left to publish its lamps offline when it dies; apps see its
// status topic instead. Instance ids must be valid topic levels and not
// one of the reserved words holders, pending, bus, replies, debug.
package cluster
