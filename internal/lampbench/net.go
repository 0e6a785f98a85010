package lampbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// connectTimeout bounds every dial, MQTT connect and subscribe.
const connectTimeout = 10 * time.Second

// fleet is a set of lamps on raw TCP sockets: lamp i is ids[i] on
// conns[i]. A fleet's sockets are written by one goroutine per lamp at a
// time (the scenario's sender).
type fleet struct {
	addr    string
	ids     []string
	conns   []*net.TCPConn
	perAddr int
}

// newFleet names n lamps prefix0, prefix1, ... for the bridge at addr.
// perAddr > 0 makes lamp i dial from 127.0.1.(1+i/perAddr): the gateway
// admits at most 256 lamps per source address (--max-lamps-per-addr),
// and every 127/8 address is loopback on Linux.
func newFleet(addr, prefix string, n, perAddr int) *fleet {
	f := &fleet{addr: addr, ids: make([]string, n), conns: make([]*net.TCPConn, n), perAddr: perAddr}
	for i := range f.ids {
		f.ids[i] = prefix + strconv.Itoa(i)
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		// Only loopback targets can be reached from 127.0.1.x.
		f.perAddr = 0
	}
	return f
}

// dialOne connects lamp i and says HELLO.
func (f *fleet) dialOne(ctx context.Context, i int) error {
	d := net.Dialer{Timeout: connectTimeout}
	if f.perAddr > 0 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i/f.perAddr))}
	}
	c, err := d.DialContext(ctx, "tcp", f.addr)
	if err != nil {
		return fmt.Errorf("lamp %s: %w", f.ids[i], err)
	}
	tc := c.(*net.TCPConn)
	tc.SetWriteDeadline(time.Now().Add(connectTimeout))
	if _, err := tc.Write([]byte("HELLO " + f.ids[i] + "\n")); err != nil {
		tc.Close()
		return fmt.Errorf("lamp %s: HELLO: %w", f.ids[i], err)
	}
	tc.SetWriteDeadline(time.Time{})
	f.conns[i] = tc
	return nil
}

// dial connects every lamp, at most par at once (0: all at once, as
// lamps do after a power cut), and returns the first error.
func (f *fleet) dial(ctx context.Context, par int) error {
	if par <= 0 {
		par = len(f.ids)
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for i := range f.ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f.dialOne(ctx, i); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// drop resets every socket at once, as a power cut does: SO_LINGER 0
// sends RST and leaves no TIME_WAIT behind.
func (f *fleet) drop() {
	for i, c := range f.conns {
		if c != nil {
			c.SetLinger(0)
			c.Close()
			f.conns[i] = nil
		}
	}
}

func (f *fleet) close() { f.drop() }

// write sends one frame to lamp i.
func (f *fleet) write(i int, frame []byte) error {
	c := f.conns[i]
	c.SetWriteDeadline(time.Now().Add(connectTimeout))
	if _, err := c.Write(frame); err != nil {
		return fmt.Errorf("lamp %s: %w", f.ids[i], err)
	}
	return nil
}

// appendFrame appends "brightness=<v>\n".
func appendFrame(b []byte, v int) []byte {
	b = append(b, "brightness="...)
	b = strconv.AppendInt(b, int64(v), 10)
	return append(b, '\n')
}

// app is a connected paho client.
func newApp(ctx context.Context, addr, id string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(id).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(connectTimeout).SetCleanSession(true).
		SetKeepAlive(60 * time.Second).SetWriteTimeout(connectTimeout))
	if err := waitToken(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("mqtt %s connect %s: %w", id, addr, err)
	}
	return c, nil
}

// waitToken waits for tok within connectTimeout and ctx.
func waitToken(ctx context.Context, tok paho.Token) error {
	t := time.NewTimer(connectTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errors.New("timed out")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscribe subscribes c to filter at QoS 0 with h.
func subscribe(ctx context.Context, c paho.Client, filter string, h paho.MessageHandler) error {
	if err := waitToken(ctx, c.Subscribe(filter, 0, h)); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if err := barrier(ctx, c); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return nil
}

// barrier returns once the broker has finished c's last SUBSCRIBE.
// mochi-mqtt sends the SUBACK before it scans the retained messages to
// send, and that scan reads each topic's retained path without the lock
// a retained publish writes it under (v2.7.9, reported by -race). A
// second SUBSCRIBE is read only once the scan is done, so its SUBACK
// says that the scan is over before any lamp reports.
func barrier(ctx context.Context, c paho.Client) error {
	return waitToken(ctx, c.Subscribe("lampbench/barrier", 0, func(paho.Client, paho.Message) {}))
}

// disconnect ends every client, waiting at most a few ms for each.
func disconnect(cs ...paho.Client) {
	for _, c := range cs {
		if c != nil {
			c.Disconnect(5)
		}
	}
}

// indexOf parses the lamp index from the topic level at level: prefix
// followed by a number. ok is false for anyone else's topic.
func indexOf(topic string, level int, prefix string) (int, bool) {
	for range level {
		_, rest, ok := strings.Cut(topic, "/")
		if !ok {
			return 0, false
		}
		topic = rest
	}
	name, _, _ := strings.Cut(topic, "/")
	num, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	return i, err == nil
}

// rawPublisher is a minimal MQTT 3.1.1 client that only publishes at
// QoS 0, so that a direct throughput figure measures the broker, not a
// client library's queues: the lamps' side of the gateway path is raw
// TCP too.
type rawPublisher struct{ c *net.TCPConn }

func dialRawPublisher(ctx context.Context, addr, id string) (*rawPublisher, error) {
	d := net.Dialer{Timeout: connectTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	// CONNECT [MQTT-3.1]: protocol "MQTT" level 4, clean session, keep
	// alive 0 (off: the publisher sends nothing else when idle).
	var vh []byte
	vh = append(vh, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0)
	vh = append(vh, byte(len(id)>>8), byte(len(id)))
	vh = append(vh, id...)
	pkt := append([]byte{0x10}, remLen(nil, len(vh))...)
	pkt = append(pkt, vh...)
	tc.SetDeadline(time.Now().Add(connectTimeout))
	if _, err := tc.Write(pkt); err != nil {
		tc.Close()
		return nil, err
	}
	// CONNACK [MQTT-3.2]: 0x20 0x02, session present, return code.
	ack := make([]byte, 4)
	if _, err := io.ReadFull(tc, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		tc.Close()
		return nil, fmt.Errorf("mqtt %s: bad CONNACK % x: %v", id, ack, err)
	}
	tc.SetDeadline(time.Time{})
	return &rawPublisher{c: tc}, nil
}

// remLen appends MQTT's variable-length Remaining Length [MQTT-2.2.3].
func remLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// appendPublish appends a QoS 0 PUBLISH of payload on topic.
func appendPublish(b []byte, topic string, payload []byte) []byte {
	b = append(b, 0x30)
	b = remLen(b, 2+len(topic)+len(payload))
	b = append(b, byte(len(topic)>>8), byte(len(topic)))
	b = append(b, topic...)
	return append(b, payload...)
}

// rssBytes reads VmRSS of process pid from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// cpuTime is the CPU time, user and system, that process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime and stime the 12th and 13th.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q: no utime and stime", pid, b)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	// In clock ticks of USER_HZ, which Linux fixes at 100 for /proc.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
