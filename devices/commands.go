package devices

import (
	"encoding/json"
	"time"

	"golang.org/x/time/rate"
)

// Command is one key an app asked a lamp to take.
type Command struct {
	Pair
	// RID is the app's request id; "" if it gave none.
	RID string
	// Reply is where an MQTT 5 app wants progress reports; nil if none.
	Reply *Reply
	// At is when the command arrived.
	At time.Time
}

// Reply is an MQTT 5 response topic with its correlation data.
type Reply struct {
	Topic       string
	Correlation []byte
}

// Wants reports whether the app asked to hear about c's progress.
func (c Command) Wants() bool { return c.RID != "" || c.Reply != nil }

// AckStatus is where a command stands. A command ends confirmed,
// unconfirmed, superseded, expired or rejected.
type AckStatus string

const (
	// Queued: the lamp is offline; the command is kept as desired state.
	Queued AckStatus = "queued"
	// Written: the frame is on the lamp's socket.
	Written AckStatus = "written"
	// Confirmed: the lamp then reported the commanded value.
	Confirmed AckStatus = "confirmed"
	// Unconfirmed: no matching report within Options.ConfirmTimeout.
	Unconfirmed AckStatus = "unconfirmed"
	// Superseded: a newer command for the key replaced it unwritten.
	Superseded AckStatus = "superseded"
	// Expired: not written within Options.CommandTTL.
	Expired AckStatus = "expired"
	// Rejected: invalid; the bridge refuses these before the registry.
	Rejected AckStatus = "rejected"
)

// Ack is a command's progress, given to Options.OnAck.
type Ack struct {
	ID      string
	Command Command
	Status  AckStatus
	Time    time.Time
}

// pendingRecord is what a Store holds for a device.
type pendingRecord struct {
	V       int         `json:"v"`
	Pending []storedCmd `json:"pending"`
}

type storedCmd struct {
	Key         string    `json:"key"`
	Text        string    `json:"text"`
	JSON        string    `json:"json"`
	RID         string    `json:"rid,omitempty"`
	ReplyTopic  string    `json:"reply_topic,omitempty"`
	Correlation []byte    `json:"correlation,omitempty"`
	At          time.Time `json:"at"`
}

func encodePending(cmds []Command) []byte {
	if len(cmds) == 0 {
		return nil
	}
	rec := pendingRecord{V: 1, Pending: make([]storedCmd, len(cmds))}
	for i, c := range cmds {
		s := storedCmd{Key: c.Key, Text: c.Value.Text, JSON: c.Value.JSON, RID: c.RID, At: c.At}
		if c.Reply != nil {
			s.ReplyTopic, s.Correlation = c.Reply.Topic, c.Reply.Correlation
		}
		rec.Pending[i] = s
	}
	b, _ := json.Marshal(rec)
	return b
}

func decodePending(b []byte) ([]Command, error) {
	var rec pendingRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	cmds := make([]Command, 0, len(rec.Pending))
	for _, s := range rec.Pending {
		c := Command{Pair: Pair{Key: s.Key, Value: Value{Text: s.Text, JSON: s.JSON}}, RID: s.RID, At: s.At}
		if s.ReplyTopic != "" {
			c.Reply = &Reply{Topic: s.ReplyTopic, Correlation: s.Correlation}
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

// inflight is a written command waiting for the lamp to report its value.
type inflight struct {
	cmd      Command
	deadline time.Time
}

// Statuses lists every AckStatus, in the order of a command's life.
var Statuses = []AckStatus{Queued, Written, Confirmed, Unconfirmed, Superseded, Expired, Rejected}

// AckCounts returns how many acks of each status the registry has given,
// for metrics. Rejected is always 0 here: the bridge refuses those.
func (r *Registry) AckCounts() map[AckStatus]uint64 {
	m := make(map[AckStatus]uint64, len(Statuses))
	for i, s := range Statuses {
		m[s] = r.ackCounts[i].Load()
	}
	return m
}

// ackLocked tells Options.OnAck about c.
func (r *Registry) ackLocked(id string, c Command, s AckStatus) {
	for i, st := range Statuses {
		if st == s {
			r.ackCounts[i].Add(1)
		}
	}
	if r.opts.OnAck != nil {
		r.opts.OnAck(Ack{ID: id, Command: c, Status: s, Time: r.opts.Now()})
	}
}

// persistLocked saves d's pending commands.
func (r *Registry) persistLocked(id string, d *device) {
	if r.opts.Store == nil {
		return
	}
	if err := r.opts.Store.Put(id, encodePending(d.pending)); err != nil && r.opts.OnStoreError != nil {
		r.opts.OnStoreError(id, err)
	}
}

// queueLocked adds cmds to d's pending commands: a command for a key
// already pending replaces it (superseded) in its place, so a lamp's frame
// keeps the order keys were first commanded in.
func (r *Registry) queueLocked(id string, d *device, cmds []Command) {
next:
	for _, c := range cmds {
		for i := range d.pending {
			if d.pending[i].Key == c.Key {
				r.ackLocked(id, d.pending[i], Superseded)
				d.pending[i] = c
				continue next
			}
		}
		d.pending = append(d.pending, c)
	}
}

// flushLocked writes d's pending commands to its holder as one frame if
// the lamp is online and its write rate allows; otherwise it leaves them
// pending and schedules the next try.
func (r *Registry) flushLocked(id string, d *device) {
	defer r.scheduleLocked(id, d)
	d.waitSlot = false
	if d.holder == nil || len(d.pending) == 0 {
		return
	}
	now := time.Now()
	var res *rate.Reservation
	if d.limiter != nil {
		if res = d.limiter.ReserveN(now, 1); res.DelayFrom(now) > 0 {
			res.CancelAt(now)
			d.waitSlot = true // scheduleLocked wakes us when the frame is due
			return
		}
	}
	cmds := d.pending
	pairs := make([]Pair, len(cmds))
	for i, c := range cmds {
		pairs[i] = c.Pair
	}
	h := d.holder
	if !h.Deliver(pairs, func(ok bool) { r.delivered(id, d, h, cmds, ok) }) {
		if res != nil {
			res.CancelAt(now) // nothing was written
		}
		return // the holder is closing; Detach follows
	}
	d.pending = nil
	r.persistLocked(id, d)
}

// delivered is Deliver's callback: the frame of cmds reached the socket
// (ok) or the connection ended first.
func (r *Registry) delivered(id string, d *device, h Holder, cmds []Command, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.forgotten {
		return
	}
	if !ok {
		// Never written: back to pending, behind anything newer.
		var back []Command
		for _, c := range cmds {
			if d.pendingKey(c.Key) {
				r.ackLocked(id, c, Superseded)
				continue
			}
			back = append(back, c)
		}
		if len(back) > 0 {
			d.pending = append(back, d.pending...)
			r.persistLocked(id, d) // before "queued", as in Command
			if d.holder == nil || d.holder == h {
				for _, c := range back {
					r.ackLocked(id, c, Queued)
				}
			}
			r.flushLocked(id, d)
		}
		return
	}
	deadline := time.Now().Add(r.opts.ConfirmTimeout)
	if d.inflight == nil {
		d.inflight = make(map[string]inflight)
	}
	for _, c := range cmds {
		r.ackLocked(id, c, Written)
		if old, ok := d.inflight[c.Key]; ok {
			// A newer command for the key is on the wire, even with the
			// same value (a button tapped twice): a report now answers it,
			// so the older one ends unconfirmed instead of never ending.
			r.ackLocked(id, old.cmd, Unconfirmed)
		}
		d.inflight[c.Key] = inflight{cmd: c, deadline: deadline}
	}
	r.scheduleLocked(id, d)
}

func (d *device) pendingKey(key string) bool {
	for _, c := range d.pending {
		if c.Key == key {
			return true
		}
	}
	return false
}

// confirmLocked acks the in-flight commands that pairs, reported by the
// lamp, confirm.
func (r *Registry) confirmLocked(id string, d *device, pairs []Pair) {
	for _, p := range pairs {
		if f, ok := d.inflight[p.Key]; ok && f.cmd.Value.Text == p.Value.Text {
			r.ackLocked(id, f.cmd, Confirmed)
			delete(d.inflight, p.Key)
		}
	}
}

// scheduleLocked arms d's timer for the earliest of: the next frame the
// write rate allows, a confirmation deadline, a pending command's expiry.
func (r *Registry) scheduleLocked(id string, d *device) {
	if r.closed.Load() {
		return
	}
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	now := time.Now()
	// Only a flush held back by the write rate waits for a slot; one the
	// holder refused waits for Detach and the next Attach, not a timer
	// that would spin until then.
	if d.waitSlot && d.holder != nil && len(d.pending) > 0 && d.limiter != nil {
		res := d.limiter.ReserveN(now, 1)
		earlier(now.Add(res.DelayFrom(now)))
		res.CancelAt(now)
	}
	for _, f := range d.inflight {
		earlier(f.deadline)
	}
	for _, c := range d.pending {
		// Expiry runs on the wall clock of At, which survives restarts.
		earlier(now.Add(c.At.Add(r.opts.CommandTTL).Sub(r.opts.Now())))
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if next.IsZero() {
		return
	}
	d.timer = time.AfterFunc(max(next.Sub(now), 0), func() { r.tick(id, d) })
}

// tick runs when d's timer fires.
func (r *Registry) tick(id string, d *device) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.forgotten {
		return
	}
	now := time.Now()
	for k, f := range d.inflight {
		if !now.Before(f.deadline) {
			r.ackLocked(id, f.cmd, Unconfirmed)
			delete(d.inflight, k)
		}
	}
	wall := r.opts.Now()
	kept := d.pending[:0]
	for _, c := range d.pending {
		if !wall.Before(c.At.Add(r.opts.CommandTTL)) {
			r.ackLocked(id, c, Expired)
			continue
		}
		kept = append(kept, c)
	}
	if len(kept) != len(d.pending) {
		d.pending = kept
		r.persistLocked(id, d)
	}
	r.flushLocked(id, d)
}

// newLimiter is a lamp's write pacing: one frame per 1/MaxRate.
func (r *Registry) newLimiter() *rate.Limiter {
	if r.opts.MaxRate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r.opts.MaxRate), 1)
}

// load restores pending commands from the store.
func (r *Registry) load() error {
	return r.opts.Store.All(func(id string, data []byte) error {
		cmds, err := decodePending(data)
		if err != nil {
			// A record we can't read is a command we can't run; say so
			// and go on with the others.
			if r.opts.OnStoreError != nil {
				r.opts.OnStoreError(id, err)
			}
			return nil
		}
		if len(cmds) == 0 {
			return nil
		}
		d, err := r.lock(id, attach)
		if err != nil {
			return err
		}
		d.pending = cmds
		r.scheduleLocked(id, d)
		d.mu.Unlock()
		return nil
	})
}

// Close stops every device's timer, for good: no ack is given and no
// command is written or expired by the registry afterwards. Pending
// commands stay pending (and stored). The bridge closes the registry it
// made when it shuts down.
func (r *Registry) Close() {
	r.closed.Store(true)
	r.mu.Lock()
	devs := make([]*device, 0, len(r.devices))
	for _, d := range r.devices {
		devs = append(devs, d)
	}
	r.mu.Unlock()
	for _, d := range devs {
		d.mu.Lock()
		if d.timer != nil {
			d.timer.Stop()
			d.timer = nil
		}
		d.mu.Unlock()
	}
}
