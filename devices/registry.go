package devices

import (
	"sort"
	"sync"
	"time"
)

// Holder is the live connection that speaks for a device. The bridge's
// lamp sessions are Holders.
type Holder interface {
	// Deliver queues a command for the lamp without blocking. It returns
	// false when the holder can no longer write (closed, or its queue is
	// full), and the registry then keeps the pairs as desired state.
	Deliver(pairs []Pair) bool
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
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Registry is every device the gateway knows. It is safe for concurrent
// use.
type Registry struct {
	opts Options

	mu      sync.Mutex
	devices map[string]*device
}

type device struct {
	mu       sync.Mutex
	holder   Holder
	reported map[string]Value
	// fresh holds the keys reported since the current holder attached; a
	// key's first report on a connection is always published, later ones
	// only when the value changes.
	fresh    map[string]bool
	desired  []Pair
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
	return &Registry{opts: opts, devices: make(map[string]*device)}
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
		if (len(d.desired) == 0) != (len(vd.desired) == 0) {
			return len(d.desired) == 0
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
		vd.forgotten = true
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
	if announce != nil {
		announce()
	}
	if len(d.desired) > 0 && h.Deliver(d.desired) {
		d.desired = nil
	}
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
		d.reported[p.Key] = p.Value
		d.fresh[p.Key] = true
		changed = append(changed, p)
	}
	if len(changed) > 0 && publish != nil {
		publish(changed, d.stateJSONLocked())
	}
	return refused
}

func (d *device) stateJSONLocked() []byte {
	keys := make([]string, 0, len(d.reported))
	size := 2
	for k, v := range d.reported {
		keys = append(keys, k)
		size += len(k) + len(v.JSON) + 4
	}
	sort.Strings(keys)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range keys {
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

// Command hands pairs to id's holder, or, when the lamp is offline or
// cannot take them now, keeps them as desired state (newest value per key
// wins) to be delivered when a holder attaches. delivered says which
// happened.
func (r *Registry) Command(id string, pairs []Pair) (delivered bool, err error) {
	d, err := r.lock(id, command)
	if err != nil {
		return false, err
	}
	defer d.mu.Unlock()
	if d.holder != nil && len(d.desired) == 0 && d.holder.Deliver(pairs) {
		return true, nil
	}
	d.desired = merge(d.desired, pairs)
	if d.holder != nil && d.holder.Deliver(d.desired) {
		d.desired = nil
		return true, nil
	}
	return false, nil
}

// merge overwrites existing keys in place and appends new ones, so the
// frame a lamp finally gets keeps the order keys were first commanded in.
func merge(dst, src []Pair) []Pair {
	out := make([]Pair, len(dst), len(dst)+len(src))
	copy(out, dst)
next:
	for _, p := range src {
		for i := range out {
			if out[i].Key == p.Key {
				out[i].Value = p.Value
				continue next
			}
		}
		out = append(out, p)
	}
	return out
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
		Desired:  append([]Pair(nil), d.desired...),
		LastSeen: d.lastSeen,
	}
	for k, v := range d.reported {
		s.Reported[k] = v
	}
	return s, true
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
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[id]
	if d == nil {
		return nil, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgotten = true
	delete(r.devices, id)
	if clear != nil {
		keys := make([]string, 0, len(d.reported))
		for k := range d.reported {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		clear(keys)
	}
	h := d.holder
	d.holder = nil
	return h, true
}
