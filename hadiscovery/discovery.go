package hadiscovery

import (
	"crypto/sha256"
	"sync"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/topics"
)

// Bus is what Discovery needs from an MQTT broker: the subset of the
// bridge's Bus (bridge/bus.go), with the same contract, which the
// embedded broker's InlineBus satisfies.
type Bus interface {
	Publish(topic string, payload []byte, qos byte, retain bool) error
	Subscribe(filter string, qos byte, handler func(topic string, payload []byte, retained bool)) (unsubscribe func(), err error)
}

// qos of every config: a retained config is published rarely and must
// reach Home Assistant.
const qos = 1

// Options configure a Discovery.
type Options struct {
	// Bus carries the lamps' availability in and the configs out.
	// Required.
	Bus Bus
	// Prefix is the lamp topic prefix; "" means topics.DefaultPrefix.
	Prefix string
	// HAPrefix is Home Assistant's discovery prefix; "" means
	// DefaultPrefix. It must pass CheckPrefix.
	HAPrefix string
	// Lookup returns what the devices file says about a lamp; nil, or a
	// zero Info, means nothing (named after its id, the default
	// brightness_max). It is called on Discovery's goroutines and must be
	// safe for concurrent use.
	Lookup func(id string) Info
	// Logger receives lifecycle and publish failure lines.
	Logger zerolog.Logger
}

func (o *Options) ensureDefaults() {
	if o.Prefix == "" {
		o.Prefix = topics.DefaultPrefix
	}
	if o.HAPrefix == "" {
		o.HAPrefix = DefaultPrefix
	}
	if o.Lookup == nil {
		o.Lookup = func(string) Info { return Info{} }
	}
}

// Discovery publishes and clears the Home Assistant configs of the lamps
// it learns of on the bus (see the package doc). Its methods are safe for
// concurrent use.
type Discovery struct {
	opts Options
	log  zerolog.Logger

	// mu orders every publish with the state it records, so that the
	// last config published on a topic is the one in lamps.
	mu      sync.Mutex
	started bool
	closed  bool
	unsubs  []func()
	// lamps holds digests of the configs last published for each known
	// lamp. Digests, not the configs: the broker keeps the retained
	// configs, and a copy here cost each lamp about 2 KB more (the
	// encoder's buffers).
	lamps map[string]lampConfigs
}

type lampConfigs struct{ light, sensor [sha256.Size]byte }

// New checks opts and returns a Discovery that does nothing until Start.
func New(opts Options) (*Discovery, error) {
	opts.ensureDefaults()
	if opts.Bus == nil {
		return nil, ErrNoBus
	}
	if err := topics.CheckPrefix(opts.Prefix); err != nil {
		return nil, err
	}
	if err := CheckPrefix(opts.HAPrefix, opts.Prefix); err != nil {
		return nil, err
	}
	return &Discovery{opts: opts, log: opts.Logger, lamps: make(map[string]lampConfigs)}, nil
}

// Start publishes the gateway's config and subscribes to every lamp's
// availability and to Home Assistant's status. Lamps already known to the
// broker (their availability is retained) get their configs from the
// replay of the subscription, before Start returns or soon after.
func (d *Discovery) Start() error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return ErrStarted
	}
	d.started = true
	d.publishLocked(GatewayTopic(d.opts.HAPrefix), GatewayConfig())
	d.mu.Unlock()

	// Subscribe without d.mu: the replay feeds the handlers, which take
	// it, and a long replay waits for them.
	for _, s := range []struct {
		filter  string
		handler func(string, []byte, bool)
	}{
		{StatusTopic(d.opts.HAPrefix), d.onStatus},
		{topics.Availability(d.opts.Prefix, "+"), d.onAvailability},
	} {
		unsub, err := d.opts.Bus.Subscribe(s.filter, qos, s.handler)
		if err != nil {
			d.Close()
			return err
		}
		d.mu.Lock()
		closed := d.closed
		if !closed {
			d.unsubs = append(d.unsubs, unsub)
		}
		d.mu.Unlock()
		if closed {
			unsub()
			return nil
		}
	}
	d.log.Info().Str("ha_prefix", d.opts.HAPrefix).Msg("Home Assistant discovery started")
	return nil
}

// Close ends the subscriptions; configs stay retained, so that Home
// Assistant keeps the entities (unavailable while lampgw is down). After
// Close, Discovery publishes nothing.
func (d *Discovery) Close() {
	d.mu.Lock()
	d.closed = true
	unsubs := d.unsubs
	d.unsubs = nil
	d.mu.Unlock()
	for _, u := range unsubs {
		u()
	}
}

// DevicesChanged is the hook for a devices file reload, called after the
// bridge applied it. The lamps in removed are gone: their configs are
// cleared now, ahead of the empty availability the bridge published for
// them, so that Home Assistant never sees them renamed on their way out.
// Every other known lamp's configs are rendered again with Lookup and
// published where they changed: a new name or brightness_max.
func (d *Discovery) DevicesChanged(removed []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range removed {
		d.forgetLocked(id)
	}
	for id := range d.lamps {
		d.announceLocked(id, false)
	}
}

// onAvailability learns of lamps: any availability means the lamp exists,
// an empty one (the bridge's clearing of a removed lamp's retained
// topics) that it is gone. A known lamp coming and going changes nothing
// (what Lookup says changes only with the devices file, which
// DevicesChanged handles), so that a fleet reconnecting at once costs a
// map lookup per lamp.
func (d *Discovery) onAvailability(topic string, payload []byte, _ bool) {
	t, err := topics.Parse(d.opts.Prefix, topic)
	if err != nil || t.Kind != topics.KindAvailability {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, known := d.lamps[t.Device]
	switch {
	case len(payload) == 0:
		d.forgetLocked(t.Device)
	case !known:
		d.announceLocked(t.Device, false)
	}
}

// onStatus re-publishes every config when Home Assistant comes online.
func (d *Discovery) onStatus(_ string, payload []byte, _ bool) {
	if string(payload) != topics.Online {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log.Info().Int("lamps", len(d.lamps)).Msg("Home Assistant online: publishing discovery configs")
	d.publishLocked(GatewayTopic(d.opts.HAPrefix), GatewayConfig())
	for id := range d.lamps {
		d.announceLocked(id, true)
	}
}

// announceLocked publishes id's configs that differ from those last
// published, or all of them if force is set.
func (d *Discovery) announceLocked(id string, force bool) {
	info := d.opts.Lookup(id)
	light, sensor := LightConfig(d.opts.Prefix, id, info), SensorConfig(d.opts.Prefix, id, info)
	now := lampConfigs{light: sha256.Sum256(light), sensor: sha256.Sum256(sensor)}
	was, known := d.lamps[id]
	if force || !known || was.light != now.light {
		d.publishLocked(LightTopic(d.opts.HAPrefix, id), light)
	}
	if force || !known || was.sensor != now.sensor {
		d.publishLocked(SensorTopic(d.opts.HAPrefix, id), sensor)
	}
	d.lamps[id] = now
}

// forgetLocked clears id's configs with empty retained payloads: "To
// remove the component, publish an empty string to the discovery topic"
// (https://www.home-assistant.io/integrations/mqtt/#single-component-discovery-payload).
func (d *Discovery) forgetLocked(id string) {
	if _, ok := d.lamps[id]; !ok {
		return
	}
	delete(d.lamps, id)
	d.publishLocked(LightTopic(d.opts.HAPrefix, id), nil)
	d.publishLocked(SensorTopic(d.opts.HAPrefix, id), nil)
	d.log.Info().Str("device", id).Msg("Home Assistant configs cleared")
}

func (d *Discovery) publishLocked(topic string, payload []byte) {
	if d.closed {
		return
	}
	if err := d.opts.Bus.Publish(topic, payload, qos, true); err != nil {
		d.log.Warn().Err(err).Str("topic", topic).Msg("discovery publish failed")
		return
	}
	d.log.Debug().Str("topic", topic).Int("bytes", len(payload)).Msg("discovery config published")
}
