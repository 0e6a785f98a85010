package main

// Checks of docker-compose.yml and deploy/devices.yaml for what lampsim's
// side of them must agree with, without a Docker engine (CI has none).
// cmd/lampgw/docker_test.go checks the gateway's side and the Dockerfile.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/deploytest"
)

// Where the image holds the binaries.
const (
	lampsimBin = "/lampsim"
	lampgwBin  = "/lampgw"
)

func TestDockerLamps(t *testing.T) {
	t.Parallel()
	if err := checkLampsDeploy(deploytest.Root(t)); err != nil {
		t.Error(err)
	}
}

// TestDockerLampsChecksFail breaks a copy of the files, one way each, and
// wants checkLampsDeploy to say so.
func TestDockerLampsChecksFail(t *testing.T) {
	t.Parallel()
	root := deploytest.Root(t)
	const (
		compose = deploytest.ComposeFile
		devs    = deploytest.DevicesFile
	)
	replace := deploytest.Replace
	deploytest.CheckFails(t, root, checkLampsDeploy, []deploytest.Break{
		{
			Name:    "unknown flag",
			Changes: []deploytest.Change{replace(compose, `"--count", "3"`, `"--lamps", "3"`)},
			WantErr: "flag provided but not defined: -lamps",
		},
		{
			Name:    "bad value",
			Changes: []deploytest.Change{replace(compose, `"--count", "3"`, `"--count", "three"`)},
			WantErr: "invalid value \"three\" for flag -count",
		},
		{
			Name:    "bad value in the environment",
			Changes: []deploytest.Change{replace(compose, "    entrypoint: [\"/lampsim\"]\n    command: [\"--gateway\"", "    entrypoint: [\"/lampsim\"]\n    environment:\n      LAMPSIM_DIALECT: morse\n    command: [\"--gateway\"")},
			WantErr: "dialect: must be text or json, got \"morse\"",
		},
		{
			Name:    "dials a host that is no service",
			Changes: []deploytest.Change{replace(compose, `"gateway:7000"`, `"gatway:7000"`)},
			WantErr: "gatway:7000: no service is called gatway",
		},
		{
			Name:    "dials a service that is no gateway",
			Changes: []deploytest.Change{replace(compose, `"gateway:7000"`, `"esp-lamp:7000"`)},
			WantErr: "esp-lamp runs /lampsim, not /lampgw",
		},
		{
			Name:    "listens on loopback only",
			Changes: []deploytest.Change{replace(compose, `"0.0.0.0:8888"`, `"127.0.0.1:8888"`)},
			WantErr: "listens on 127.0.0.1 only",
		},
		{
			Name:    "serves a lamp no device dials",
			Changes: []deploytest.Change{replace(compose, `"--count", "1"`, `"--count", "2"`)},
			WantErr: "esp-lamp:8889 serves lamp 2, but no device in deploy/devices.yaml dials it",
		},
		{
			Name:    "device dials a port nothing serves",
			Changes: []deploytest.Change{replace(devs, "esp-lamp:8888", "esp-lamp:8887")},
			WantErr: "dial esp-lamp:8887: esp-lamp serves ports 8888..8888",
		},
		{
			Name:    "device dials a host that is no service",
			Changes: []deploytest.Change{replace(devs, "esp-lamp:8888", "esp:8888")},
			WantErr: "dial esp:8888: no service is called esp",
		},
		{
			Name:    "device dials a lamp that dials in",
			Changes: []deploytest.Change{replace(devs, "esp-lamp:8888", "lamps:8888")},
			WantErr: "lamps dials in (--gateway)",
		},
		{
			Name:    "device and lamp disagree on brightness_max",
			Changes: []deploytest.Change{replace(devs, "brightness_max: 1023", "brightness_max: 255")},
			WantErr: "brightness_max 255, but the lamp's --brightness-max is 1023",
		},
		{
			Name:    "devices file does not load",
			Changes: []deploytest.Change{replace(devs, "id: esp-1", "id: esp 1")},
			WantErr: "id: want 1 to 64",
		},
		{
			Name:    "inherits the gateway's health check",
			Changes: []deploytest.Change{replace(compose, "    command: [\"--listen\", \"0.0.0.0:8888\", \"--count\", \"1\", \"--id-prefix\", \"esp-\"]\n    healthcheck:\n      disable: true # the image's check probes a gateway, which this is not\n", "    command: [\"--listen\", \"0.0.0.0:8888\", \"--count\", \"1\", \"--id-prefix\", \"esp-\"]\n")},
			WantErr: "service esp-lamp: health check [\"CMD\" \"/lampgw\" \"healthcheck\"]",
		},
		{
			Name:    "image has no lampsim",
			Changes: []deploytest.Change{replace(deploytest.DockerfileName, "COPY --from=build /out/lampgw /out/lampsim /", "COPY --from=build /out/lampgw /")},
			WantErr: "the image has no /lampsim",
		},
	})
}

// served is one lampsim service in server mode: lamp i+1 on port first+i.
type served struct {
	first, count int
	opts         options
	dialed       map[int]bool
}

// checkLampsDeploy checks the lampsim services of the compose file in dir
// (a repository root) and the devices file the gateway dials them by,
// and returns every problem it finds.
func checkLampsDeploy(dir string) error {
	d, err := deploytest.Load(dir)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, ok := d.Dockerfile.Final().Image.Files[lampsimBin]; !ok {
		bad("%s: the image has no %s", deploytest.DockerfileName, lampsimBin)
	}
	sims := d.Services(lampsimBin)
	if len(sims) == 0 {
		bad("%s: no service runs %s", deploytest.ComposeFile, lampsimBin)
	}
	servers := map[string]*served{}
	for _, c := range sims {
		name := c.Service.Name
		o, err := parseArgs(c.Argv[1:], c.Getenv)
		if err != nil {
			bad("service %s: flags %q and its environment: %v", name, c.Argv[1:], err)
			continue
		}
		// The image's HEALTHCHECK runs lampgw healthcheck, which would
		// call a lampsim container unhealthy for ever.
		if c.Health != nil {
			bad("service %s: health check %q: lampsim serves no /healthz; disable it (healthcheck: disable: true)", name, c.Health)
		}
		if o.Gateway != "" {
			host, _, _ := net.SplitHostPort(o.Gateway)
			switch gw := d.Resolve(host); {
			case gw == nil:
				bad("service %s: --%s %s: no service is called %s", name, flagGateway, o.Gateway, host)
			case gw.Argv[0] != lampgwBin:
				// The port is the gateway test's to check.
				bad("service %s: --%s %s: %s runs %s, not %s", name, flagGateway, o.Gateway, host, gw.Argv[0], lampgwBin)
			}
			continue
		}
		first, err := deploytest.ListenPort(o.Listen)
		if err != nil {
			bad("service %s: --%s: %v", name, flagListen, err)
			continue
		}
		s := &served{first: first, count: o.Sim.Count, opts: o, dialed: map[int]bool{}}
		servers[name] = s
		published, err := c.Published()
		if err != nil {
			bad("%v", err)
		}
		for _, p := range published {
			if p < s.first || p >= s.first+s.count {
				bad("service %s: publishes container port %d; its lamps listen on %d..%d", name, p, s.first, s.first+s.count-1)
			}
		}
	}

	// Every dial target of the devices file is a lamp some lampsim
	// serves, and every served lamp is dialed: no one else would.
	f, err := devices.LoadFile(filepath.Join(dir, filepath.FromSlash(deploytest.DevicesFile)))
	if err != nil {
		bad("%v", err)
	} else {
		for _, dev := range f.Devices {
			if dev.Dial == "" {
				continue
			}
			where := fmt.Sprintf("%s:%d: device %s: dial %s", deploytest.DevicesFile, dev.Line, dev.ID, dev.Dial)
			host, p, _ := net.SplitHostPort(dev.Dial)
			port, _ := strconv.Atoi(p)
			c := d.Resolve(host)
			if c == nil {
				bad("%s: no service is called %s", where, host)
				continue
			}
			s, ok := servers[c.Service.Name]
			if !ok {
				if c.Argv[0] == lampsimBin {
					bad("%s: %s dials in (--%s), it does not listen", where, host, flagGateway)
				} else {
					bad("%s: %s runs %s, which is no lamp", where, host, c.Argv[0])
				}
				continue
			}
			if port < s.first || port >= s.first+s.count {
				bad("%s: %s serves ports %d..%d", where, host, s.first, s.first+s.count-1)
				continue
			}
			s.dialed[port] = true
			want := dev.BrightnessMax
			if want == 0 {
				want = devices.DefaultBrightnessMax
			}
			if got := s.opts.Sim.BrightnessMax; got != want {
				bad("%s: brightness_max %d, but the lamp's --%s is %d", where, want, flagBrightnessMax, got)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		s := servers[name]
		if f == nil {
			break // its error says enough
		}
		for i := range s.count {
			if !s.dialed[s.first+i] {
				bad("service %s: %s:%d serves lamp %d, but no device in %s dials it", name, name, s.first+i, i+1, deploytest.DevicesFile)
			}
		}
	}
	return errors.Join(errs...)
}
