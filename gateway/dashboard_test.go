package gateway_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// dashboardOutput is where TestDashboard saves its screenshots, under
// the package directory; git ignores testdata/out/.
const dashboardOutput = "testdata/out"

// chromiumPath returns Debian's chromium, skipping the test without it,
// or failing it when CI is set: CI installs chromium (.ci/run), so a
// missing one there is a broken setup, not a machine without a browser.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found, and CI is set: .ci/run should have installed it (apt-get install chromium)")
	}
	t.Skip("chromium not found: install Debian's chromium (apt-get install chromium) to run the dashboard test")
	return ""
}

// browser starts headless chromium and returns a context for chromedp
// actions, ended with the test or after timeout, and a func that returns
// the errors the page has thrown or logged so far (script exceptions,
// console.error, and browser log errors such as CSP violations and
// failed loads).
func browser(t *testing.T, timeout time.Duration) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(1024, 768),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run its sandbox as root; CI runs as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(ctx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	var mu sync.Mutex
	var errs []string
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return // the browser is gone
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelBrowser()
		<-done
	})
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// poll waits until the JavaScript expression cond is true on the page.
func poll(cond string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(wait), chromedp.WithPollingInterval(20*time.Millisecond))
}

// text returns the text of the element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// screenshot saves the whole page as a PNG under dashboardOutput.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(dashboardOutput, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dashboardOutput, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	t.Logf("screenshot: %s", abs)
}

// TestDashboard opens the dashboard in a real browser (Debian's chromium,
// headless, driven by chromedp) against a gateway with two raw-socket
// lamps, moves a slider and follows the command to the lamp's socket and
// the lamp's report back to the page.
func TestDashboard(t *testing.T) {
	ctx, pageErrors := browser(t, 2*time.Minute)
	e := startAPI(t, "", "devices:\n  - {id: kitchen, name: Kitchen}\n", nil)
	kitchen := dialLamp(t, e.addrs.Bridge)
	kitchen.send("HELLO kitchen\nbrightness=100 ambient=300 mode=auto power=on\n")
	kitchenLines := listen(kitchen)
	hall := dialLamp(t, e.addrs.Bridge)
	hall.send("HELLO hall\nbrightness=800 ambient=20 mode=manual power=on\n")
	e.lampState("kitchen", `"brightness":100`)
	e.lampState("hall", `"brightness":800`)

	const card = `document.querySelector('[data-lamp="kitchen"]')`
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-lamp="kitchen"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-lamp="hall"]`)),
		poll(`document.getElementById("conn").textContent === "live"`),
	)
	if err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	manual, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('[data-lamp="hall"] .manual').checked`))
	if err != nil {
		t.Fatal(err)
	}
	name, ambient, hallBrightness := text(t, ctx, `[data-lamp="kitchen"] .name`), text(t, ctx, `[data-lamp="kitchen"] .ambient`), text(t, ctx, `[data-lamp="hall"] .reported-brightness`)
	if name != "Kitchen" || ambient != "300" || hallBrightness != "800" || !manual {
		t.Fatalf("cards: got name %q, kitchen ambient %q, hall brightness %q, hall manual %v; want Kitchen, 300, 800, true",
			name, ambient, hallBrightness, manual)
	}
	screenshot(t, ctx, "dashboard-before.png")

	// Move kitchen's slider as a finger would: input while dragging,
	// change when let go.
	err = chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const s = `+card+`.querySelector(".slider");
		s.value = "700";
		s.dispatchEvent(new Event("input", {bubbles: true}));
		s.dispatchEvent(new Event("change", {bubbles: true}));
	})()`))
	if err != nil {
		t.Fatalf("move the slider: %v", err)
	}
	received(t, kitchenLines, "brightness=700")
	// The page follows the command's acks as they come: written now. The
	// lamp reports only after that, as a real lamp a network away would.
	if err := chromedp.Do(ctx, poll(card+`.querySelector(".progress").textContent.includes("brightness 700: written")`)); err != nil {
		t.Fatalf("progress: no written ack on the page: %v", err)
	}
	kitchen.send("brightness=700 ambient=310 mode=manual power=on\n")
	err = chromedp.Do(ctx,
		poll(card+`.querySelector(".reported-brightness").textContent === "700"`),
		poll(card+`.querySelector(".ambient").textContent === "310"`),
		poll(card+`.querySelector(".manual").checked`),
		poll(card+`.querySelector(".progress").textContent.includes("brightness 700: confirmed")`),
		poll(card+`.querySelector(".fill").style.width.startsWith("68.")`), // 700/1023
	)
	if err != nil {
		progress, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-lamp="kitchen"] .progress`)))
		t.Fatalf("the page does not show the lamp's report (progress %q): %v", progress, err)
	}
	screenshot(t, ctx, "dashboard.png")

	// The same page on a phone.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("on a phone, the page is wider than the screen")
	}
	screenshot(t, ctx, "dashboard-phone.png")

	if errs := pageErrors(); len(errs) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(errs, "\n"))
	}
}
