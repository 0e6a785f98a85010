package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// ErrNotInstalled is returned when a broker's binary is on neither PATH
// nor its Debian location.
var ErrNotInstalled = errors.New("engine: broker binary not installed")

// ErrExited is returned when a broker exits before it listens.
var ErrExited = errors.New("engine: broker exited before listening")

// StartTimeout bounds how long a start waits for the broker to listen.
const StartTimeout = 10 * time.Second

// Proc is a running broker process.
type Proc struct {
	// Name is what the broker is, for messages ("mosquitto", "nats-1").
	Name string
	// Addr is the MQTT listener, host:port on loopback.
	Addr string

	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	once   sync.Once
}

// URL is the broker's MQTT address as tcp://host:port, the form paho
// and mqttbus take.
func (p *Proc) URL() string { return "tcp://" + p.Addr }

// Pid is the broker's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is what the broker wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Kill ends the broker with SIGKILL and waits for it to exit.
func (p *Proc) Kill() {
	p.once.Do(func() { p.cmd.Process.Kill() })
	<-p.exited
}

// Close ends the broker (SIGKILL: nothing of it outlives a test, and no
// broker here keeps state worth a clean shutdown) and waits.
func (p *Proc) Close() error {
	p.Kill()
	return nil
}

// Exited is closed once the broker process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// lookBinary finds name on PATH or under /usr/sbin and /usr/bin, where
// Debian puts daemons that a user's PATH may lack.
func lookBinary(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		path := dir + "/" + name
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			return path, nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNotInstalled, name)
}

// FreePort returns a loopback port that was free a moment ago. Another
// process may take it before the broker binds it; starts fail loudly
// then rather than wait.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs path with args and waits until addr accepts a TCP
// connection, the broker exits, or ctx and StartTimeout end.
func start(ctx context.Context, name, addr, path string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Addr: addr, out: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("engine: start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()

	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%w: %s: %s", ErrExited, name, p.out.String())
		case <-ctx.Done():
			p.Kill()
			return nil, fmt.Errorf("engine: %s not listening on %s: %w\n%s", name, addr, err, p.out.String())
		case <-tick.C:
		}
	}
}

// Require fails t with err, or skips it when err is ErrNotInstalled and
// the CI environment variable is not set: CI must run every engine test.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		t.Skipf("%v (set CI to make this a failure)", err)
	}
	t.Fatal(err)
}

// Cleanup registers p's end with t, logging its output if t failed.
func Cleanup(t testing.TB, p *Proc) {
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", p.Name, p.Output())
		}
	})
}

// lockedBuffer is a bytes.Buffer the process's output goroutines and the
// caller share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Bounded: a chatty broker must not grow a long run's memory.
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
