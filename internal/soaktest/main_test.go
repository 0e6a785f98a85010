package soaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// gateway, lamp and app they start must be gone at the end. Each test
// also checks its own goroutines (leakCheck), which names the test that
// leaked.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
