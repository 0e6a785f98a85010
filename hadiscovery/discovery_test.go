package hadiscovery

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/internal/dispatch"
)

// fakeBus records publishes and lets a test deliver messages to the
// subscriptions synchronously. Subscribe replays the retained messages
// given to it beforehand, as a broker does.
type fakeBus struct {
	mu       sync.Mutex
	retained map[string]string
	subs     map[string]func(string, []byte, bool)
	unsubs   int
	pubs     []string // "topic payload", retained only
}

func newFakeBus() *fakeBus {
	return &fakeBus{retained: map[string]string{}, subs: map[string]func(string, []byte, bool){}}
}

func (b *fakeBus) Publish(topic string, payload []byte, qos byte, retain bool) error {
	if !retain || qos != 1 {
		return fmt.Errorf("publish %s: want retained at QoS 1, got retain %v qos %d", topic, retain, qos)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pubs = append(b.pubs, topic+" "+string(payload))
	return nil
}

func (b *fakeBus) Subscribe(filter string, _ byte, h func(string, []byte, bool)) (func(), error) {
	b.mu.Lock()
	b.subs[filter] = h
	var replay []string
	for topic := range b.retained {
		if dispatch.Match(filter, topic) {
			replay = append(replay, topic)
		}
	}
	b.mu.Unlock()
	for _, topic := range replay {
		h(topic, []byte(b.retained[topic]), true)
	}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, filter)
		b.unsubs++
	}, nil
}

// deliver hands a live message to the subscription whose filter matches.
func (b *fakeBus) deliver(topic, payload string) {
	b.mu.Lock()
	var h func(string, []byte, bool)
	for f, sub := range b.subs {
		if dispatch.Match(f, topic) {
			h = sub
		}
	}
	b.mu.Unlock()
	if h != nil {
		h(topic, []byte(payload), false)
	}
}

// take returns the topics published since the last take, with "(empty)"
// after those that were cleared.
func (b *fakeBus) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var got []string
	for _, p := range b.pubs {
		topic, payload, _ := strings.Cut(p, " ")
		if payload == "" {
			topic += " (empty)"
		}
		got = append(got, topic)
	}
	b.pubs = nil
	return got
}

func (b *fakeBus) expect(t *testing.T, step string, want ...string) {
	t.Helper()
	got := b.take()
	if strings.Join(sorted(got), "\n") != strings.Join(sorted(want), "\n") {
		t.Fatalf("%s: published\n%s\nwant\n%s", step, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

const (
	lightA  = "homeassistant/light/lampgw_a_light/config"
	sensorA = "homeassistant/sensor/lampgw_a_ambient/config"
	lightB  = "homeassistant/light/lampgw_b_light/config"
	sensorB = "homeassistant/sensor/lampgw_b_ambient/config"
	gateway = "homeassistant/binary_sensor/lampgw_status/config"
)

func start(t *testing.T, bus *fakeBus, lookup func(string) Info) *Discovery {
	t.Helper()
	d, err := New(Options{Bus: bus, Lookup: lookup, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestLampsComeAndGo(t *testing.T) {
	bus := newFakeBus()
	bus.retained["lamp/a/availability"] = "online"
	bus.retained["lamp/a/brightness"] = "5"
	start(t, bus, nil)
	bus.expect(t, "start: the gateway, and lamp a from the replay", gateway, lightA, sensorA)

	bus.deliver("lamp/a/availability", "offline")
	bus.expect(t, "a goes offline: nothing changed")
	bus.deliver("lamp/b/availability", "offline")
	bus.expect(t, "b is declared", lightB, sensorB)
	bus.deliver("lamp/b/error", "x")
	bus.expect(t, "not availability")

	bus.deliver("lamp/a/availability", "")
	bus.expect(t, "a is removed", lightA+" (empty)", sensorA+" (empty)")
	bus.deliver("lamp/a/availability", "")
	bus.expect(t, "a is removed again")

	bus.deliver("homeassistant/status", "offline")
	bus.expect(t, "Home Assistant's last will")
	bus.deliver("homeassistant/status", "online")
	bus.expect(t, "Home Assistant's birth: everything again", gateway, lightB, sensorB)
}

func TestDevicesChanged(t *testing.T) {
	var mu sync.Mutex
	infos := map[string]Info{"a": {Name: "Lamp A"}}
	lookup := func(id string) Info {
		mu.Lock()
		defer mu.Unlock()
		return infos[id]
	}
	set := func(id string, info Info) {
		mu.Lock()
		defer mu.Unlock()
		infos[id] = info
	}
	bus := newFakeBus()
	d := start(t, bus, lookup)
	bus.deliver("lamp/a/availability", "offline")
	bus.deliver("lamp/b/availability", "online")
	bus.take()

	d.DevicesChanged(nil)
	bus.expect(t, "reload without changes")

	set("a", Info{Name: "Kitchen"})
	d.DevicesChanged(nil)
	bus.expect(t, "a renamed: both its configs name the device", lightA, sensorA)

	set("b", Info{BrightnessMax: 255})
	d.DevicesChanged(nil)
	bus.expect(t, "b's brightness_max: only the light has a scale", lightB)

	d.DevicesChanged([]string{"a", "never-seen"})
	bus.expect(t, "a removed", lightA+" (empty)", sensorA+" (empty)")
	bus.deliver("lamp/a/availability", "")
	bus.expect(t, "the bridge clears a's availability")
}

func TestClose(t *testing.T) {
	bus := newFakeBus()
	d := start(t, bus, nil)
	bus.deliver("lamp/a/availability", "online")
	bus.take()
	d.Close()
	if bus.unsubs != 2 || len(bus.subs) != 0 {
		t.Fatalf("after Close: got %d unsubscribes and %d subscriptions left, want 2 and 0", bus.unsubs, len(bus.subs))
	}
	d.DevicesChanged([]string{"a"})
	bus.expect(t, "DevicesChanged after Close")
	if err := d.Start(); !errors.Is(err, ErrStarted) {
		t.Fatalf("Start after Start: got %v, want ErrStarted", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want error
	}{
		{"no bus", Options{}, ErrNoBus},
		{"HA prefix in the lamp prefix", Options{Bus: newFakeBus(), Prefix: "home", HAPrefix: "home/ha"}, ErrBadPrefix},
		{"HA prefix is lampgw", Options{Bus: newFakeBus(), HAPrefix: "lampgw"}, ErrBadPrefix},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
