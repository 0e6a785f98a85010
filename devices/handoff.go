package devices

// Hand-off between registries: several bridges on one broker cluster
// (package cluster) keep a lamp's pending commands in the broker, so the
// registry that holds the lamp now can take them over from the one that
// held it before.

// Restore merges a pending-commands record written by another registry
// (a Store's record, as Store.Put received it) into id's pending
// commands: per key, the command that arrived last wins, and a command
// already pending or in flight here (same key, request id and arrival
// time) is not taken twice. Taken commands are written if the lamp is
// online. A record that does not decode is an error and changes nothing.
func (r *Registry) Restore(id string, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	cmds, err := decodePending(data)
	if err != nil {
		return err
	}
	d, err := r.lock(id, command)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	var newer []Command
	for _, c := range cmds {
		if !d.knowsLocked(c) && !d.newerPendingLocked(c) {
			newer = append(newer, c)
		}
	}
	if len(newer) == 0 {
		return nil
	}
	// queueLocked supersedes the older pending command for each key.
	r.queueLocked(id, d, newer)
	r.flushLocked(id, d)
	r.persistLocked(id, d)
	return nil
}

// newerPendingLocked reports whether a command for c's key that arrived
// after c is pending on d.
func (d *device) newerPendingLocked(c Command) bool {
	for _, p := range d.pending {
		if p.Key == c.Key && p.At.After(c.At) {
			return true
		}
	}
	return false
}

// knowsLocked reports whether c is pending or in flight on d already.
func (d *device) knowsLocked(c Command) bool {
	same := func(o Command) bool { return o.Key == c.Key && o.RID == c.RID && o.At.Equal(c.At) }
	for _, p := range d.pending {
		if same(p) {
			return true
		}
	}
	if f, ok := d.inflight[c.Key]; ok && same(f.cmd) {
		return true
	}
	return false
}

// Release forgets id without ending its commands: another registry holds
// the lamp now and has taken its pending commands from the Store, so
// nothing is acked, expired or deleted from the Store here. It returns
// the holder, which the caller should close; its Detach then finds no
// device and announces nothing. It reports false if id was not known.
func (r *Registry) Release(id string) (Holder, bool) {
	return r.take(id, func(d *device) {
		d.forgotten = true
		d.pending, d.inflight = nil, nil
		if d.timer != nil {
			d.timer.Stop()
			d.timer = nil
		}
	})
}
