package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/gateway"
)

func benchGateway(b *testing.B) gateway.Addrs {
	b.Helper()
	g, err := gateway.New(gateway.Options{MQTTAddr: "127.0.0.1:0", BridgeAddr: "127.0.0.1:0", Logger: zerolog.Nop(),
		// The benchmarks send back to back, far past what one lamp may
		// send (--lamp-frame-rate) or be sent (--lamp-max-rate); paced,
		// they would measure the pacing, not the path.
		LampFrameRate: -1, LampMaxRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		g.Shutdown(ctx)
	})
	return g.Addrs()
}

func benchClient(b *testing.B, addr net.Addr, id string) paho.Client {
	b.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr.String()).
		SetClientID(id).SetAutoReconnect(false).SetConnectTimeout(wait))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		b.Fatalf("connect: %v", tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(0) })
	return c
}

func benchSubscribe(b *testing.B, c paho.Client, filter string) <-chan string {
	b.Helper()
	ch := make(chan string, 16)
	tok := c.Subscribe(filter, 0, func(_ paho.Client, m paho.Message) { ch <- string(m.Payload()) })
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}
	return ch
}

func receive(b *testing.B, ch <-chan string, want string) {
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
		case <-time.After(wait):
			b.Fatalf("no %q within %v", want, wait)
		}
	}
}

// BenchmarkReportLatency measures, one message at a time, a lamp's report
// reaching an app (raw TCP frame -> bridge -> embedded broker -> paho
// subscriber) against the direct path through the same broker (paho
// publisher -> broker -> paho subscriber), alternating the two so both see
// the same machine. It reports each path's p50 and p99 and the ratio of
// the medians (gateway/direct).
//
//	go test -run=^$ -bench=ReportLatency -benchtime=5000x ./gateway
func BenchmarkReportLatency(b *testing.B) {
	addrs := benchGateway(b)
	app := benchClient(b, addrs.MQTT, "bench-app")
	viaLamp := benchSubscribe(b, app, "lamp/bench/brightness")
	direct := benchSubscribe(b, app, "direct/brightness")
	pub := benchClient(b, addrs.MQTT, "bench-pub")

	conn, err := net.Dial("tcp", addrs.Bridge.String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "HELLO bench\n")
	w.Flush()

	gw := make([]time.Duration, 0, b.N)
	dr := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := strconv.Itoa(i % 1024) // a new value each time: only changes are published
		start := time.Now()
		w.WriteString("brightness=" + v + "\n")
		w.Flush()
		receive(b, viaLamp, v)
		gw = append(gw, time.Since(start))

		start = time.Now()
		pub.Publish("direct/brightness", 0, false, v)
		receive(b, direct, v)
		dr = append(dr, time.Since(start))
	}
	b.StopTimer()
	gp50, gp99 := percentiles(gw)
	dp50, dp99 := percentiles(dr)
	b.ReportMetric(float64(gp50.Microseconds()), "gw-p50-us")
	b.ReportMetric(float64(gp99.Microseconds()), "gw-p99-us")
	b.ReportMetric(float64(dp50.Microseconds()), "direct-p50-us")
	b.ReportMetric(float64(dp99.Microseconds()), "direct-p99-us")
	b.ReportMetric(float64(gp50)/float64(dp50), "p50-ratio")
}

// BenchmarkCommandLatency measures an app's command reaching the lamp's
// socket: paho publish on lamp/<id>/brightness/set -> broker -> bridge ->
// the bytes brightness=N on a raw TCP socket.
//
//	go test -run=^$ -bench=CommandLatency -benchtime=5000x ./gateway
func BenchmarkCommandLatency(b *testing.B) {
	addrs := benchGateway(b)
	app := benchClient(b, addrs.MQTT, "bench-app")
	conn, err := net.Dial("tcp", addrs.Bridge.String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("HELLO cmd\n"))
	online := benchSubscribe(b, app, "lamp/cmd/availability")
	receive(b, online, "online")
	r := bufio.NewReader(conn)

	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v := strconv.Itoa(i % 1024)
		start := time.Now()
		app.Publish("lamp/cmd/brightness/set", 0, false, v)
		conn.SetReadDeadline(time.Now().Add(wait))
		line, err := r.ReadString('\n')
		if err != nil || line != "brightness="+v+"\n" {
			b.Fatalf("lamp read %q, %v; want brightness=%s", line, err, v)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	p50, p99 := percentiles(lat)
	b.ReportMetric(float64(p50.Microseconds()), "p50-us")
	b.ReportMetric(float64(p99.Microseconds()), "p99-us")
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)*99/100]
}
