package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// MosquittoOptions configure StartMosquitto.
type MosquittoOptions struct {
	// Dir holds the generated mosquitto.conf; "" means a new directory
	// under os.TempDir that the caller may remove (tests pass t.TempDir).
	Dir string
	// Port is the loopback port to listen on; 0 means a free one. A test
	// restarting a broker where its clients expect it gives the old one.
	Port int
	// Config is appended to the generated configuration (a listener on
	// a free loopback port, anonymous access, no persistence, log to
	// stderr), e.g. "max_queued_messages 10000\n".
	Config string
}

// StartMosquitto runs Debian's mosquitto on a free loopback port and
// returns once it accepts connections.
func StartMosquitto(ctx context.Context, opts MosquittoOptions) (*Proc, error) {
	path, err := lookBinary("mosquitto")
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "lampgw-mosquitto-"); err != nil {
			return nil, err
		}
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	config := "listener " + strconv.Itoa(port) + " 127.0.0.1\n" +
		"allow_anonymous true\npersistence false\nlog_dest stderr\n" + opts.Config
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("engine: mosquitto config: %w", err)
	}
	return start(ctx, "mosquitto", "127.0.0.1:"+strconv.Itoa(port), path, "-c", conf)
}
