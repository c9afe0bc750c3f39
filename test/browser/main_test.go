// Package browser drives the web console with a real browser (Chromium,
// through the DevTools protocol with chromedp), as the onboarding guide's
// two people would: each in their own browser, logging in with their own
// token. It takes the screenshots docs/console.md shows
// (CLAIIM_SCREENSHOTS=docs/images, `make screenshots`).
package browser

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/claiim/claiim-operator/test/consoletest"
	"github.com/claiim/claiim-operator/test/testenv"
)

var world *consoletest.World

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping: needs envtest, PostgreSQL and Chromium")
		os.Exit(0)
	}
	if _, err := chromium(); err != nil {
		if os.Getenv("CLAIIM_BROWSER_REQUIRED") != "" {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("skipping:", err)
		os.Exit(0)
	}
	if err := testenv.Available(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var err error
	if world, err = consoletest.Launch(consoletest.Options{Gate: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := world.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// chromium finds the browser: $CHROMIUM, else Debian's chromium.
func chromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Chromium for the console's browser test: install it (hack/ensure-deps.sh browser, or apt-get install chromium) or set $CHROMIUM")
}

// person is one person's own browser: its own profile, so its own cookies.
type person struct {
	t    *testing.T
	user string
	ctx  context.Context
}

// open starts a browser for user; it closes when the test ends.
func open(t *testing.T, user string) *person {
	t.Helper()
	path, err := chromium()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// The test console's certificate is httptest's own.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(world.Ctx, opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser, which lives as long as the
	// context of that run: not a step's timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium for %s: %v", user, err)
	}
	p := &person{t: t, user: user, ctx: ctx}
	p.run(chromedp.Navigate(world.Server.URL + "/login"))
	return p
}

// run runs steps in the person's browser, failing the test on error.
func (p *person) run(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s's browser: %v", p.user, err)
	}
}

// get runs one action that reads something and returns it.
func get[T any](p *person, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s's browser: %v", p.user, err)
	}
	return v
}

// text is the text of the first element matching the CSS selector sel.
func (p *person) text(sel string) string {
	p.t.Helper()
	return get(p, chromedp.Text(chromedp.CSS(sel)))
}

// screenshot saves the page as NAME.png in $CLAIIM_SCREENSHOTS, if set.
func (p *person) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("CLAIIM_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(p, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// login logs the person in with their own token, as they would paste it.
func (p *person) login() {
	p.t.Helper()
	p.run(
		chromedp.Navigate(world.Server.URL+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SetValue(chromedp.CSS(`#token`), world.Env.Token(p.user)),
		chromedp.Submit(chromedp.CSS(`#token`)),
		chromedp.WaitVisible(chromedp.CSS(`#whoami`)),
	)
	if got := p.text(`#whoami`); got != p.user {
		p.t.Fatalf("logged in as %q, want %q", got, p.user)
	}
}
