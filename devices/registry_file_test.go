package devices_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/lampgw/lampgw/devices"
)

func TestDeclare(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	announced := 0
	announce := func() { announced++ }
	if err := r.Declare("a", announce); err != nil {
		t.Fatal(err)
	}
	if announced != 1 {
		t.Errorf("Declare of an unknown device: announced %d times, want 1", announced)
	}
	if s, ok := r.Get("a"); !ok || s.Online {
		t.Errorf("after Declare: got %+v %v, want a known, offline device", s, ok)
	}
	h := &holder{name: "h"}
	r.Attach("a", h, nil)
	if err := r.Declare("a", announce); err != nil || announced != 1 {
		t.Errorf("Declare of an online device: err %v, announced %d times, want no announce", err, announced)
	}

	full := devices.NewRegistry(devices.Options{MaxDevices: 1})
	full.Attach("x", h, nil)
	if err := full.Declare("y", announce); err != devices.ErrTooManyDevices {
		t.Errorf("Declare in a full registry of online devices: got %v, want ErrTooManyDevices", err)
	}
}

func TestRemove(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	h := &holder{name: "h"}
	r.Attach("a", h, nil)
	r.Report("a", h, []devices.Pair{p("brightness", "5"), ps("mode", "auto")}, nil)
	command(r, "a", p("brightness", "9"))

	var cleared []string
	got, ok := r.Remove("a", func(keys []string) { cleared = keys })
	if !ok || got != devices.Holder(h) {
		t.Fatalf("Remove: got %v %v, want the holder and true", got, ok)
	}
	if want := []string{"brightness", "mode"}; !reflect.DeepEqual(cleared, want) {
		t.Errorf("clear keys: got %v, want %v", cleared, want)
	}
	if _, ok := r.Get("a"); ok {
		t.Errorf("Get after Remove: device still known")
	}
	if r.Holder("a") != nil {
		t.Errorf("Holder after Remove: got one, want nil")
	}
	// The old connection speaks for no one any more.
	rec := &publishRecorder{}
	r.Report("a", h, []devices.Pair{p("brightness", "6")}, rec.publish)
	if rec.calls != 0 {
		t.Errorf("Report from the removed holder published %v", rec.changed)
	}
	if r.Detach("a", h, func() { t.Error("Detach of the removed holder announced") }) {
		t.Errorf("Detach of the removed holder: got true, want false")
	}
	if _, ok := r.Remove("a", func([]string) { t.Error("second Remove cleared") }); ok {
		t.Errorf("second Remove: got true, want false")
	}
	// A new connection starts from nothing.
	h2 := &holder{name: "h2"}
	r.Attach("a", h2, nil)
	if s, _ := r.Get("a"); len(s.Reported) != 0 || len(s.Desired) != 0 {
		t.Errorf("after Remove and Attach: got %+v, want no state", s)
	}
	if r.Holder("a") != devices.Holder(h2) {
		t.Errorf("Holder: got %v, want h2", r.Holder("a"))
	}
}

func TestAttachIf(t *testing.T) {
	r := devices.NewRegistry(devices.Options{})
	first, second := &holder{name: "first"}, &holder{name: "second"}
	refused := errors.New("refused")
	var sawPrev []devices.Holder
	admitOnly := func(want devices.Holder) func(devices.Holder) error {
		return func(prev devices.Holder) error {
			sawPrev = append(sawPrev, prev)
			if prev != want {
				return refused
			}
			return nil
		}
	}
	if _, err := r.AttachIf("a", first, admitOnly(nil), nil); err != nil {
		t.Fatalf("AttachIf offline: %v", err)
	}
	announced := false
	if _, err := r.AttachIf("a", second, admitOnly(nil), func() { announced = true }); err != refused {
		t.Fatalf("AttachIf refused: got %v, want the admit error", err)
	}
	if announced || first.kickCount() != 0 || r.Holder("a") != devices.Holder(first) {
		t.Errorf("a refused AttachIf changed something: announced %v, kicks %d, holder %v", announced, first.kickCount(), r.Holder("a"))
	}
	tookOver, err := r.AttachIf("a", second, admitOnly(first), nil)
	if err != nil || !tookOver || first.kickCount() != 1 {
		t.Errorf("admitted take-over: got %v %v, kicks %d; want true nil 1", tookOver, err, first.kickCount())
	}
	if want := []devices.Holder{nil, first, first}; !reflect.DeepEqual(sawPrev, want) {
		t.Errorf("admit saw %v, want %v", sawPrev, want)
	}
}
