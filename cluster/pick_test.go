package cluster

import (
	"fmt"
	"testing"
)

// TestPickSpreadsAndMovesOnlyTheDeadOnesLamps checks the rendezvous
// choice survivors use to adopt a dead instance's lamps: every instance
// gets a fair share, the choice does not depend on the order instances
// are listed in, and when one instance goes only its lamps move.
func TestPickSpreadsAndMovesOnlyTheDeadOnesLamps(t *testing.T) {
	live := []string{"a", "b", "c"}
	counts := map[string]int{}
	const n = 3000
	for i := range n {
		id := fmt.Sprintf("lamp-%d", i)
		p := pick(id, live)
		counts[p]++
		if q := pick(id, []string{"c", "a", "b"}); q != p {
			t.Fatalf("pick(%s) depends on order: %s vs %s", id, p, q)
		}
		if after := pick(id, []string{"a", "b"}); p != "c" && after != p {
			t.Fatalf("pick(%s) moved from %s to %s when c died", id, p, after)
		}
	}
	for _, inst := range live {
		if share := float64(counts[inst]) / n; share < 0.25 || share > 0.42 {
			t.Errorf("%s got %.2f of the lamps, want about a third (%v)", inst, share, counts)
		}
	}
	if got := pick("x", nil); got != "" {
		t.Errorf("pick among none = %q, want \"\"", got)
	}
}

func TestCheckInstance(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{{"gw-1", true}, {"GW_2", true}, {"", false}, {"a/b", false}, {"host.example", false}, {"holders", false}, {"pending", false}} {
		if err := CheckInstance(tc.id); (err == nil) != tc.ok {
			t.Errorf("CheckInstance(%q) = %v, want ok %v", tc.id, err, tc.ok)
		}
	}
}
