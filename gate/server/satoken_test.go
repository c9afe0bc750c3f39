package server_test

import (
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
)

var _ = Describe("In-cluster agents", func() {
	projected := func(ns, sa, audience string) string {
		GinkgoHelper()
		cs, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}

	It("authenticate with a projected ServiceAccount token (audience claiim-gate) mapped to their Agent", func() {
		w := newWorld(worldOpts{accepted: true})
		for _, sa := range []string{"deploy-bot", "unbound"} {
			Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: sa}})).To(Succeed())
		}
		w.update(func(a *claiimv1.Agent) { a.Spec.ServiceAccountName = "deploy-bot" })

		tok := projected(w.ns, "deploy-bot", server.Audience)
		var body map[string]any
		Eventually(func(g Gomega) {
			var status int
			status, body = validate(tok, map[string]any{"action": "deploy:staging", "skill_version_id": w.svID})
			g.Expect(status).To(Equal(http.StatusOK), "%v", body)
		}).Should(Succeed())
		Expect(body).To(HaveKeyWithValue("reason", "OWN_AIORG"))
		Expect(body).To(HaveKeyWithValue("agent", w.ns+"/prod-deploy-bot"))
		rows, _, err := chron.List(ctx, pool, chron.Filter{Agent: "prod-deploy-bot", Namespace: w.ns, Limit: 10})
		Expect(err).NotTo(HaveOccurred())
		Expect(rows).To(ContainElement(HaveField("Actor", "serviceaccount:"+w.ns+"/deploy-bot")))

		By("a token for another audience is refused")
		status, body := validate(projected(w.ns, "deploy-bot", "https://kubernetes.default.svc"), map[string]any{"action": "deploy:staging", "skill_version_id": w.svID})
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(body["message"]).To(ContainSubstring("audience " + server.Audience))

		By("a ServiceAccount bound to no agent is refused, and told why")
		status, body = validate(projected(w.ns, "unbound", server.Audience), map[string]any{"action": "deploy:staging", "skill_version_id": w.svID})
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(body["message"]).To(ContainSubstring("bound to no agent"))
	})
})
