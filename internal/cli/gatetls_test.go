package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/gate/client"
	"github.com/claiim/claiim-operator/test/testtls"
)

// TestGateServesTLSAndReloads runs the gate's listener as RunGate does with
// --tls-cert-dir: a client holding the published CA gets through, one
// without it is refused before it sends its token, and a certificate the
// manager renews under a new CA is served without a restart.
func TestGateServesTLSAndReloads(t *testing.T) {
	dir := t.TempDir()
	first := testtls.NewCA(t, "first")
	first.Publish(t, dir)

	api := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, `{"outcome":"ALLOW","reason":"OWN_AIORG","chron_id":"x"}`)
	}), ReadHeaderTimeout: 5 * time.Second}
	watcher, err := gateTLS(api, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = watcher.Start(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serveGate(api, ln) }()
	defer func() {
		_ = api.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serving: %v", err)
		}
	}()
	url := "https://" + ln.Addr().String() + "/v"

	ask := func(ca []byte) error {
		c := client.New(url, "clm_x_y", "sv")
		if ca != nil {
			if c, err = c.WithCA(ca); err != nil {
				return err
			}
		}
		_, err := c.Validate(ctx, "deploy:staging", nil)
		return err
	}
	if err := ask(first.PEM); err != nil {
		t.Fatalf("a client trusting the published CA: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := ask(nil); !errors.As(err, &unknown) {
		t.Fatalf("a client trusting only the system roots: got %v, want an unknown authority refusal", err)
	}

	second := testtls.NewCA(t, "second")
	second.Publish(t, dir)
	gomega.NewWithT(t).Eventually(func() error { return ask(second.PEM) }, 30*time.Second, 50*time.Millisecond).
		Should(gomega.Succeed(), "the renewed certificate is served without a restart")
	if err := ask(first.PEM); !errors.As(err, &unknown) {
		t.Fatalf("after the renewal under a new CA, the old CA alone: got %v, want an unknown authority refusal", err)
	}

	if _, err := client.New(url, "t", "sv").WithCA([]byte("not a certificate")); err == nil {
		t.Fatal("WithCA accepted a bundle without a certificate")
	}
}
