package server_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// keysRef is where the manager publishes its attestation keys.
var keysRef = types.NamespacedName{Namespace: "claiim-system", Name: controllers.AttestationKeysConfigMap}

// The whole hot path with real parts: envtest's apiserver, the real
// reconcilers, the gate's informers, a real PostgreSQL for Chron, and the
// HTTP API on a local port.
var (
	cfg     *rest.Config
	k8s     client.Client
	ctx     context.Context
	pg      *pgtest.Server
	pool    *pgxpool.Pool
	gateURL string

	env      *testenv.Env
	src      *server.Source
	writer   *chron.Writer
	refusals *server.Refusals // the suite gate's: Flush it to read its rows
)

func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Gate Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	env = testenv.Setup(GinkgoT(), testenv.Options{
		Log:   GinkgoWriter,
		Chron: true,
		// The manager's namespace: its attestation key and published keys.
		Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: keysRef.Namespace}}},
		Manager: &testenv.Manager{Cache: controllers.CacheOptions(), Setup: func(ctx context.Context, mgr ctrl.Manager, _ *testenv.Env) error {
			return controllers.Setup(ctx, mgr, controllers.Options{GateURL: "http://gate.test/v"})
		}},
	})
	ctx, cfg, k8s, pg, pool = env.Context(), env.Config, env.Client, env.Postgres, env.Chron

	var err error
	writer, err = chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/test", CommitTimeout: time.Second})
	Expect(err).NotTo(HaveOccurred())
	env.OnStop(writer.Close)

	src, err = server.NewSource(cfg, testenv.Scheme())
	Expect(err).NotTo(HaveOccurred())
	src.KeysFrom = keysRef
	src.IgnoreAdmission = true // no admission webhooks in this suite: nothing is stamped
	go func() {
		defer GinkgoRecover()
		Expect(src.Run(ctx)).To(Succeed())
	}()
	// Refused requests are written when a test flushes them, never on a
	// timer under a test's feet.
	refusals = &server.Refusals{Log: writer, Replica: "test", Interval: time.Hour}
	srv := &server.Server{Snapshots: src, Log: writer, DB: pool, Replica: "test", WriteTimeout: 2 * time.Second, Approvals: src,
		Logger: logf.Log.WithName("gate"), Reviewer: &server.TokenReviewer{Client: k8s}, Refusals: refusals,
		Limits: server.AuthLimits{PerSource: 1000, Tarpit: -1}} // every test's client is 127.0.0.1; abuse_test.go tests the limits
	hs := httptest.NewServer(srv.Handler())
	DeferCleanup(hs.Close)
	gateURL = hs.URL
	Eventually(src.Ready).Should(Succeed())
})
