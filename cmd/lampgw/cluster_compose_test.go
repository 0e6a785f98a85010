package main

// Checks of deploy/compose.cluster.yml and deploy/haproxy.cfg, the
// cluster-mode recipe of docs/scale-out.md, without a Docker engine: the
// compose file loads as `docker compose` would, every lampgw command line
// is one lampgw's own parser accepts, and HAProxy balances exactly the
// lampgw services, on their bridge port, checked on their HTTP port.

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/lampgw/lampgw/internal/deploytest"
)

const (
	clusterCompose = "deploy/compose.cluster.yml"
	haproxyConfig  = "deploy/haproxy.cfg"
	// haproxyConfigPath is where the haproxy image reads its config.
	haproxyConfigPath = "/usr/local/etc/haproxy/haproxy.cfg"
)

// clusterFlags are the cluster-mode flags (issue 8), each taking a value.
var clusterFlags = []string{"broker-url", "broker-username", "broker-password", "broker-ca", "instance-id", "broker-keepalive", "broker-buffer"}

func TestClusterDeploy(t *testing.T) {
	t.Parallel()
	if err := checkClusterDeploy(deploytest.Root(t)); err != nil {
		t.Error(err)
	}
	if missingClusterFlags() {
		t.Log("lampgw has no --broker-url yet: the cluster flags were left out of the parse, the rest checked")
	}
}

// missingClusterFlags reports whether lampgw's flag set lacks the cluster
// flags; this test was written while they were being added.
func missingClusterFlags() bool {
	cfg := defaultConfig()
	return newFlagSet(&cfg).Lookup("broker-url") == nil
}

func TestClusterDeployChecksFail(t *testing.T) {
	t.Parallel()
	replace := deploytest.Replace
	deploytest.CheckFails(t, deploytest.Root(t), checkClusterDeploy, []deploytest.Break{
		{
			Name:    "compose file has an unknown key",
			Changes: []deploytest.Change{replace(clusterCompose, "    <<: *lampgw\n    command:", "    <<: *lampgw\n    comand: []\n    command:")},
			WantErr: "comand",
		},
		{
			Name:    "an instance has an unknown flag",
			Changes: []deploytest.Change{replace(clusterCompose, `"--instance-id", "lampgw2"`, `"--instance-id", "lampgw2", "--bogus"`)},
			WantErr: "flag provided but not defined: -bogus",
		},
		{
			Name:    "two instances with one id",
			Changes: []deploytest.Change{replace(clusterCompose, `"--instance-id", "lampgw2"`, `"--instance-id", "lampgw1"`)},
			WantErr: `instance id "lampgw1" twice`,
		},
		{
			Name:    "an instance without a broker",
			Changes: []deploytest.Change{replace(clusterCompose, `"--broker-url", "mqtt://emqx2:1883", `, ``)},
			WantErr: "lampgw2: no --broker-url",
		},
		{
			Name:    "broker URL names no service",
			Changes: []deploytest.Change{replace(clusterCompose, "mqtt://emqx2:1883", "mqtt://emqx9:1883")},
			WantErr: "emqx9 is no EMQX service",
		},
		{
			Name:    "broker URL of another scheme",
			Changes: []deploytest.Change{replace(clusterCompose, "mqtt://emqx2:1883", "tcp://emqx2:1883")},
			WantErr: "scheme",
		},
		{
			Name:    "an instance with an MQTT listener",
			Changes: []deploytest.Change{replace(clusterCompose, `      LAMPGW_DATA_DIR: ""`, "      LAMPGW_DATA_DIR: \"\"\n      LAMPGW_MQTT_ADDR: \":1883\"")},
			WantErr: "mqtt-addr",
		},
		{
			Name:    "backend on the MQTT port",
			Changes: []deploytest.Change{replace(haproxyConfig, "server lampgw2 lampgw2:7000", "server lampgw2 lampgw2:1883")},
			WantErr: "lampgw2:1883: want its bridge-addr port 7000",
		},
		{
			Name:    "backend server that is no lampgw service",
			Changes: []deploytest.Change{replace(haproxyConfig, "server lampgw2 lampgw2:7000", "server lampgw2 lampgw3:7000")},
			WantErr: "lampgw3 is no lampgw service",
		},
		{
			Name:    "an instance left out of the backend",
			Changes: []deploytest.Change{replace(haproxyConfig, "    server lampgw2 lampgw2:7000\n", "")},
			WantErr: "lampgw2 is in no backend server line",
		},
		{
			Name:    "health check on another port",
			Changes: []deploytest.Change{replace(haproxyConfig, "check port 8080", "check port 8081")},
			WantErr: "checks port 8081, want its http-addr port 8080",
		},
		{
			Name:    "health check of liveness only",
			Changes: []deploytest.Change{replace(haproxyConfig, "option httpchk GET /readyz", "option httpchk GET /healthz")},
			WantErr: "/readyz",
		},
		{
			Name:    "round robin",
			Changes: []deploytest.Change{replace(haproxyConfig, "balance leastconn", "balance roundrobin")},
			WantErr: "balance leastconn",
		},
		{
			Name:    "HTTP mode",
			Changes: []deploytest.Change{replace(haproxyConfig, "    mode tcp\n", "    mode http\n")},
			WantErr: "mode tcp",
		},
		{
			Name:    "config not mounted where haproxy reads it",
			Changes: []deploytest.Change{replace(clusterCompose, ":/usr/local/etc/haproxy/haproxy.cfg:ro", ":/etc/haproxy.cfg:ro")},
			WantErr: "mounts no " + haproxyConfig,
		},
		{
			Name:    "lamps dial the balancer on another port",
			Changes: []deploytest.Change{replace(clusterCompose, `"haproxy:7000"`, `"haproxy:7001"`)},
			WantErr: "haproxy:7001",
		},
	})
}

// clusterInstance is one lampgw service of the cluster compose file.
type clusterInstance struct {
	name   string
	argv   []string
	env    map[string]string
	health []string
	cfg    config
	ports  gatewayPorts
}

// checkClusterDeploy checks the cluster recipe in dir (a repository root)
// and returns every problem it finds.
func checkClusterDeploy(dir string) error {
	p, err := deploytest.LoadCompose(filepath.Join(dir, filepath.FromSlash(clusterCompose)))
	if err != nil {
		return err
	}
	df, err := deploytest.ParseDockerfile(filepath.Join(dir, deploytest.DockerfileName))
	if err != nil {
		return err
	}
	img := df.Final().Image
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	built := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Build == nil {
			continue
		}
		if filepath.Clean(s.Build.Context) != filepath.Clean(dir) || (s.Build.Dockerfile != "" && s.Build.Dockerfile != deploytest.DockerfileName) {
			bad("service %s: builds %s in %s, want the repository's %s", name, s.Build.Dockerfile, s.Build.Context, deploytest.DockerfileName)
		}
		built[s.Image] = true
	}

	var (
		instances []*clusterInstance
		ids       = map[string]string{}
		emqx      = map[string]bool{}
	)
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "emqx/emqx:") {
			emqx[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Build == nil && !built[s.Image] {
			continue
		}
		entry, cmd := img.Entrypoint, img.Cmd
		if s.Entrypoint != nil {
			entry, cmd = s.Entrypoint, nil
		}
		if s.Command != nil {
			cmd = s.Command
		}
		argv := append(slices.Clone(entry), cmd...)
		if len(argv) == 0 || argv[0] != lampgwBin {
			continue
		}
		in := &clusterInstance{name: name, argv: argv, env: maps.Clone(img.Env)}
		if in.env == nil {
			in.env = map[string]string{}
		}
		for k, v := range s.Environment {
			if v == nil {
				delete(in.env, k)
			} else {
				in.env[k] = *v
			}
		}
		if h := s.HealthCheck; h != nil && !h.Disable && len(h.Test) > 0 {
			in.health = h.Test
		} else if img.Healthcheck != nil && (h == nil || !h.Disable) {
			in.health = img.Healthcheck.Test
		}
		if err := in.check(emqx, ids); err != nil {
			errs = append(errs, err)
			continue
		}
		instances = append(instances, in)
	}
	if len(instances) < 2 {
		bad("%s: %d lampgw services parse, want at least 2 for a cluster", clusterCompose, len(instances))
	}
	if err := checkHAProxy(dir, p, instances); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// check parses one instance's command line and environment with lampgw's
// own parser and checks it is a cluster instance: a broker URL naming an
// EMQX service, an id of its own, no MQTT listener, a bridge and an HTTP
// listener, and a health check of that HTTP port.
func (in *clusterInstance) check(emqx map[string]bool, ids map[string]string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: %s", in.name, fmt.Sprintf(format, args...)))
	}
	args := in.argv[1:]
	values := flagValues(args, clusterFlags)
	if missingClusterFlags() {
		args = withoutFlags(args, clusterFlags)
	}
	cfg, err := parseConfig(args, func(k string) string { return in.env[k] })
	if err != nil {
		bad("flags %q and its environment: %v", in.argv[1:], err)
		return errors.Join(errs...)
	}
	in.cfg = cfg

	raw, ok := values["broker-url"]
	if !ok {
		bad("%s: no --broker-url: not a cluster instance", in.name)
	} else if u, err := url.Parse(raw); err != nil {
		bad("--broker-url %q: %v", raw, err)
	} else {
		if !slices.Contains([]string{"mqtt", "mqtts", "ws", "wss"}, u.Scheme) {
			bad("--broker-url %q: scheme %q, want mqtt, mqtts, ws or wss", raw, u.Scheme)
		}
		if !emqx[u.Hostname()] {
			bad("--broker-url %q: %s is no EMQX service of %s", raw, u.Hostname(), clusterCompose)
		}
	}
	if id, ok := values["instance-id"]; !ok {
		// The default is the host name, a container id: unique, but
		// new on every re-creation, which leaves retained statuses of
		// ids that never come back.
		bad("no --instance-id")
	} else if other, dup := ids[id]; dup {
		bad("instance id %q twice (also %s): two instances with one id take each other's MQTT session", id, other)
	} else {
		ids[id] = in.name
	}

	// With --broker-url, lampgw turns the MQTT listeners off unless they
	// are set on purpose; without the flag (not yet added) they keep
	// their defaults, so there is nothing to check.
	if !missingClusterFlags() && (cfg.MQTTAddr != "" || cfg.WSAddr != "") {
		bad("mqtt-addr %q, ws-addr %q: in cluster mode apps talk to the cluster; want both off", cfg.MQTTAddr, cfg.WSAddr)
	}
	in.ports, err = listenPorts(cfg)
	if err != nil {
		bad("%v", err)
	}
	for _, s := range []string{flagBridgeAddr, flagHTTPAddr} {
		if _, ok := in.ports[s]; !ok {
			bad("%s is off; the load balancer needs it", s)
		}
	}
	if p, ok := in.ports[flagHTTPAddr]; ok {
		if len(in.health) == 0 {
			bad("no health check")
		} else if err := checkProbe(in.health, in.env, p); err != nil {
			bad("%v", err)
		}
	}
	return errors.Join(errs...)
}

// flagValues returns the values of the named flags in args ("--f v",
// "-f v", "--f=v").
func flagValues(args, names []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || !slices.Contains(names, name) {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		out[name] = value
	}
	return out
}

// withoutFlags returns args without the named flags and their values.
func withoutFlags(args, names []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if strings.HasPrefix(args[i], "-") && slices.Contains(names, name) {
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// haproxyBackend is what checkHAProxy reads of haproxy.cfg.
type haproxyBackend struct {
	mode, balance, httpchk string
	checkPort              int
	servers                []string // host:port
	binds                  []int
}

// parseHAProxy reads the few directives the recipe depends on. Sections
// start at an unindented keyword; "defaults" values apply to what follows
// unless a section says otherwise.
func parseHAProxy(path string) (*haproxyBackend, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b haproxyBackend
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			section = fields[0]
			continue
		}
		switch {
		case fields[0] == "mode" && len(fields) > 1 && (section == "defaults" || section == "backend"):
			b.mode = fields[1]
		case fields[0] == "bind" && len(fields) > 1 && section == "frontend":
			_, port, _ := net.SplitHostPort(fields[1])
			n, err := strconv.Atoi(port)
			if err != nil {
				return nil, fmt.Errorf("%s: bind %s: %v", haproxyConfig, fields[1], err)
			}
			b.binds = append(b.binds, n)
		case section != "backend":
		case fields[0] == "balance" && len(fields) > 1:
			b.balance = fields[1]
		case fields[0] == "option" && len(fields) > 1 && fields[1] == "httpchk":
			b.httpchk = strings.Join(fields[2:], " ")
		case fields[0] == "server" && len(fields) > 2:
			b.servers = append(b.servers, fields[2])
			fallthrough
		case fields[0] == "default-server":
			if i := slices.Index(fields, "port"); i > 0 && i+1 < len(fields) && slices.Contains(fields, "check") {
				if b.checkPort, err = strconv.Atoi(fields[i+1]); err != nil {
					return nil, fmt.Errorf("%s: check port %s: %v", haproxyConfig, fields[i+1], err)
				}
			}
		}
	}
	return &b, sc.Err()
}

// checkHAProxy checks haproxy.cfg against the instances and the compose
// service that runs HAProxy.
func checkHAProxy(dir string, p *types.Project, instances []*clusterInstance) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", haproxyConfig, fmt.Sprintf(format, args...)))
	}
	cfgPath := filepath.Join(dir, filepath.FromSlash(haproxyConfig))
	b, err := parseHAProxy(cfgPath)
	if err != nil {
		return err
	}
	if b.mode != "tcp" {
		bad("mode %q, want mode tcp: lamps speak raw TCP", b.mode)
	}
	if b.balance != "leastconn" {
		bad("balance %q, want balance leastconn: lamp connections are long-lived", b.balance)
	}
	if !strings.HasSuffix(b.httpchk, "/readyz") {
		bad("option httpchk %q, want GET /readyz: /healthz stays 200 while an instance cannot reach the cluster", b.httpchk)
	}
	byName := map[string]*clusterInstance{}
	for _, in := range instances {
		byName[in.name] = in
	}
	seen := map[string]bool{}
	for _, hp := range b.servers {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			bad("server %s: %v", hp, err)
			continue
		}
		in := byName[host]
		if in == nil {
			bad("server %s: %s is no lampgw service of %s", hp, host, clusterCompose)
			continue
		}
		seen[host] = true
		if want := in.ports[flagBridgeAddr]; strconv.Itoa(want) != port {
			bad("server %s: want its %s port %d", hp, flagBridgeAddr, want)
		}
		if want := in.ports[flagHTTPAddr]; b.checkPort != want {
			bad("server %s: checks port %d, want its %s port %d", hp, b.checkPort, flagHTTPAddr, want)
		}
	}
	for _, in := range instances {
		if !seen[in.name] {
			bad("%s is in no backend server line", in.name)
		}
	}

	// The HAProxy service: it mounts this file where the image reads it
	// and publishes the port it binds; lamps dial that port.
	var lb *types.ServiceConfig
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "haproxy:") {
			continue
		}
		s := s
		lb = &s
		mounted := false
		for _, v := range s.Volumes {
			if v.Target == haproxyConfigPath && filepath.Clean(v.Source) == cfgPath {
				mounted = true
			}
		}
		if !mounted {
			bad("service %s mounts no %s at %s", name, haproxyConfig, haproxyConfigPath)
		}
		for _, port := range b.binds {
			if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return int(pc.Target) == port }) {
				bad("service %s binds %d, which is not published", name, port)
			}
		}
	}
	if lb == nil {
		bad("no haproxy service in %s", clusterCompose)
		return errors.Join(errs...)
	}
	for name, s := range p.Services {
		for _, arg := range s.Command {
			host, port, err := net.SplitHostPort(arg)
			if err != nil || host != lb.Name {
				continue
			}
			if n, _ := strconv.Atoi(port); !slices.Contains(b.binds, n) {
				bad("service %s dials %s; HAProxy binds %v", name, arg, b.binds)
			}
		}
	}
	return errors.Join(errs...)
}
