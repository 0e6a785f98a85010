package devices

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Holder is the live connection that speaks for a device. The bridge's
// lamp sessions are Holders.
type Holder interface {
	// Deliver queues a frame of pairs for the lamp without blocking. It
	// returns false when the holder can no longer write (closed, or its
	// queue is full), and the registry then keeps the pairs as desired
	// state. After true, done is called exactly once, from another
	// goroutine and with no registry lock held: ok once the frame is on
	// the socket, !ok if the connection ended before it was written.
	Deliver(pairs []Pair, done func(ok bool)) bool
	// Kick closes the holder's connection because another connection took
	// over its device. It must not block.
	Kick()
}

// Options configure a Registry.
type Options struct {
	// MaxDevices bounds how many devices the registry remembers. When it
	// is full, a command to an unknown id is refused, while a lamp that
	// identifies makes room by forgetting the offline device seen longest
	// ago (one without pending commands if there is one), so neither
	// made-up commands nor lamps cycling through ids can grow the
	// registry or lock real lamps out. 0 means 10000.
	MaxDevices int
	// MaxKeys bounds the distinct keys one device may report. 0 means 64.
	MaxKeys int
	// Now is the clock of timestamps and expiry; nil means time.Now.
	Now func() time.Time
	// OnAck hears every step of every command (see AckStatus), under the
	// device's lock, so a device's acks are in order; it must not block
	// or call back into the registry for that device. nil: nobody.
	OnAck func(Ack)
	// ConfirmTimeout is how long a written command waits for the lamp to
	// report its value before it is unconfirmed; 0 means 5s.
	ConfirmTimeout time.Duration
	// CommandTTL is how long a command may wait to be written before it
	// expires; 0 means 24h.
	CommandTTL time.Duration
	// MaxRate is how many frames per second a lamp is written at most;
	// commands arriving faster are coalesced per key, the newest winning.
	// 0 means 20; negative means no limit.
	MaxRate float64
	// Store persists pending commands; nil keeps them in memory only.
	Store Store
	// OnStoreError hears a failed Store.Put or an unreadable record; nil:
	// nobody.
	OnStoreError func(id string, err error)
}

// Registry is every device the gateway knows. It is safe for concurrent
// use.
type Registry struct {
	opts Options
	// ackCounts counts acks by their index in Statuses.
	ackCounts [7]atomic.Uint64
	closed    atomic.Bool

	mu      sync.Mutex
	devices map[string]*device
}

type device struct {
	mu       sync.Mutex
	holder   Holder
	reported map[string]Value
	// keys are reported's keys, sorted, for lamp/<id>/state: kept as keys
	// come rather than sorted on every report.
	keys []string
	// fresh holds the keys reported since the current holder attached; a
	// key's first report on a connection is always published, later ones
	// only when the value changes.
	fresh map[string]bool
	// pending are commands not yet written, newest per key, in the order
	// their keys were first commanded; inflight are written ones waiting
	// for the lamp to confirm them, by key.
	pending  []Command
	inflight map[string]inflight
	limiter  *rate.Limiter
	waitSlot bool // pending commands wait for the limiter's next slot
	timer    *time.Timer
	lastSeen time.Time
	// forgotten is set when the device was evicted; whoever looked it up
	// before must look again.
	forgotten bool
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	if opts.MaxDevices <= 0 {
		opts.MaxDevices = 10000
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ConfirmTimeout <= 0 {
		opts.ConfirmTimeout = 5 * time.Second
	}
	if opts.CommandTTL <= 0 {
		opts.CommandTTL = 24 * time.Hour
	}
	if opts.MaxRate == 0 {
		opts.MaxRate = 20
	}
	return &Registry{opts: opts, devices: make(map[string]*device)}
}

// Open is NewRegistry that first restores pending commands from
// opts.Store.
func Open(opts Options) (*Registry, error) {
	r := NewRegistry(opts)
	if r.opts.Store != nil {
		if err := r.load(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// How lookup treats a device it doesn't know.
const (
	find    = iota // return nil
	attach         // create it, evicting an offline device when full
	command        // create it only when not full
)

// lookup returns id's device, or nil.
func (r *Registry) lookup(id string, mode int) (*device, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[id]
	if d != nil || mode == find {
		return d, nil
	}
	if len(r.devices) >= r.opts.MaxDevices && (mode == command || !r.evictLocked()) {
		return nil, ErrTooManyDevices
	}
	d = &device{reported: make(map[string]Value)}
	r.devices[id] = d
	return d, nil
}

// evictLocked forgets the offline device seen longest ago, preferring
// one without desired state. It reports false when every device is
// online. Lock order is always r.mu before a device's mu.
func (r *Registry) evictLocked() bool {
	var victim string
	var vd *device
	better := func(d *device) bool {
		if vd == nil {
			return true
		}
		if (len(d.pending) == 0) != (len(vd.pending) == 0) {
			return len(d.pending) == 0
		}
		return d.lastSeen.Before(vd.lastSeen)
	}
	for id, d := range r.devices {
		d.mu.Lock()
		if d.holder == nil && better(d) {
			victim, vd = id, d
		}
		d.mu.Unlock()
	}
	if vd == nil {
		return false
	}
	vd.mu.Lock()
	offline := vd.holder == nil
	if offline {
		r.forgetLocked(victim, vd)
		delete(r.devices, victim)
	}
	vd.mu.Unlock()
	return offline
}

// lock returns id's device locked, looking again if it was forgotten
// between lookup and lock.
func (r *Registry) lock(id string, mode int) (*device, error) {
	for {
		d, err := r.lookup(id, mode)
		if d == nil || err != nil {
			return nil, err
		}
		d.mu.Lock()
		if !d.forgotten {
			return d, nil
		}
		d.mu.Unlock()
	}
}

// Attach makes h the holder of id. If another holder had it, that one is
// kicked (take-over) and Attach reports true. announce runs under the
// device lock once h holds it, before any desired state is delivered to h,
// so "online" is published before anything else h causes.
func (r *Registry) Attach(id string, h Holder, announce func()) (tookOver bool, err error) {
	return r.AttachIf(id, h, nil, announce)
}

// AttachIf is Attach, but only if admit, called under the device lock
// with the current holder (nil when offline), returns nil; otherwise it
// returns admit's error and changes nothing. A nil admit admits anyone.
func (r *Registry) AttachIf(id string, h Holder, admit func(prev Holder) error, announce func()) (tookOver bool, err error) {
	d, err := r.lock(id, attach)
	if err != nil {
		return false, err
	}
	prev := d.holder
	if admit != nil {
		if err := admit(prev); err != nil {
			d.mu.Unlock()
			return false, err
		}
	}
	d.holder = h
	d.fresh = make(map[string]bool)
	d.lastSeen = r.opts.Now()
	if d.limiter == nil {
		d.limiter = r.newLimiter()
	}
	if announce != nil {
		announce()
	}
	r.flushLocked(id, d)
	d.mu.Unlock()
	if prev != nil && prev != h {
		prev.Kick()
		return true, nil
	}
	return false, nil
}

// Detach ends h's hold on id. Only if h still holds it (it was not taken
// over) does announce run, under the device lock, and Detach report true.
func (r *Registry) Detach(id string, h Holder, announce func()) bool {
	d, _ := r.lookup(id, find)
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holder != h {
		return false
	}
	d.holder = nil
	d.fresh = nil
	if announce != nil {
		announce()
	}
	return true
}

// Report records pairs reported by h for id; keys in pairs are unique.
// Pairs whose key would exceed Options.MaxKeys are refused and returned in refused. If anything needs
// publishing (a changed value, or a key's first report on this
// connection), publish runs under the device lock with those pairs in
// report order and the device's whole state as a JSON object. A report
// from a holder that no longer holds id (it was just taken over) is
// dropped: its connection is closing and speaks for no one.
func (r *Registry) Report(id string, h Holder, pairs []Pair, publish func(changed []Pair, state []byte)) (refused []Pair) {
	d, _ := r.lookup(id, find)
	if d == nil || h == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.holder != h {
		return nil
	}
	d.lastSeen = r.opts.Now()
	var changed []Pair
	for _, p := range pairs {
		old, known := d.reported[p.Key]
		if !known && len(d.reported) >= r.opts.MaxKeys {
			refused = append(refused, p)
			continue
		}
		if known && old == p.Value && d.fresh[p.Key] {
			continue
		}
		if !known {
			i, _ := slices.BinarySearch(d.keys, p.Key)
			d.keys = slices.Insert(d.keys, i, p.Key)
		}
		d.reported[p.Key] = p.Value
		d.fresh[p.Key] = true
		changed = append(changed, p)
	}
	if len(changed) > 0 && publish != nil {
		publish(changed, d.stateJSONLocked())
	}
	if len(d.inflight) > 0 {
		r.confirmLocked(id, d, pairs)
	}
	return refused
}

func (d *device) stateJSONLocked() []byte {
	size := 2
	for k, v := range d.reported {
		size += len(k) + len(v.JSON) + 4
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range d.keys {
		if i > 0 {
			b = append(b, ',')
		}
		// Keys are [a-z0-9_] (topics.CheckKey), so they need no escaping.
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		b = append(b, d.reported[k].JSON...)
	}
	return append(b, '}')
}

// Command queues cmds for id, each replacing a pending command for its
// key (superseded), and writes them to the lamp if it is online and its
// write rate allows; a lamp that is offline keeps them as desired state
// (queued) until it connects. Keys in cmds are unique. It fails only when
// the registry is full and does not know id.
func (r *Registry) Command(id string, cmds []Command) error {
	d, err := r.lock(id, command)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	for i := range cmds {
		if cmds[i].At.IsZero() {
			cmds[i].At = r.opts.Now()
		}
	}
	r.queueLocked(id, d, cmds)
	r.flushLocked(id, d)
	// Stored before "queued" is said: an app that heard it may count on
	// the command outliving this process (or, in cluster mode, this
	// instance: the store is then the broker).
	if len(d.pending) > 0 {
		r.persistLocked(id, d)
	}
	if d.holder == nil {
		for _, c := range cmds {
			r.ackLocked(id, c, Queued)
		}
	}
	return nil
}

// forgetLocked drops a device that is leaving the registry: its pending
// commands end expired, its timer stops and its record is deleted.
func (r *Registry) forgetLocked(id string, d *device) {
	d.forgotten = true
	for _, c := range d.pending {
		r.ackLocked(id, c, Expired)
	}
	for _, f := range d.inflight {
		r.ackLocked(id, f.cmd, Unconfirmed)
	}
	hadPending := len(d.pending) > 0
	d.pending, d.inflight = nil, nil
	if hadPending {
		r.persistLocked(id, d)
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// Snapshot is a copy of one device's state.
type Snapshot struct {
	ID       string
	Online   bool
	Reported map[string]Value
	Desired  []Pair
	LastSeen time.Time
}

// Get returns a snapshot of id, and false if the registry doesn't know it.
func (r *Registry) Get(id string) (Snapshot, bool) {
	d, _ := r.lookup(id, find)
	if d == nil {
		return Snapshot{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Snapshot{
		ID:       id,
		Online:   d.holder != nil,
		Reported: make(map[string]Value, len(d.reported)),
		Desired:  d.desiredPairs(),
		LastSeen: d.lastSeen,
	}
	for k, v := range d.reported {
		s.Reported[k] = v
	}
	return s, true
}

func (d *device) desiredPairs() []Pair {
	pairs := make([]Pair, len(d.pending))
	for i, c := range d.pending {
		pairs[i] = c.Pair
	}
	return pairs
}

// Online returns how many devices have a holder now.
func (r *Registry) Online() int {
	r.mu.Lock()
	devs := make([]*device, 0, len(r.devices))
	for _, d := range r.devices {
		devs = append(devs, d)
	}
	r.mu.Unlock()
	n := 0
	for _, d := range devs {
		d.mu.Lock()
		if d.holder != nil {
			n++
		}
		d.mu.Unlock()
	}
	return n
}

// IDs returns the ids of every known device, sorted.
func (r *Registry) IDs() []string {
	r.mu.Lock()
	ids := make([]string, 0, len(r.devices))
	for id := range r.devices {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	sort.Strings(ids)
	return ids
}

// Declare makes id known, for a configured lamp that may not have
// connected yet. If nobody holds id, announce runs under the device lock
// (to publish "offline", say), ordered with everything else of id's.
func (r *Registry) Declare(id string, announce func()) error {
	d, err := r.lock(id, attach)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	if d.holder == nil && announce != nil {
		announce()
	}
	return nil
}

// Holder returns who holds id now, or nil.
func (r *Registry) Holder(id string) Holder {
	d, _ := r.lock(id, find)
	if d == nil {
		return nil
	}
	defer d.mu.Unlock()
	return d.holder
}

// Remove forgets id: its reported and desired state and its holder. clear
// runs with every key id ever reported, sorted, so the caller can clear
// what it published for them. It runs under the registry's lock as well as
// the device's, so that no new connection for id can announce itself
// until clear is done. Remove returns the holder, which the caller should
// close: from now on its Reports and its Detach find no device and publish
// nothing. It reports false if id was not known.
func (r *Registry) Remove(id string, clear func(keys []string)) (Holder, bool) {
	return r.take(id, func(d *device) {
		r.forgetLocked(id, d)
		if clear != nil {
			keys := make([]string, 0, len(d.reported))
			for k := range d.reported {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			clear(keys)
		}
	})
}

// take removes id from the registry, running settle on its device under
// the registry's lock and the device's, and returns its holder (now
// none); it reports false if id was not known.
func (r *Registry) take(id string, settle func(d *device)) (Holder, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[id]
	if d == nil {
		return nil, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	settle(d)
	delete(r.devices, id)
	h := d.holder
	d.holder = nil
	return h, true
}
