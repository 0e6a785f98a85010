package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lampgw/lampgw/internal/testwait"
	"github.com/lampgw/lampgw/internal/tlstest"
)

// tlsBroker starts a broker with both TLS listeners and returns it with
// a client configuration that trusts its certificate.
func tlsBroker(t *testing.T, opts Options) (*Broker, *tls.Config) {
	t.Helper()
	ca := tlstest.NewCA(t, "broker test CA")
	server := ca.Server(t)
	opts.MQTTSAddr, opts.WSSAddr = "127.0.0.1:0", "127.0.0.1:0"
	opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{server.TLS}, MinVersion: tls.VersionTLS12}
	return startBroker(t, opts), tlstest.ClientConfig(ca, nil)
}

func TestTLSListeners(t *testing.T) {
	b, client := tlsBroker(t, Options{})
	if b.MQTTAddr() != nil || b.WSAddr() != nil {
		t.Errorf("plain listeners: got %v, %v, want both disabled", b.MQTTAddr(), b.WSAddr())
	}
	mqtts := connectWith(t, paho.NewClientOptions().AddBroker("ssl://"+b.MQTTSAddr().String()).SetTLSConfig(client), "mqtts-client")
	defer mqtts.Disconnect(0)
	wss := connectWith(t, paho.NewClientOptions().AddBroker("wss://"+b.WSSAddr().String()+"/mqtt").SetTLSConfig(client), "wss-client")
	defer wss.Disconnect(0)

	// Each publishes once; both receive both.
	clients := []struct {
		name string
		c    paho.Client
		in   <-chan pahoMsg
	}{{"mqtts", mqtts, pahoSub(t, mqtts, "room/#")}, {"wss", wss, pahoSub(t, wss, "room/#")}}
	for _, from := range clients {
		wait(t, from.name+" publish", from.c.Publish("room/"+from.name, 1, false, "from "+from.name))
		for _, to := range clients {
			if got, want := next(t, to.name+" client", to.in), (pahoMsg{"room/" + from.name, "from " + from.name, false}); got != want {
				t.Errorf("%s client: got %v, want %v", to.name, got, want)
			}
		}
	}
}

// TestTLSHandshakeTimeout checks that a peer which opens TCP to a TLS
// listener and then sends nothing, or garbage, is closed, and that
// nothing of it is left once the broker closes.
func TestTLSHandshakeTimeout(t *testing.T) {
	before := runtime.NumGoroutine()
	b, _ := tlsBroker(t, Options{HandshakeTimeout: 100 * time.Millisecond})
	tests := []struct {
		name, send string
	}{
		{"silent", ""},
		{"garbage", "\x10\x0cnot a TLS record at all\r\n\r\n"},
	}
	for _, listener := range []string{"mqtts", "wss"} {
		addr := b.boundAddr(listener).String()
		for _, tc := range tests {
			t.Run(listener+"/"+tc.name, func(t *testing.T) {
				c := rawConnect(t, addr, "")
				if tc.send != "" {
					if _, err := c.Write([]byte(tc.send)); err != nil {
						t.Fatal(err)
					}
				}
				// The server may answer garbage with an alert; then it
				// closes the connection.
				_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
				_, err := io.Copy(io.Discard, c)
				if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
					t.Fatalf("connection still open after %v", waitTimeout)
				}
			})
		}
	}
	closeWithin(t, b)
	testwait.Goroutines(t, before)
}

func TestTLSNeedsConfig(t *testing.T) {
	for _, opts := range []Options{{MQTTSAddr: "127.0.0.1:0"}, {WSSAddr: "127.0.0.1:0"}} {
		if _, err := New(opts); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("New(%+v): got %v, want %v", opts, err, ErrInvalidOptions)
		}
	}
}

func TestTLSPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free := freePort(t)
	for _, listener := range []string{"mqtts", "wss"} {
		t.Run(listener, func(t *testing.T) {
			opts := Options{MQTTAddr: free, MQTTSAddr: freePort(t), WSSAddr: freePort(t), TLSConfig: &tls.Config{}, Logger: testLogger(t)}
			if listener == "mqtts" {
				opts.MQTTSAddr = busy.Addr().String()
			} else {
				opts.WSSAddr = busy.Addr().String()
			}
			b, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			le, ok := errors.AsType[*ListenError](b.Start())
			if !ok || le.Listener != listener || !errors.Is(le, syscall.EADDRINUSE) {
				t.Fatalf("Start: got %v, want a *ListenError for %s wrapping EADDRINUSE", le, listener)
			}
			if b.MQTTAddr() != nil || b.MQTTSAddr() != nil || b.WSSAddr() != nil {
				t.Errorf("addresses after a failed Start: got %v %v %v, want nil", b.MQTTAddr(), b.MQTTSAddr(), b.WSSAddr())
			}
			// The plain listener bound before the failure was released.
			ln, err := net.Listen("tcp", free)
			if err != nil {
				t.Fatalf("mqtt port still bound after a failed Start: %v", err)
			}
			ln.Close()
		})
	}
}
