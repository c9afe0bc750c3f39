package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/test/testenv"
)

const (
	testGateURL   = "http://claiim-gate.test.svc:8181/v"
	gateNamespace = "claiim-system"
)

var gateConfig = controllers.GateConfig{Namespace: gateNamespace, Image: "ghcr.io/claiim/claiim:v0.1.0", Replicas: 2, Port: 8181, DatabaseSecret: "claiim-database", TLS: true,
	Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1000Mi")}}}

var (
	cfg *rest.Config
	k8s client.Client
	ctx context.Context
)

func TestControllers(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	env := testenv.Setup(GinkgoT(), testenv.Options{
		Log:     GinkgoWriter,
		Objects: []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gateNamespace}}},
		Manager: &testenv.Manager{Cache: controllers.CacheOptions(), Setup: func(ctx context.Context, mgr ctrl.Manager, _ *testenv.Env) error {
			return controllers.Setup(ctx, mgr, controllers.Options{GateURL: testGateURL, Gate: &gateConfig})
		}},
	})
	ctx, cfg, k8s = env.Context(), env.Config, env.Client
})

// newNamespace makes a namespace for one test's namespaced objects.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// uniq makes a cluster-scoped name unique to one test.
func uniq(prefix string) string {
	return prefix + "-" + utilrand.String(6)
}
