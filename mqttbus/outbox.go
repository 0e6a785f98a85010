package mqttbus

import (
	"container/list"
	"sync"
)

// DefaultBuffer is how many publishes Bus keeps while disconnected when
// Options.Buffer is 0.
const DefaultBuffer = 10000

// Message is one publish: a will, or a buffered publish.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// outbox holds publishes made while the connection is down, oldest
// first, for onConnect to send once it is back. A retained message
// replaces a buffered retained one for its topic, in its place: only
// the latest retained state is worth sending, and replacing keeps a
// lamp's reports from pushing out other lamps' while the broker is
// away. Past max the oldest message is dropped.
type outbox struct {
	mu       sync.Mutex
	up       bool // connected, and everything buffered was sent
	max      int  // < 1: buffer nothing
	q        list.List
	retained map[string]*list.Element
	dropped  int64
}

// add buffers m if the connection is not up, and reports whether it did;
// dropped is how many messages adding it pushed out (0 or 1).
func (o *outbox) add(m Message, force bool) (buffered bool, dropped int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.up && !force {
		return false, 0
	}
	if o.max < 1 {
		o.dropped++
		return true, 1
	}
	if m.Retain {
		if e, ok := o.retained[m.Topic]; ok {
			e.Value = m
			return true, 0
		}
	}
	if o.q.Len() >= o.max {
		old := o.q.Remove(o.q.Front()).(Message)
		if old.Retain && o.retained[old.Topic] != nil {
			delete(o.retained, old.Topic)
		}
		o.dropped++
		dropped = 1
	}
	e := o.q.PushBack(m)
	if m.Retain {
		if o.retained == nil {
			o.retained = make(map[string]*list.Element)
		}
		o.retained[m.Topic] = e
	}
	return true, dropped
}

// next takes the oldest buffered message, or marks the connection up
// and reports false when none is left.
func (o *outbox) next() (Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.q.Front()
	if e == nil {
		o.up = true
		return Message{}, false
	}
	m := o.q.Remove(e).(Message)
	if m.Retain && o.retained[m.Topic] == e {
		delete(o.retained, m.Topic)
	}
	return m, true
}

// putBack returns m, which could not be sent, to the front.
func (o *outbox) putBack(m Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m.Retain {
		if _, newer := o.retained[m.Topic]; newer {
			return // a newer retained state for the topic is buffered
		}
	}
	e := o.q.PushFront(m)
	if m.Retain {
		if o.retained == nil {
			o.retained = make(map[string]*list.Element)
		}
		o.retained[m.Topic] = e
	}
}

// down marks the connection lost: publishes buffer from now on.
func (o *outbox) down() {
	o.mu.Lock()
	o.up = false
	o.mu.Unlock()
}

// len and drops are for Buffered and BufferDropped.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.q.Len()
}

func (o *outbox) drops() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}
