package gateway

import (
	"github.com/lampgw/lampgw/hadiscovery"
)

// checkHADiscovery fills in and checks the Home Assistant discovery
// options, for New.
func checkHADiscovery(opts *Options) error {
	if !opts.HADiscovery {
		return nil
	}
	if opts.HAPrefix == "" {
		opts.HAPrefix = hadiscovery.DefaultPrefix
	}
	if err := hadiscovery.CheckPrefix(opts.HAPrefix, opts.TopicPrefix); err != nil {
		return &SettingError{Setting: "ha-prefix", Value: opts.HAPrefix, Err: err}
	}
	return nil
}

// startDiscoveryLocked starts Home Assistant discovery on bus, if it is
// enabled. It runs after the bridge exists and before the devices file is
// applied, so that the lamps the file declares are announced with their
// names.
func (g *Gateway) startDiscoveryLocked(bus hadiscovery.Bus) error {
	g.devs.Store(g.devices)
	if !g.opts.HADiscovery {
		return nil
	}
	d, err := hadiscovery.New(hadiscovery.Options{
		Bus:      bus,
		Prefix:   g.opts.TopicPrefix,
		HAPrefix: g.opts.HAPrefix,
		Lookup:   g.lookupDevice,
		Logger:   g.log.With().Str("component", "hadiscovery").Logger(),
	})
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		return err
	}
	g.disc = d
	return nil
}

// lookupDevice is what the devices file in force says about lamp id.
func (g *Gateway) lookupDevice(id string) hadiscovery.Info {
	c, _ := g.devs.Load().Lookup(id)
	return hadiscovery.Info{Name: c.Name, BrightnessMax: c.BrightnessMax}
}
