package kubectlclaiim_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/internal/kubectlclaiim"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The console as it runs (test/consoletest): people's tokens reviewed by
// the console's own identity (claiim-console), Chron read as a login of
// the reader role, over HTTPS with a certificate no system trusts (hence
// --console-ca).
var (
	consoleURL string
	consoleCA  string // PEM file
	// resumed counts tails opened with Last-Event-ID: reconnections.
	resumed atomic.Int64
)

// countResumed counts the tails clients reopen.
func countResumed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/chron/tail") && r.Header.Get("Last-Event-ID") != "" {
			resumed.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// trustConsole writes the console's certificate where --console-ca reads it.
func trustConsole(dir string, srv *httptest.Server) error {
	consoleURL = srv.URL
	consoleCA = filepath.Join(dir, "console-ca.pem")
	return os.WriteFile(consoleCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
}

// viaConsole runs the plugin as user with their bearer token kubeconfig,
// reading Chron through the console.
func viaConsole(user string, args ...string) result {
	return run(tokenConf[user], append(args, "--console", consoleURL, "--console-ca", consoleCA)...)
}

func okViaConsole(t *testing.T, user string, args ...string) string {
	t.Helper()
	return must(t, viaConsole(user, args...), user, args)
}

// start runs the plugin as user through the console until ctx ends; the
// channel gets its exit status.
func start(ctx context.Context, user string, out, errOut *testenv.Output, args ...string) <-chan int {
	all := append([]string{"--kubeconfig", tokenConf[user], "--cache-dir", cacheDir}, args...)
	all = append(all, "--console", consoleURL, "--console-ca", consoleCA)
	done := make(chan int, 1)
	go func() {
		done <- kubectlclaiim.ExecuteContext(ctx, all, genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
	}()
	return done
}

// writer writes rows into Chron as a component would, on its own stream.
func writer(t *testing.T, stream string) *chron.Writer {
	t.Helper()
	w, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// decision writes one decision row of an agent of org.
func decision(t *testing.T, w *chron.Writer, agent, org, action string) chron.Row {
	t.Helper()
	row, err := w.Write(ctx, &chron.Record{Kind: chron.KindDecision, AgentName: agent, AgentNamespace: "default", Org: org,
		Action: action, Outcome: chron.OutcomeAllow, Reason: "OWN_AIORG", Anchor: adminUser, Replica: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return row
}
