package controllers_test

import (
	"crypto/x509"
	"encoding/pem"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
)

var _ = Describe("The gate's transport", Serial, func() {
	gateKey := client.ObjectKey{Namespace: gateNamespace, Name: controllers.GateName}
	caBundle := func(g Gomega) string {
		cm := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: gateNamespace, Name: controllers.GateCAConfigMap}, cm)).To(Succeed())
		g.Expect(cm.Data["ca.crt"]).To(ContainSubstring("BEGIN CERTIFICATE"))
		return cm.Data["ca.crt"]
	}
	tlsSecret := func(g Gomega) *corev1.Secret {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: gateNamespace, Name: controllers.GateTLSSecret}, s)).To(Succeed())
		return s
	}

	It("serves HTTPS with a certificate for the gate Service, under the CA it publishes", func() {
		Eventually(func(g Gomega) {
			d := &appsv1.Deployment{}
			g.Expect(k8s.Get(ctx, gateKey, d)).To(Succeed())
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]
			g.Expect(c.Args).To(ContainElement("--tls-cert-dir=/etc/claiim/gate-tls"))
			g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTPS))
			g.Expect(c.LivenessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTPS))
			g.Expect(c.VolumeMounts).To(ContainElement(And(HaveField("MountPath", "/etc/claiim/gate-tls"), HaveField("ReadOnly", true))))
			var vol *corev1.SecretVolumeSource
			for _, v := range pod.Volumes {
				if v.Secret != nil && v.Secret.SecretName == controllers.GateTLSSecret {
					vol = v.Secret
				}
			}
			g.Expect(vol).NotTo(BeNil(), "no volume of Secret %s", controllers.GateTLSSecret)
			// The CA's key stays with the manager.
			g.Expect(vol.Items).To(ConsistOf(HaveField("Key", "tls.crt"), HaveField("Key", "tls.key")))
		}).Should(Succeed())

		Eventually(func(g Gomega) {
			sec := tlsSecret(g)
			bundle := caBundle(g)
			g.Expect(string(sec.Data["ca.crt"])).To(Equal(bundle))
			roots := x509.NewCertPool()
			g.Expect(roots.AppendCertsFromPEM([]byte(bundle))).To(BeTrue())
			block, _ := pem.Decode(sec.Data["tls.crt"])
			g.Expect(block).NotTo(BeNil())
			leaf, err := x509.ParseCertificate(block.Bytes)
			g.Expect(err).NotTo(HaveOccurred())
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "claiim-gate." + gateNamespace + ".svc",
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			g.Expect(err).NotTo(HaveOccurred())
		}).Should(Succeed())
	})

	It("admits only namespaces hosting Agents to the API, and hands their tokens the CA", func() {
		ns := newNamespace()
		o := readyOrg(uniq("tls"), "")
		skill := deployBot(uniq("tls-bot"), o.Name)
		Expect(k8s.Create(ctx, skill)).To(Succeed())
		a := agent(ns, "bot", o.Name, skill.Name, 1, "alice")
		Expect(k8s.Create(ctx, a)).To(Succeed())

		Eventually(func(g Gomega) {
			n := &corev1.Namespace{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, n)).To(Succeed())
			g.Expect(n.Labels).To(HaveKeyWithValue(controllers.LabelAgentsNamespace, "true"))
			sec := &corev1.Secret{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.TokenSecretName(a.Name)}, sec)).To(Succeed())
			g.Expect(string(sec.Data[claiimv1.SecretKeyGateCA])).To(Equal(caBundle(g)))
		}).Should(Succeed())

		np := &networkingv1.NetworkPolicy{}
		Expect(k8s.Get(ctx, gateKey, np)).To(Succeed())
		Expect(np.Spec.Ingress).To(HaveLen(2))
		api, metrics := np.Spec.Ingress[0], np.Spec.Ingress[1]
		Expect(api.Ports).To(ConsistOf(HaveField("Port", HaveValue(Equal(intstr.FromInt32(8181))))))
		Expect(api.From).To(ConsistOf(HaveField("NamespaceSelector.MatchLabels", Equal(map[string]string{controllers.LabelAgentsNamespace: "true"}))))
		Expect(metrics.Ports).To(ConsistOf(HaveField("Port", HaveValue(Equal(intstr.FromInt32(8182))))))

		By("a renewed CA reaches the agent's Secret")
		old := caBundle(Default)
		Expect(k8s.Delete(ctx, tlsSecret(Default))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(caBundle(g)).NotTo(Equal(old))
			sec := &corev1.Secret{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllers.TokenSecretName(a.Name)}, sec)).To(Succeed())
			g.Expect(string(sec.Data[claiimv1.SecretKeyGateCA])).To(Equal(caBundle(g)))
		}, 30*time.Second).Should(Succeed())

		By("the last Agent gone, the namespace is no longer admitted")
		Expect(k8s.Delete(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			n := &corev1.Namespace{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: ns}, n)).To(Succeed())
			g.Expect(n.Labels).NotTo(HaveKey(controllers.LabelAgentsNamespace))
		}).Should(Succeed())
	})
})
