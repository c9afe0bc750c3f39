package server_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/pgtest"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The whole hot path with real parts: envtest's apiserver, the real
// reconcilers, the gate's informers, a real PostgreSQL for Chron, and the
// HTTP API on a local port.
var (
	env     *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	ctx     context.Context
	cancel  context.CancelFunc
	pg      *pgtest.Server
	pool    *pgxpool.Pool
	writer  *chron.Writer
	gateURL string
)

func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest and PostgreSQL")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Gate Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx, cancel = context.WithCancel(context.Background())

	var err error
	pg, pool, err = testenv.Chron(ctx)
	Expect(err).NotTo(HaveOccurred())
	writer, err = chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/test", CommitTimeout: time.Second})
	Expect(err).NotTo(HaveOccurred())

	env = testenv.New()
	cfg, err = testenv.Start(env)
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: testenv.Scheme(), Cache: controllers.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}})
	Expect(err).NotTo(HaveOccurred())
	Expect(controllers.Setup(ctx, mgr, controllers.Options{GateURL: "http://gate.test/v"})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()

	src, err := server.NewSource(cfg, testenv.Scheme())
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer GinkgoRecover()
		Expect(src.Run(ctx)).To(Succeed())
	}()
	srv := &server.Server{Snapshots: src, Log: writer, DB: pool, Replica: "test", WriteTimeout: 2 * time.Second,
		Logger: logf.Log.WithName("gate"), Reviewer: &server.TokenReviewer{Client: k8s}}
	hs := httptest.NewServer(srv.Handler())
	DeferCleanup(hs.Close)
	gateURL = hs.URL
	Eventually(src.Ready).Should(Succeed())
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if writer != nil {
		_ = writer.Close()
	}
	if pool != nil {
		pool.Close()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
	pg.Stop()
})
