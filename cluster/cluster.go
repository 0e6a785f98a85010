package cluster

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/topics"
)

// Topics of the cluster's shared state; see the package doc.
const (
	root          = "lampgw"
	holdersLevel  = "holders"
	pendingLevel  = "pending"
	statusFilter  = root + "/+/status"
	holdersFilter = root + "/" + holdersLevel + "/+"
)

// reserved are lampgw/<level> words that are not instances.
var reserved = []string{holdersLevel, pendingLevel, "bus", "replies", "debug", "status"}

// StatusTopic is instance's status topic, lampgw/<instance>/status: the
// will of its MQTT connection.
func StatusTopic(instance string) string { return root + "/" + instance + "/status" }

// HolderTopic is the retained topic naming lamp id's holder.
func HolderTopic(id string) string { return root + "/" + holdersLevel + "/" + id }

// PendingTopic is the retained topic of lamp id's pending commands.
func PendingTopic(id string) string { return root + "/" + pendingLevel + "/" + id }

// CheckInstance reports why id cannot be an instance id, or nil.
func CheckInstance(id string) error {
	if !topics.ValidID(id) {
		return fmt.Errorf("%w: instance id %q: want 1 to 64 of A-Z a-z 0-9 _ -", ErrInvalidOptions, id)
	}
	if slices.Contains(reserved, id) {
		return fmt.Errorf("%w: instance id %q is reserved", ErrInvalidOptions, id)
	}
	return nil
}

// Options configure a Coordinator.
type Options struct {
	// Bus is the connection to the broker cluster; required. Its will
	// must be "offline", retained, on StatusTopic(Instance).
	Bus bridge.Bus
	// Instance names this bridge among the others; required, see
	// CheckInstance. Two live instances with one id confuse each other.
	Instance string
	// Prefix is the lamp topic prefix; "" means topics.DefaultPrefix.
	Prefix string
	// QoS of the cluster's publishes; 0 means 1, so that holder and
	// pending records are not lost on the way. Its subscriptions are QoS
	// 0: what they follow is retained and replayed after a reconnection,
	// and NATS makes a JetStream consumer for each QoS 1 subscription,
	// which takes seconds in a cluster, per lamp.
	QoS byte
	// Logger receives adoptions and releases at info.
	Logger zerolog.Logger
}

// Coordinator is one instance's part in the cluster; it implements
// bridge.Custody. Make it with New, give it to bridge.Options.Custody,
// then Start it with the server.
type Coordinator struct {
	opts Options
	log  zerolog.Logger

	mu      sync.Mutex
	srv     *bridge.Server
	closed  bool
	live    map[string]bool   // instance: online, from status topics
	holders map[string]string // lamp: instance, from holder topics and our own
	care    map[string]*care  // lamps in our charge
	unsubs  []func()
	syncSeq uint64 // of the last sync marker sent, see Reconnected
}

// care is one lamp in this instance's charge: the subscriptions to its
// commands and its pending record.
type care struct {
	released bool
	unsubs   []func()
}

// New checks opts and returns a Coordinator that does nothing until
// Start.
func New(opts Options) (*Coordinator, error) {
	if opts.Bus == nil {
		return nil, fmt.Errorf("%w: no Bus", ErrInvalidOptions)
	}
	if err := CheckInstance(opts.Instance); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = topics.DefaultPrefix
	}
	if opts.QoS == 0 {
		opts.QoS = 1
	}
	return &Coordinator{
		opts:    opts,
		log:     opts.Logger.With().Str("instance", opts.Instance).Logger(),
		live:    map[string]bool{opts.Instance: true},
		holders: map[string]string{},
		care:    map[string]*care{},
	}, nil
}

// Start follows the other instances and the lamps' holders through srv's
// bus and announces this instance online. srv must have been made with c
// as its Custody.
func (c *Coordinator) Start(srv *bridge.Server) error {
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	for _, s := range []struct {
		filter string
		h      func(string, []byte, bool)
	}{{statusFilter, c.onStatus}, {holdersFilter, c.onHolder}, {c.syncTopic(), c.onSync}} {
		u, err := c.opts.Bus.Subscribe(s.filter, 0, s.h)
		if err != nil {
			c.Close()
			return fmt.Errorf("cluster: subscribe %s: %w", s.filter, err)
		}
		c.mu.Lock()
		c.unsubs = append(c.unsubs, u)
		c.mu.Unlock()
	}
	return c.publish(StatusTopic(c.opts.Instance), []byte(topics.Online))
}

// Reconnected says again what a will or a broker that lost its state
// may have contradicted while the connection was down: this instance is
// online, and so are the lamps connected to it. Which lamps are still
// ours follows from the holder records replayed after the reconnection:
// one that reconnected elsewhere is let go; one another instance only
// adopted is claimed back. The lamps no record contradicts are claimed
// again once a sync marker, published now, comes back behind the
// replay. Give it to the bus as its on-reconnect hook.
func (c *Coordinator) Reconnected() {
	c.mu.Lock()
	srv, closed := c.srv, c.closed
	c.syncSeq++
	seq := c.syncSeq
	c.mu.Unlock()
	if srv == nil || closed {
		return
	}
	c.publish(StatusTopic(c.opts.Instance), []byte(topics.Online))
	c.opts.Bus.Publish(c.syncTopic(), strconv.AppendUint(nil, seq, 10), c.opts.QoS, false)
}

// syncTopic is this instance's own marker topic, see Reconnected.
func (c *Coordinator) syncTopic() string { return root + "/" + c.opts.Instance + "/sync" }

// onSync claims again, after a reconnection's replay, the lamps
// connected here that no other instance's record took.
func (c *Coordinator) onSync(_ string, payload []byte, _ bool) {
	seq, err := strconv.ParseUint(string(payload), 10, 64)
	c.mu.Lock()
	if err != nil || seq != c.syncSeq || c.srv == nil {
		c.mu.Unlock()
		return
	}
	srv := c.srv
	var ids []string
	for id := range c.care {
		if h := c.holders[id]; h == "" || h == c.opts.Instance {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	for _, id := range ids {
		if srv.Registry().Holder(id) != nil {
			c.claim(id, true)
		}
	}
}

// Close stops following the cluster and announces this instance offline,
// so that the others adopt the lamps in its charge. Shut the bridge down
// first: its lamps' offlines go out while this instance is their holder.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	unsubs := c.unsubs
	for _, k := range c.care {
		k.released = true
		unsubs = append(unsubs, k.unsubs...)
	}
	c.care, c.unsubs = map[string]*care{}, nil
	c.mu.Unlock()
	for _, u := range unsubs {
		u()
	}
	c.publish(StatusTopic(c.opts.Instance), []byte(topics.Offline))
}

// Attached implements bridge.Custody: this instance holds lamp id now.
func (c *Coordinator) Attached(id string) { c.claim(id, true) }

// Detached implements bridge.Custody: the lamp's offline is ours to
// publish only while no other instance holds it.
func (c *Coordinator) Detached(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.holders[id]
	return h == "" || h == c.opts.Instance
}

// claim names this instance id's holder and takes the lamp into its care;
// online says whether the lamp is connected here (else it is announced
// offline: adopted, or left over from an earlier life of this instance).
// The lamp's subscriptions are made before the holder record goes out,
// so whoever sees the record can command the lamp.
func (c *Coordinator) claim(id string, online bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.holders[id] = c.opts.Instance
	k, had := c.care[id]
	if !had {
		k = &care{}
		c.care[id] = k
	}
	srv := c.srv
	c.mu.Unlock()

	if !had && srv != nil {
		unsubs, err := c.subscribeLamp(srv, id)
		if err != nil {
			c.log.Error().Err(err).Str("device", id).Msg("cannot subscribe to the lamp's commands")
		}
		c.mu.Lock()
		if k.released {
			c.mu.Unlock()
			for _, u := range unsubs {
				u()
			}
			return
		}
		k.unsubs = unsubs
		c.mu.Unlock()
	}
	c.publish(HolderTopic(id), holder{Instance: c.opts.Instance, Adopted: !online}.encode())
	if !online {
		c.publish(topics.Availability(c.opts.Prefix, id), []byte(topics.Offline))
	} else if had {
		// Again after a reconnection, in case a will's adopter said
		// offline meanwhile.
		c.publish(topics.Availability(c.opts.Prefix, id), []byte(topics.Online))
	}
}

// subscribeLamp subscribes lamp id's commands and pending record.
func (c *Coordinator) subscribeLamp(srv *bridge.Server, id string) ([]func(), error) {
	u, err := srv.SubscribeLamp(id)
	if err != nil {
		return nil, err
	}
	unsubs := []func(){u}
	u, err = c.opts.Bus.Subscribe(PendingTopic(id), 0, func(_ string, payload []byte, retained bool) {
		c.onPending(id, payload, retained)
	})
	if err != nil {
		return unsubs, err
	}
	return append(unsubs, u), nil
}

// release lets lamp id go: another instance holds it now.
func (c *Coordinator) release(id, by string) {
	c.mu.Lock()
	k, ok := c.care[id]
	if ok {
		k.released = true
		delete(c.care, id)
	}
	srv := c.srv
	c.mu.Unlock()
	if !ok {
		return
	}
	for _, u := range k.unsubs {
		u()
	}
	if srv != nil {
		srv.Release(id)
	}
	c.log.Info().Str("device", id).Str("holder", by).Msg("lamp released to another instance")
}

// onStatus follows lampgw/<instance>/status.
func (c *Coordinator) onStatus(topic string, payload []byte, _ bool) {
	inst := strings.TrimSuffix(strings.TrimPrefix(topic, root+"/"), "/status")
	if CheckInstance(inst) != nil || inst == c.opts.Instance {
		// Our own status is ours to say; a will of an earlier life of
		// this instance was answered by Start.
		return
	}
	online := string(payload) == topics.Online
	c.mu.Lock()
	if len(payload) == 0 {
		delete(c.live, inst)
	} else {
		c.live[inst] = online
	}
	var orphans []string
	if !online {
		for id, h := range c.holders {
			if h == inst {
				orphans = append(orphans, id)
			}
		}
	}
	c.mu.Unlock()
	if len(orphans) > 0 {
		c.log.Info().Str("dead", inst).Int("lamps", len(orphans)).Msg("instance offline; adopting its lamps")
	}
	for _, id := range orphans {
		c.adopt(id, inst)
	}
}

// holder is a holder record: who is in charge of a lamp, and whether it
// only adopted it (the lamp is not connected there).
type holder struct {
	Instance string `json:"instance"`
	Adopted  bool   `json:"adopted,omitempty"`
}

func (h holder) encode() []byte {
	b, _ := json.Marshal(h)
	return b
}

// onHolder follows lampgw/holders/<lamp>.
func (c *Coordinator) onHolder(topic string, payload []byte, retained bool) {
	id := strings.TrimPrefix(topic, root+"/"+holdersLevel+"/")
	if !topics.ValidID(id) {
		return
	}
	var h holder
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &h); err != nil || CheckInstance(h.Instance) != nil {
			c.log.Warn().Str("device", id).Msg("holder record ignored: not a holder")
			return
		}
	}
	me := c.opts.Instance
	c.mu.Lock()
	if h.Instance == "" {
		delete(c.holders, id)
	} else if h.Instance != me {
		c.holders[id] = h.Instance
	}
	_, inCare := c.care[id]
	alive, known := c.live[h.Instance]
	srv := c.srv
	c.mu.Unlock()
	connected := srv != nil && srv.Registry().Holder(id) != nil

	switch {
	case h.Instance == "":
	case h.Instance == me:
		if retained && !inCare && !connected {
			// Ours in an earlier life: gone with it.
			c.claim(id, false)
		}
	case connected && h.Adopted:
		// Adopted while we were cut off from the broker (seen live, or
		// replayed after our reconnection): the lamp is still here.
		c.claim(id, true)
	case connected:
		// It reconnected elsewhere; our connection is a dead one, or
		// about to be replaced anyway.
		c.release(id, h.Instance)
	case inCare && h.Adopted && pick(id, []string{me, h.Instance}) == me:
		// Both adopted it: the pick between the two decides, the same
		// way on both sides, and the last word must be ours.
		c.claim(id, false)
	case inCare:
		c.release(id, h.Instance)
	case known && !alive:
		c.adopt(id, h.Instance)
	}
}

// adopt takes lamp id, whose holder dead is offline, into this
// instance's care if the rendezvous hash picks this instance among the
// live ones.
func (c *Coordinator) adopt(id, dead string) {
	c.mu.Lock()
	if c.holders[id] != dead || c.closed {
		c.mu.Unlock()
		return // re-held meanwhile
	}
	var live []string
	for inst, up := range c.live {
		if up {
			live = append(live, inst)
		}
	}
	c.mu.Unlock()
	if pick(id, live) != c.opts.Instance {
		return
	}
	c.log.Info().Str("device", id).Str("dead", dead).Msg("lamp adopted")
	c.claim(id, false)
}

// pick is the rendezvous (highest random weight) choice of an instance
// for lamp id: every instance that knows the same live set picks the
// same one, and an instance's death moves only its own lamps.
func pick(id string, instances []string) string {
	var best string
	var bestW uint64
	for _, inst := range instances {
		h := fnv.New64a()
		h.Write([]byte(id))
		h.Write([]byte{0})
		h.Write([]byte(inst))
		if w := mix(h.Sum64()); best == "" || w > bestW || (w == bestW && inst < best) {
			best, bestW = inst, w
		}
	}
	return best
}

// mix is splitmix64's finalizer: FNV alone leaves keys that differ only
// in their last bytes (the instance id) badly spread, one instance
// getting half the lamps of three.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// record is a pending-commands record as it travels through the broker:
// the registry's record, and who wrote it, so an instance can tell its
// own writes coming back from another's.
type record struct {
	By      string          `json:"by"`
	At      time.Time       `json:"at"`
	Pending json.RawMessage `json:"pending"`
}

// onPending restores another instance's pending commands for lamp id.
func (c *Coordinator) onPending(id string, payload []byte, retained bool) {
	if len(payload) == 0 {
		return
	}
	var rec record
	if err := json.Unmarshal(payload, &rec); err != nil || len(rec.Pending) == 0 {
		c.log.Warn().Str("device", id).Err(fmt.Errorf("%w: %v", ErrBadRecord, err)).Msg("pending commands ignored")
		return
	}
	if rec.By == c.opts.Instance && !retained {
		return // our own write, live
	}
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if srv == nil {
		return
	}
	if err := srv.Registry().Restore(id, rec.Pending); err != nil {
		c.log.Warn().Str("device", id).Err(fmt.Errorf("%w: %w", ErrBadRecord, err)).Msg("pending commands ignored")
	}
}

// Store is the registry's devices.Store in the broker: each lamp's
// pending commands as its retained pending record.
func (c *Coordinator) Store() *Store { return &Store{c: c} }

// Store implements devices.Store on the broker; see Coordinator.Store.
type Store struct{ c *Coordinator }

// Put publishes id's record, retained; an empty one clears it.
func (s *Store) Put(id string, data []byte) error {
	if len(data) == 0 {
		return s.c.opts.Bus.Publish(PendingTopic(id), nil, s.c.opts.QoS, true)
	}
	b, err := json.Marshal(record{By: s.c.opts.Instance, At: time.Now().UTC(), Pending: data})
	if err != nil {
		return err
	}
	return s.c.opts.Bus.Publish(PendingTopic(id), b, s.c.opts.QoS, true)
}

// All restores nothing at start: a lamp's record is read when it comes
// into this instance's care.
func (s *Store) All(func(id string, data []byte) error) error { return nil }

func (c *Coordinator) publish(topic string, payload []byte) error {
	err := c.opts.Bus.Publish(topic, payload, c.opts.QoS, true)
	if err != nil {
		c.log.Warn().Err(err).Str("topic", topic).Msg("cluster publish failed")
	}
	return err
}
