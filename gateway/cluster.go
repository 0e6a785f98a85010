package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"sync/atomic"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/cluster"
	"github.com/lampgw/lampgw/mqttbus"
	"github.com/lampgw/lampgw/topics"
)

// checkCluster refuses settings that need the embedded broker when the
// broker is an external one (Options.BrokerURL), and a bad instance id.
func checkCluster(opts *Options) error {
	if opts.BrokerURL == "" {
		return nil
	}
	if err := cluster.CheckInstance(opts.InstanceID); err != nil {
		return &SettingError{Setting: "instance-id", Value: opts.InstanceID, Err: errors.Unwrap(err)}
	}
	for _, s := range []struct{ name, value string }{
		{"mqtt-addr", opts.MQTTAddr}, {"ws-addr", opts.WSAddr},
		{"mqtts-addr", opts.MQTTSAddr}, {"wss-addr", opts.WSSAddr},
		{"data-dir", opts.DataDir},
	} {
		if s.value != "" {
			return &SettingError{Setting: s.name, Value: s.value,
				Err: errors.New("needs the embedded broker, and --broker-url replaces it: apps connect to that broker, which keeps the state")}
		}
	}
	return nil
}

// connectClusterLocked connects to the external broker as one instance
// of the cluster (package cluster) and returns the bus the bridge uses.
func (g *Gateway) connectClusterLocked() (bridge.Bus, error) {
	var tlsConf *tls.Config
	if g.opts.BrokerCAFile != "" {
		pem, err := os.ReadFile(g.opts.BrokerCAFile)
		if err != nil {
			return nil, &SettingError{Setting: "broker-ca", Value: g.opts.BrokerCAFile, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &SettingError{Setting: "broker-ca", Value: g.opts.BrokerCAFile, Err: errors.New("no PEM certificate in it")}
		}
		tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// The coordinator needs the bus, and the bus's reconnection hook the
	// coordinator.
	var coord atomic.Pointer[cluster.Coordinator]
	inst := g.opts.InstanceID
	bus, err := mqttbus.New(mqttbus.Options{
		Broker:    g.opts.BrokerURL,
		ClientID:  "lampgw-" + inst,
		Username:  g.opts.BrokerUsername,
		Password:  g.opts.BrokerPassword,
		TLSConfig: tlsConf,
		KeepAlive: g.opts.BrokerKeepAlive,
		Buffer:    g.opts.BrokerBuffer,
		Will:      mqttbus.Message{Topic: cluster.StatusTopic(inst), Payload: []byte(topics.Offline), QoS: 1, Retain: true},
		OnConnect: func() {
			if c := coord.Load(); c != nil {
				c.Reconnected()
			}
		},
		Logger: g.log.With().Str("component", "mqttbus").Logger(),
	})
	if err != nil {
		return nil, &SettingError{Setting: "broker-url", Err: err}
	}
	c, err := cluster.New(cluster.Options{
		Bus:      bus,
		Instance: inst,
		Prefix:   g.opts.TopicPrefix,
		Logger:   g.log.With().Str("component", "cluster").Logger(),
	})
	if err != nil {
		bus.Close()
		return nil, err
	}
	coord.Store(c)
	g.ext, g.coord = bus, c
	g.log.Info().Str("instance", inst).Str("broker", bus.Broker()).Msg("cluster mode: no embedded broker; lamp state and commands go through the external broker")
	return bus, nil
}

// leaveCluster says this instance is offline, so the others adopt its
// lamps, and disconnects. Both may be nil; it is idempotent.
func leaveCluster(c *cluster.Coordinator, bus *mqttbus.Bus) {
	if c != nil {
		c.Close()
	}
	if bus != nil {
		bus.Close()
	}
}
