package deploytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// File names in a deployment directory (the repository root).
const (
	ComposeFile    = "docker-compose.yml"
	DockerfileName = "Dockerfile"
	// DevicesFile is the devices file the compose file mounts into the
	// gateway. cmd/lampgw's test checks that the gateway reads it;
	// cmd/lampsim's that its lamps are the ones it dials.
	DevicesFile = "deploy/devices.yaml"
)

// Deploy is a compose project and the image of the Dockerfile beside it.
type Deploy struct {
	Dir        string
	Project    *types.Project
	Dockerfile *Dockerfile
	// Containers are what Docker runs for each service, by name.
	Containers map[string]*Container
}

// Container is what Docker runs for one compose service: the image's
// settings with the service's on top.
type Container struct {
	Service *types.ServiceConfig
	// Argv is the entrypoint and command, as the process gets them.
	Argv []string
	// Env is the process's environment: the image's ENV, then the
	// service's environment.
	Env map[string]string
	// Health is the health check test in Docker's form (["CMD", argv...]
	// or ["CMD-SHELL", command]); nil when there is none or it is
	// disabled.
	Health []string
}

// Getenv looks up a variable of the container's environment, like
// os.Getenv: "" when unset.
func (c *Container) Getenv(k string) string { return c.Env[k] }

// Names are the host names other containers of the project reach c by:
// its service name and its network aliases.
func (c *Container) Names() []string {
	names := []string{c.Service.Name}
	for _, n := range c.Service.Networks {
		if n != nil {
			names = append(names, n.Aliases...)
		}
	}
	return names
}

// Load reads dir's compose file and Dockerfile and models the containers.
// Every service must run the image that the Dockerfile builds: built
// from dir, or by image name of a service that builds it.
func Load(dir string) (*Deploy, error) {
	p, err := LoadCompose(filepath.Join(dir, ComposeFile))
	if err != nil {
		return nil, err
	}
	df, err := ParseDockerfile(filepath.Join(dir, DockerfileName))
	if err != nil {
		return nil, err
	}
	d := &Deploy{Dir: dir, Project: p, Dockerfile: df, Containers: make(map[string]*Container)}
	built := map[string]bool{}
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		ctx, file := s.Build.Context, s.Build.Dockerfile
		if file == "" {
			file = DockerfileName
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(ctx, file)
		}
		if filepath.Clean(ctx) != filepath.Clean(dir) || filepath.Clean(file) != filepath.Join(dir, DockerfileName) {
			return nil, fmt.Errorf("service %s: builds %s with context %s, want %s with context %s", s.Name, file, ctx, DockerfileName, dir)
		}
		if s.Build.Target != "" && s.Build.Target != df.Final().Name {
			return nil, fmt.Errorf("service %s: build target %q is not the last stage; only that is modelled", s.Name, s.Build.Target)
		}
		if s.Image != "" {
			built[s.Image] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.Build == nil && !built[s.Image] {
			return nil, fmt.Errorf("service %s: image %q is not the one %s builds (no service builds it)", name, s.Image, DockerfileName)
		}
		d.Containers[name] = newContainer(&s, &df.Final().Image)
	}
	return d, nil
}

// LoadCompose loads a compose file with compose-go as `docker compose`
// would, validating it against the Compose schema, with paths resolved
// against its directory. The environment is empty, not the test's, so
// that the result does not depend on who runs the test.
func LoadCompose(path string) (*types.Project, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.ResolvePaths = true
		// The project name is the file's `name:`, else the directory's.
		o.SetProjectName(loader.NormalizeProjectName(filepath.Base(details.WorkingDir)), false)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func newContainer(s *types.ServiceConfig, img *Image) *Container {
	c := &Container{Service: s, Env: maps.Clone(img.Env)}
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	for k, v := range s.Environment {
		if v == nil {
			// `- NAME` without a value passes the host's variable, and
			// the environment Load uses is empty.
			delete(c.Env, k)
			continue
		}
		c.Env[k] = *v
	}

	// Docker: an entrypoint given at run time also clears the image's CMD.
	entry, cmd := img.Entrypoint, img.Cmd
	if s.Entrypoint != nil {
		entry, cmd = s.Entrypoint, nil
	}
	if s.Command != nil {
		cmd = s.Command
	}
	c.Argv = append(slices.Clone(entry), cmd...)

	var imgTest []string
	if img.Healthcheck != nil {
		imgTest = img.Healthcheck.Test
	}
	switch h := s.HealthCheck; {
	case h == nil:
		c.Health = imgTest
	case h.Disable:
		c.Health = nil
	case len(h.Test) == 0:
		c.Health = imgTest // timings only: the test is the image's
	default:
		c.Health = h.Test
	}
	if len(c.Health) > 0 && c.Health[0] == "NONE" {
		c.Health = nil
	}
	return c
}

// Services returns the containers whose program (Argv[0]) is bin, such as
// "/lampgw", sorted by service name.
func (d *Deploy) Services(bin string) []*Container {
	var out []*Container
	for _, name := range slices.Sorted(maps.Keys(d.Containers)) {
		if c := d.Containers[name]; len(c.Argv) > 0 && c.Argv[0] == bin {
			out = append(out, c)
		}
	}
	return out
}

// Resolve returns the container that host names (a service name or a
// network alias), or nil.
func (d *Deploy) Resolve(host string) *Container {
	for _, c := range d.Containers {
		if slices.Contains(c.Names(), host) {
			return c
		}
	}
	return nil
}

// Mount returns the service's mount at target, or nil.
func (c *Container) Mount(target string) *types.ServiceVolumeConfig {
	for i, v := range c.Service.Volumes {
		if filepath.ToSlash(filepath.Clean(v.Target)) == target {
			return &c.Service.Volumes[i]
		}
	}
	return nil
}

// Published returns the container ports c publishes on the host, TCP
// only, sorted.
func (c *Container) Published() ([]int, error) {
	var ports []int
	for _, p := range c.Service.Ports {
		if p.Protocol != "" && p.Protocol != "tcp" {
			return nil, fmt.Errorf("service %s: port %d/%s: only tcp is modelled", c.Service.Name, p.Target, p.Protocol)
		}
		ports = append(ports, int(p.Target))
	}
	slices.Sort(ports)
	return ports, nil
}

// ListenPort is the port of a listen address "host:port" when every
// other container and a published port can reach it: host empty, 0.0.0.0
// or ::. An address on one interface, such as loopback, is an error,
// since port publishing and the other containers would not reach it.
func ListenPort(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q: port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return 0, fmt.Errorf("%q listens on %s only; other containers and published ports reach only an address with an empty host, 0.0.0.0 or ::", addr, host)
	}
	return int(n), nil
}

// ExposedPorts returns the image's EXPOSE ports, TCP only, sorted.
func ExposedPorts(img *Image) ([]int, error) {
	var ports []int
	for _, e := range img.Expose {
		p, proto, _ := strings.Cut(e, "/")
		if proto != "" && proto != "tcp" {
			return nil, fmt.Errorf("EXPOSE %s: only tcp is modelled", e)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("EXPOSE %s: want a port number", e)
		}
		ports = append(ports, int(n))
	}
	slices.Sort(ports)
	return ports, nil
}

// HostFile returns the host file that the container sees at the
// absolute path p through a bind mount of it or of a directory above it,
// and that mount.
func (c *Container) HostFile(p string) (string, *types.ServiceVolumeConfig, error) {
	var (
		best *types.ServiceVolumeConfig
		rel  string
	)
	for i, v := range c.Service.Volumes {
		t := filepath.ToSlash(filepath.Clean(v.Target))
		r, ok := strings.CutPrefix(p, strings.TrimSuffix(t, "/")+"/")
		if p == t {
			r, ok = "", true
		}
		if ok && (best == nil || len(t) > len(best.Target)) {
			best, rel = &c.Service.Volumes[i], r
		}
	}
	if best == nil {
		return "", nil, fmt.Errorf("%s is not mounted", p)
	}
	if best.Type != types.VolumeTypeBind {
		return "", best, fmt.Errorf("%s is on a %s mount, not a bind mount from the host", p, best.Type)
	}
	src := filepath.Join(best.Source, filepath.FromSlash(rel))
	fi, err := os.Stat(src)
	if err != nil {
		return "", best, err
	}
	if !fi.Mode().IsRegular() {
		return "", best, errors.New(src + " is not a regular file")
	}
	return src, best, nil
}
