package lampbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Child modes: the processes the idle scenario measures from outside.
const (
	// ModeServe runs a gateway as Run's in-process one (pacing off).
	ModeServe = "serve"
	// ModeServeTCP runs the baseline: a plain Go TCP server, one
	// goroutine and one bufio.Reader per connection, reading lines.
	ModeServeTCP = "serve-tcp"
)

// childAddrs is a child's first line on stdout.
type childAddrs struct {
	MQTT   string `json:"mqtt,omitempty"`
	Bridge string `json:"bridge"`
	HTTP   string `json:"http,omitempty"`
}

// Child runs a child process of lampbench until stdin ends or ctx does.
// It prints its addresses as one JSON line on stdout and then answers
// each "conns" line on stdin with the number of lamp connections open.
// Ending with stdin means a child never outlives the lampbench that
// started it.
func Child(ctx context.Context, mode string, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("lampbench "+mode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	maxLamps := fs.Int("max-lamps", 0, "the gateway's --max-lamps; 0: lampgw's default")
	admit := fs.Float64("lamp-admit-rate", 0, "the gateway's --lamp-admit-rate; 0: lampgw's default")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", mode, err)
	}
	var addrs childAddrs
	var conns func() int
	switch mode {
	case ModeServe:
		g, err := startGateway(*maxLamps, *admit)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g.Shutdown(sctx)
		}()
		a := g.Addrs()
		addrs = childAddrs{MQTT: a.MQTT.String(), Bridge: a.Bridge.String(), HTTP: a.HTTP.String()}
		conns = func() int { return g.BridgeStats().Connections }
	case ModeServeTCP:
		srv, err := startLineServer()
		if err != nil {
			return err
		}
		defer srv.close()
		addrs = childAddrs{Bridge: srv.ln.Addr().String()}
		conns = func() int { return int(srv.open.Load()) }
	default:
		return fmt.Errorf("unknown child mode %q", mode)
	}
	b, _ := json.Marshal(addrs)
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if line == "conns" {
				fmt.Fprintf(stdout, "%d\n", conns())
			}
		}
	}
}

// lineServer is the baseline: what a plain Go server holding line-based
// connections costs per connection.
type lineServer struct {
	ln   net.Listener
	open atomic.Int64
	mu   sync.Mutex
	cs   map[net.Conn]struct{}
	wg   sync.WaitGroup
}

func startLineServer() (*lineServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &lineServer{ln: ln, cs: map[net.Conn]struct{}{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return
			}
			s.mu.Lock()
			s.cs[c] = struct{}{}
			s.mu.Unlock()
			s.open.Add(1)
			s.wg.Go(func() {
				defer s.open.Add(-1)
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadString('\n'); err != nil {
						break
					}
				}
				s.mu.Lock()
				delete(s.cs, c)
				s.mu.Unlock()
			})
		}
	})
	return s, nil
}

func (s *lineServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	addrs childAddrs
	done  chan struct{}
}

// startChild starts mode through spawn and reads its addresses.
func (e *env) startChild(ctx context.Context, mode string, args ...string) (*child, error) {
	if e.opts.Spawn == nil {
		return nil, errors.New("no way to start a separate gateway process (Options.Spawn)")
	}
	cmd := e.opts.Spawn(mode, args...)
	cmd.Stderr = e.opts.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", mode, err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(out), done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	line, err := c.readLine(ctx, 30*time.Second)
	if err == nil {
		err = json.Unmarshal([]byte(line), &c.addrs)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("%s: no addresses: %w", mode, err)
	}
	return c, nil
}

// readLine reads one line of the child's stdout within timeout.
func (c *child) readLine(ctx context.Context, timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-t.C:
		// The reader goroutine ends when close kills the child.
		return "", errors.New("child did not answer in time")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// conns asks the child how many lamp connections it holds.
func (c *child) conns(ctx context.Context) (int, error) {
	if _, err := io.WriteString(c.in, "conns\n"); err != nil {
		return 0, err
	}
	line, err := c.readLine(ctx, 10*time.Second)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(line)
}

// waitConns polls the child every 10 ms until it holds n connections,
// within timeout.
func (c *child) waitConns(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := c.conns(ctx)
		if err != nil {
			return err
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d connections after %v", got, n, timeout)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close ends the child: stdin's end asks it to stop, a kill follows
// after 10 s.
func (c *child) close() {
	c.in.Close()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.cmd.Process.Kill()
		<-c.done
	}
}
