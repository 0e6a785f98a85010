package bridge_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/rs/zerolog"

	"github.com/lampgw/lampgw/bridge"
	"github.com/lampgw/lampgw/broker"
	"github.com/lampgw/lampgw/devices"
)

func ExampleDecodeFrame() {
	f, err := bridge.DecodeFrame([]byte("brightness=512 ambient=830 mode=AUTO power=dim"), devices.Schema{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range f.Pairs {
		fmt.Printf("%s text=%s json=%s\n", p.Key, p.Value.Text, p.Value.JSON)
	}
	fmt.Println("refused:", f.Refused)
	// Output:
	// brightness text=512 json=512
	// ambient text=830 json=830
	// mode text=auto json="auto"
	// refused: [power: must be on or off]
}

func ExampleDecodeFrame_hello() {
	f, _ := bridge.DecodeFrame([]byte("HELLO kitchen s3cret"), devices.Schema{})
	fmt.Println(f.Hello, f.ID, f.Dialect)
	_, err := bridge.DecodeFrame([]byte("HELLO a/b"), devices.Schema{})
	fmt.Println(err)
	// Output:
	// true kitchen text
	// bridge: invalid id
}

func ExampleDecodeCommand() {
	// lamp/<id>/brightness/set with a plain payload.
	pairs, _ := bridge.DecodeCommand("brightness", []byte("700"), devices.Schema{})
	fmt.Printf("%s", bridge.AppendCommand(nil, bridge.DialectText, pairs))
	// lamp/<id>/set with a JSON object: all or nothing.
	_, err := bridge.DecodeCommand("", []byte(`{"mode":"manual","brightness":5000}`), devices.Schema{})
	fmt.Println(err)
	// Output:
	// brightness=700
	// brightness: out of range 0..1023
}

func ExampleAppendCommand() {
	pairs := []devices.Pair{
		{Key: "brightness", Value: devices.Value{Text: "700", JSON: "700"}},
		{Key: "mode", Value: devices.Value{Text: "manual", JSON: `"manual"`}},
	}
	fmt.Printf("%s", bridge.AppendCommand(nil, bridge.DialectText, pairs))
	fmt.Printf("%s", bridge.AppendCommand(nil, bridge.DialectJSON, pairs))
	// Output:
	// brightness=700 mode=manual
	// {"brightness":700,"mode":"manual"}
}

// A Server on the embedded broker's in-process bus, with one lamp served
// over an in-memory pipe.
func ExampleServer_ServeConn() {
	b, _ := broker.New(broker.Options{Logger: zerolog.Nop()})
	defer b.Close()
	srv, _ := bridge.NewServer(bridge.Options{Bus: b.Bus(), Logger: zerolog.Nop()})
	defer srv.Shutdown(context.Background())

	states := make(chan string, 1)
	b.Bus().Subscribe("lamp/+/state", 0, func(topic string, payload []byte, _ bool) {
		states <- topic + " " + string(payload)
	})

	gateway, lamp := net.Pipe()
	go srv.ServeConn(context.Background(), gateway) // ServeConn closes gateway
	fmt.Fprint(lamp, "HELLO desk\nbrightness=300 mode=manual\n")
	fmt.Fprintln(os.Stdout, <-states)
	lamp.Close()
	// Output:
	// lamp/desk/state {"brightness":300,"mode":"manual"}
}
