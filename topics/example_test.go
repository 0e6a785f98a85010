package topics_test

import (
	"errors"
	"fmt"

	"github.com/lampgw/lampgw/topics"
)

func ExampleValue() {
	// Each reported key has its own retained topic with a plain value.
	fmt.Println(topics.Value(topics.DefaultPrefix, "kitchen", "brightness"))
	fmt.Println(topics.Value("home/lamp", "kitchen", "brightness"))
	// Output:
	// lamp/kitchen/brightness
	// home/lamp/kitchen/brightness
}

func ExampleState() {
	// The retained JSON object of every reported key.
	fmt.Println(topics.State(topics.DefaultPrefix, "kitchen"))
	// Output:
	// lamp/kitchen/state
}

func ExampleAvailability() {
	// The gateway publishes these retained, so a subscriber arriving late
	// still learns whether the lamp is connected.
	fmt.Println(topics.Availability(topics.DefaultPrefix, "kitchen"), topics.Online)
	fmt.Println(topics.Availability(topics.DefaultPrefix, "kitchen"), topics.Offline)
	// Output:
	// lamp/kitchen/availability online
	// lamp/kitchen/availability offline
}

func ExampleSetKey() {
	// A plain value published here sets one key on the lamp.
	fmt.Println(topics.SetKey(topics.DefaultPrefix, "kitchen", "brightness"))
	// Output:
	// lamp/kitchen/brightness/set
}

func ExampleSetFilter() {
	// The gateway subscribes to both filters to receive every command.
	fmt.Println(topics.SetFilter(topics.DefaultPrefix))
	fmt.Println(topics.SetKeyFilter(topics.DefaultPrefix))
	// Output:
	// lamp/+/set
	// lamp/+/+/set
}

func ExampleBuild() {
	t := topics.Topic{Kind: topics.KindSetKey, Device: "kitchen", Key: "brightness"}
	if err := t.Check(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(topics.Build("home/lamp", t))
	// Output:
	// home/lamp/kitchen/brightness/set
}

func ExampleParse() {
	for _, topic := range []string{
		"lamp/kitchen/brightness",
		"lamp/kitchen/brightness/set",
		"lamp/kitchen/set",
		"lamp/kitchen/availability",
		"lamp/küche/state",
		"lamp/kitchen/state/set",
		"zigbee2mqtt/bridge/state",
	} {
		t, err := topics.Parse(topics.DefaultPrefix, topic)
		switch {
		case errors.Is(err, topics.ErrNotLamp):
			// Not ours: another service's topic, ignore it quietly.
			fmt.Printf("%s: ignored\n", topic)
		case err != nil:
			// Ours but malformed: worth a (rate-limited) warning.
			fmt.Printf("%s: rejected: %v\n", topic, err)
		default:
			fmt.Printf("%s: %v device=%s key=%q command=%t\n", topic, t.Kind, t.Device, t.Key, t.Kind.IsCommand())
		}
	}
	// Output:
	// lamp/kitchen/brightness: value device=kitchen key="brightness" command=false
	// lamp/kitchen/brightness/set: set-key device=kitchen key="brightness" command=true
	// lamp/kitchen/set: set device=kitchen key="" command=true
	// lamp/kitchen/availability: availability device=kitchen key="" command=false
	// lamp/küche/state: rejected: topics: invalid device id
	// lamp/kitchen/state/set: rejected: topics: reserved key
	// zigbee2mqtt/bridge/state: ignored
}

func ExampleReplyOwner() {
	for _, topic := range []string{
		"lampgw/replies/kitchen-tablet",
		"lampgw/replies/kitchen-tablet/42",
		"lampgw/replies",
		"lampgw/replies//x",
		"lampgw/repliesx/kitchen-tablet",
		"lampgw/status",
	} {
		user, ok := topics.ReplyOwner(topic)
		fmt.Printf("%s: %q %v\n", topic, user, ok)
	}
	// Output:
	// lampgw/replies/kitchen-tablet: "kitchen-tablet" true
	// lampgw/replies/kitchen-tablet/42: "kitchen-tablet" true
	// lampgw/replies: "" false
	// lampgw/replies//x: "" false
	// lampgw/repliesx/kitchen-tablet: "" false
	// lampgw/status: "" false
}
