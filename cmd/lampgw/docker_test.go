package main

// Checks of Dockerfile, .dockerignore, docker-compose.yml and the devices
// file it mounts, for what lampgw's side of them must agree with, without
// a Docker engine (CI has none). cmd/lampsim/docker_test.go checks the
// lamps' side.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/lampgw/lampgw/devices"
	"github.com/lampgw/lampgw/internal/deploytest"
)

// lampgwBin and lampsimBin are where the image holds the binaries.
const (
	lampgwBin  = "/lampgw"
	lampsimBin = "/lampsim"
)

func TestDockerDeploy(t *testing.T) {
	t.Parallel()
	if err := checkGatewayDeploy(deploytest.Root(t)); err != nil {
		t.Error(err)
	}
}

// TestDockerDeployChecksFail breaks a copy of the files, one way each,
// and wants checkGatewayDeploy to say so.
func TestDockerDeployChecksFail(t *testing.T) {
	t.Parallel()
	root := deploytest.Root(t)
	const (
		compose    = deploytest.ComposeFile
		dockerfile = deploytest.DockerfileName
	)
	replace := deploytest.Replace
	deploytest.CheckFails(t, root, checkGatewayDeploy, []deploytest.Break{
		{
			Name:    "compose file is not YAML",
			Changes: []deploytest.Change{replace(compose, "services:", "services: [")},
			WantErr: compose,
		},
		{
			Name:    "compose file has an unknown key",
			Changes: []deploytest.Change{replace(compose, "    restart: unless-stopped\n    # Anonymous", "    restart: unless-stopped\n    comand: [\"--help\"]\n    # Anonymous")},
			WantErr: "comand",
		},
		{
			Name:    "gateway command has an unknown flag",
			Changes: []deploytest.Change{replace(compose, `"--allow-anonymous"]`, `"--allow-anonymous", "--bogus"]`)},
			WantErr: "flag provided but not defined: -bogus",
		},
		{
			Name:    "gateway command has a bad value",
			Changes: []deploytest.Change{replace(compose, "LAMPGW_LOG_LEVEL: info", "LAMPGW_LOG_LEVEL: loud")},
			WantErr: "log-level",
		},
		{
			Name:    "a published port nothing listens on",
			Changes: []deploytest.Change{replace(compose, `"8083:8083"`, `"8084:8084"`)},
			WantErr: "publishes container port 8084",
		},
		{
			Name:    "a listener not published",
			Changes: []deploytest.Change{replace(compose, "      - \"7000:7000\" # lamps that dial in, raw TCP\n", "")},
			WantErr: "bridge-addr listens on 7000, which is not published",
		},
		{
			Name:    "a listener on loopback only",
			Changes: []deploytest.Change{replace(compose, "LAMPGW_LOG_FORMAT: json", "LAMPGW_LOG_FORMAT: json\n      LAMPGW_MQTT_ADDR: \"127.0.0.1:1883\"")},
			WantErr: "listens on 127.0.0.1 only",
		},
		{
			// The healthcheck reads the environment, not the
			// gateway's command: an address moved there is missed.
			Name: "http port moved on the command line only",
			Changes: []deploytest.Change{
				replace(compose, `"--allow-anonymous"]`, `"--allow-anonymous", "--http-addr", ":9090"]`),
				replace(compose, `"8080:8080"`, `"9090:9090"`),
			},
			WantErr: "healthcheck probes http://127.0.0.1:8080/healthz, want port 9090",
		},
		{
			Name:    "healthcheck probes another port",
			Changes: []deploytest.Change{replace(compose, `test: ["CMD", "/lampgw", "healthcheck"]`, `test: ["CMD", "/lampgw", "healthcheck", "--http-addr", ":9999"]`)},
			WantErr: "want port 8080",
		},
		{
			Name:    "healthcheck needs a shell",
			Changes: []deploytest.Change{replace(compose, `test: ["CMD", "/lampgw", "healthcheck"]`, `test: /lampgw healthcheck`)},
			WantErr: "CMD-SHELL",
		},
		{
			Name:    "healthcheck disabled",
			Changes: []deploytest.Change{replace(compose, `test: ["CMD", "/lampgw", "healthcheck"]`, `disable: true`)},
			WantErr: "no health check",
		},
		{
			Name:    "lamps do not wait for a healthy gateway",
			Changes: []deploytest.Change{replace(compose, "condition: service_healthy", "condition: service_started")},
			WantErr: "want depends_on gateway with condition service_healthy",
		},
		{
			Name:    "lamps dial the MQTT port",
			Changes: []deploytest.Change{replace(compose, `"gateway:7000"`, `"gateway:1883"`)},
			WantErr: "gateway:1883: lampsim wants the gateway's bridge-addr port 7000",
		},
		{
			Name:    "lamps dial a port the gateway does not listen on",
			Changes: []deploytest.Change{replace(compose, `"gateway:7000"`, `"gateway:7001"`)},
			WantErr: "gateway:7001: the gateway listens on no port 7001",
		},
		{
			Name:    "data dir not on a volume",
			Changes: []deploytest.Change{replace(compose, "      - lampgw-data:/data\n", "")},
			WantErr: "data-dir /data is not on a named volume",
		},
		{
			Name:    "devices file not mounted",
			Changes: []deploytest.Change{replace(compose, "      - ./deploy:/etc/lampgw:ro\n", "")},
			WantErr: "devices: /etc/lampgw/devices.yaml is not mounted",
		},
		{
			Name:    "devices file mounted writable",
			Changes: []deploytest.Change{replace(compose, "./deploy:/etc/lampgw:ro", "./deploy:/etc/lampgw")},
			WantErr: "mount it read-only",
		},
		{
			Name:    "devices file is another one",
			Changes: []deploytest.Change{replace(compose, `"--devices", "/etc/lampgw/devices.yaml"`, `"--devices", "/etc/lampgw/other.yaml"`)},
			WantErr: "no such file",
		},
		{
			Name:    "devices file does not load",
			Changes: []deploytest.Change{replace("deploy/devices.yaml", "dialect: text", "dialect: morse")},
			WantErr: "dialect: want text or json",
		},
		{
			Name:    "Dockerfile copies a missing file",
			Changes: []deploytest.Change{replace(dockerfile, "COPY go.mod go.sum ./", "COPY go.mod go.sum go.work ./")},
			WantErr: "COPY go.work: no such file in the build context",
		},
		{
			Name:    "Dockerfile copies a binary the build stage does not make",
			Changes: []deploytest.Change{replace(dockerfile, "-o /out/ ", "-o /bin/ ")},
			WantErr: "makes no such path",
		},
		{
			Name:    ".dockerignore leaves out Go sources",
			Changes: []deploytest.Change{replace(".dockerignore", "\ndocs\n", "\ndocs\ndevices\n")},
			WantErr: ".dockerignore leaves out devices/",
		},
		{
			Name:    "binaries not static",
			Changes: []deploytest.Change{replace(dockerfile, "RUN CGO_ENABLED=0 go build", "RUN go build")},
			WantErr: "CGO_ENABLED=0",
		},
		{
			Name:    "image HEALTHCHECK in shell form",
			Changes: []deploytest.Change{replace(dockerfile, `CMD ["/lampgw", "healthcheck"]`, `CMD /lampgw healthcheck`)},
			WantErr: "HEALTHCHECK",
		},
		{
			Name:    "image HEALTHCHECK times out before lampgw healthcheck",
			Changes: []deploytest.Change{replace(dockerfile, "--timeout=5s", "--timeout=2s")},
			WantErr: "--timeout=2s",
		},
		{
			Name:    "image runs as root",
			Changes: []deploytest.Change{replace(dockerfile, "USER 65532:65532", "USER root")},
			WantErr: "USER",
		},
		{
			Name:    "image exposes a port nothing listens on",
			Changes: []deploytest.Change{replace(dockerfile, "EXPOSE 1883 8083 8080 7000", "EXPOSE 1883 8083 8080 7000 9000")},
			WantErr: "EXPOSE",
		},
		{
			Name:    "image has no data volume",
			Changes: []deploytest.Change{replace(dockerfile, "VOLUME /data\n", "")},
			WantErr: "VOLUME",
		},
	})
}

// gatewayPorts are the ports a gateway container listens on, by setting.
type gatewayPorts map[string]int

func (g gatewayPorts) setting(port int) (string, bool) {
	for s, p := range g {
		if p == port {
			return s, true
		}
	}
	return "", false
}

// checkGatewayDeploy checks the deployment files in dir (a repository
// root) and returns every problem it finds.
func checkGatewayDeploy(dir string) error {
	d, err := deploytest.Load(dir)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := deploytest.CheckBuild(dir, d.Dockerfile); err != nil {
		errs = append(errs, err)
	}
	if err := checkGatewayImage(d.Dockerfile); err != nil {
		errs = append(errs, err)
	}

	gateways := map[string]gatewayPorts{}
	for _, c := range d.Services(lampgwBin) {
		ports, err := checkGatewayContainer(dir, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gateways[c.Service.Name] = ports
	}
	if len(d.Services(lampgwBin)) == 0 {
		bad("%s: no service runs %s", deploytest.ComposeFile, lampgwBin)
	}

	// Every host:port in another container's command that names a
	// gateway is a port it listens on, and the container waits for it.
	for _, name := range slices.Sorted(maps.Keys(d.Containers)) {
		c := d.Containers[name]
		if len(c.Argv) > 0 && c.Argv[0] == lampgwBin {
			continue
		}
		for _, arg := range c.Argv[1:] {
			if _, v, ok := strings.Cut(arg, "="); ok && strings.HasPrefix(arg, "-") {
				arg = v
			}
			host, p, err := net.SplitHostPort(arg)
			if err != nil {
				continue
			}
			gw := d.Resolve(host)
			if gw == nil || gw.Argv[0] != lampgwBin {
				continue
			}
			ports, ok := gateways[gw.Service.Name]
			if !ok {
				continue // its own problems are reported above
			}
			port, _ := strconv.Atoi(p)
			setting, ok := ports.setting(port)
			switch {
			case !ok:
				bad("service %s: %s: the gateway listens on no port %s (it listens on %v)", name, arg, p, ports)
			case c.Argv[0] == lampsimBin && setting != flagBridgeAddr:
				bad("service %s: %s: lampsim wants the gateway's %s port %d, not its %s port", name, arg, flagBridgeAddr, ports[flagBridgeAddr], setting)
			}
			if dep, ok := c.Service.DependsOn[gw.Service.Name]; !ok || dep.Condition != types.ServiceConditionHealthy {
				bad("service %s: talks to %s, so want depends_on %s with condition %s", name, arg, gw.Service.Name, types.ServiceConditionHealthy)
			}
		}
	}
	return errors.Join(errs...)
}

// checkGatewayImage checks the image the Dockerfile's last stage makes:
// what `docker run` of it alone gets.
func checkGatewayImage(df *deploytest.Dockerfile) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", deploytest.DockerfileName, fmt.Sprintf(format, args...)))
	}
	img := df.Final().Image
	for _, bin := range []string{lampgwBin, lampsimBin} {
		if _, ok := img.Files[bin]; !ok {
			bad("the image has no %s (it has %v)", bin, slices.Sorted(maps.Keys(img.Files)))
		}
	}
	for _, s := range df.Stages {
		for _, b := range s.GoBuilds {
			if b.Env["CGO_ENABLED"] != "0" {
				bad("line %d: go build without CGO_ENABLED=0: the binaries must be static for the distroless base", b.Line)
			}
		}
	}
	if img.EntrypointShell || !slices.Equal(img.Entrypoint, []string{lampgwBin}) {
		bad("ENTRYPOINT: got %q, want exec form [%q]", img.Entrypoint, lampgwBin)
	}
	if u, _, _ := strings.Cut(img.User, ":"); u == "" || u == "0" || u == "root" {
		bad("USER: got %q, want a non-root user", img.User)
	}

	// The image run as it is: its own listeners and health check.
	cfg, err := parseConfig(img.Cmd, func(k string) string { return img.Env[k] })
	if err != nil {
		bad("the image's default settings: %v", err)
		return errors.Join(errs...)
	}
	listen, err := listenPorts(cfg)
	if err != nil {
		bad("%v", err)
	}
	var want []int
	for _, p := range listen {
		want = append(want, p)
	}
	slices.Sort(want)
	exposed, err := deploytest.ExposedPorts(&img)
	if err != nil {
		bad("%v", err)
	} else if !slices.Equal(exposed, want) {
		bad("EXPOSE %v, want the ports lampgw listens on by default: %v", exposed, want)
	}
	if !slices.Contains(img.Volumes, cfg.DataDir) {
		bad("VOLUME %v, want the data-dir %s", img.Volumes, cfg.DataDir)
	}
	h := img.Healthcheck
	if h == nil {
		bad("no HEALTHCHECK")
		return errors.Join(errs...)
	}
	if !slices.Equal(h.Test, []string{"CMD", lampgwBin, cmdHealthcheck}) {
		bad("line %d: HEALTHCHECK: got %q, want exec form CMD [%q, %q]: the image has no shell", h.Line, h.Test, lampgwBin, cmdHealthcheck)
	}
	// Docker's default timeout is 30 s; a shorter one must leave lampgw
	// healthcheck time to give its own reason.
	if t := h.Flags["timeout"]; t != "" {
		if d, err := time.ParseDuration(t); err != nil || d <= healthcheckTimeout {
			bad("line %d: HEALTHCHECK --timeout=%s: want more than lampgw healthcheck's own %v", h.Line, t, healthcheckTimeout)
		}
	}
	if p, ok := listen[flagHTTPAddr]; ok {
		if err := checkProbe(h.Test, img.Env, p); err != nil {
			bad("HEALTHCHECK: %v", err)
		}
	}
	return errors.Join(errs...)
}

// checkGatewayContainer checks one compose service that runs lampgw and
// returns the ports it listens on.
func checkGatewayContainer(dir string, c *deploytest.Container) (gatewayPorts, error) {
	name := c.Service.Name
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: %s", name, fmt.Sprintf(format, args...)))
	}
	cfg, err := parseConfig(c.Argv[1:], c.Getenv)
	if err != nil {
		bad("flags %q and its environment: %v", c.Argv[1:], err)
		return nil, errors.Join(errs...)
	}
	listen, err := listenPorts(cfg)
	if err != nil {
		bad("%v", err)
	}

	published, err := c.Published()
	if err != nil {
		bad("%v", err)
	}
	for _, p := range published {
		if _, ok := listen.setting(p); !ok {
			bad("publishes container port %d, on which lampgw does not listen (it listens on %v)", p, listen)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(listen)) {
		if !slices.Contains(published, listen[s]) {
			bad("%s listens on %d, which is not published", s, listen[s])
		}
	}

	if len(c.Health) == 0 {
		bad("no health check: the lamps wait for the gateway to be healthy")
	} else if p, ok := listen[flagHTTPAddr]; !ok {
		bad("http-addr is off, so a health check has nothing to probe")
	} else if err := checkProbe(c.Health, c.Env, p); err != nil {
		bad("%v", err)
	}

	if m := c.Mount(cfg.DataDir); m == nil || m.Type != types.VolumeTypeVolume {
		bad("data-dir %s is not on a named volume: lampgw's data would go with the container", cfg.DataDir)
	}

	if cfg.DevicesFile != "" {
		if err := checkDevicesMount(dir, c, cfg.DevicesFile); err != nil {
			bad("%v", err)
		}
	}
	return listen, errors.Join(errs...)
}

// checkDevicesMount checks that the devices file the gateway reads at
// path is deploy/devices.yaml, mounted read-only, and that it loads.
func checkDevicesMount(dir string, c *deploytest.Container, path string) error {
	src, m, err := c.HostFile(path)
	if err != nil {
		return fmt.Errorf("%s: %v", flagDevices, err)
	}
	if want := filepath.Join(dir, filepath.FromSlash(deploytest.DevicesFile)); src != want {
		// cmd/lampsim's test checks the lamps of that file only.
		return fmt.Errorf("%s %s: mounts %s, want %s", flagDevices, path, src, want)
	}
	if !m.ReadOnly {
		return fmt.Errorf("%s %s: the gateway only reads it; mount it read-only (:ro)", flagDevices, path)
	}
	f, err := devices.LoadFile(src)
	if err != nil {
		return err
	}
	if len(f.Devices) == 0 {
		return fmt.Errorf("%s: no devices", src)
	}
	return nil
}

// checkProbe checks that the health check test (Docker's form) runs
// lampgw healthcheck, in exec form, and that with env it probes port on
// loopback.
func checkProbe(test []string, env map[string]string, port int) error {
	if len(test) < 3 || test[0] != "CMD" || test[1] != lampgwBin || test[2] != cmdHealthcheck {
		return fmt.Errorf("health check %q: want [\"CMD\", %q, %q, flags...]: exec form, since the image has no shell (CMD-SHELL needs one)", test, lampgwBin, cmdHealthcheck)
	}
	cfg, err := parseConfig(test[3:], func(k string) string { return env[k] })
	if err != nil {
		return fmt.Errorf("health check %q: %v", test, err)
	}
	if cfg.HTTPAddr == "" {
		return fmt.Errorf("health check %q: http-addr is off for it", test)
	}
	u, err := url.Parse(healthzURL(cfg.HTTPAddr))
	if err != nil {
		return err
	}
	if u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(port) {
		return fmt.Errorf("healthcheck probes %s, want port %d on 127.0.0.1, where lampgw's http-addr listens", u, port)
	}
	return nil
}

// listenPorts returns the port of every enabled listener of cfg, by
// setting, and an error for one that containers could not reach.
func listenPorts(cfg config) (gatewayPorts, error) {
	ports := gatewayPorts{}
	var errs []error
	for _, a := range []struct{ setting, addr string }{
		{flagMQTTAddr, cfg.MQTTAddr},
		{flagWSAddr, cfg.WSAddr},
		{flagHTTPAddr, cfg.HTTPAddr},
		{flagBridgeAddr, cfg.BridgeAddr},
	} {
		if a.addr == "" {
			continue
		}
		p, err := deploytest.ListenPort(a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", a.setting, err))
			continue
		}
		ports[a.setting] = p
	}
	return ports, errors.Join(errs...)
}
