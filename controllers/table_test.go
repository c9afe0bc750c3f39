package controllers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// serverTable GETs a collection as the server-side Table kubectl prints.
// It retries while a freshly installed CRD's storage initializes (429).
func serverTable(path string) *metav1.Table {
	GinkgoHelper()
	hc, err := rest.HTTPClientFor(cfg)
	Expect(err).NotTo(HaveOccurred())
	t := &metav1.Table{}
	Eventually(func(g Gomega) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
		resp, err := hc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
		g.Expect(json.Unmarshal(body, t)).To(Succeed())
	}).Should(Succeed())
	return t
}

// cells returns the row of obj as column name -> printed value.
func cells(t *metav1.Table, name string) map[string]string {
	GinkgoHelper()
	for _, row := range t.Rows {
		if fmt.Sprint(row.Cells[0]) != name {
			continue
		}
		m := map[string]string{}
		for i, c := range t.ColumnDefinitions {
			m[c.Name] = fmt.Sprint(row.Cells[i])
		}
		return m
	}
	Fail("no row for " + name)
	return nil
}

var _ = Describe("kubectl get", func() {
	DescribeTable("every kind prints the columns a person wants",
		func(plural string, want []string) {
			t := serverTable("/apis/claiim.io/v1alpha1/" + plural)
			var got []string
			for _, c := range t.ColumnDefinitions {
				got = append(got, c.Name)
			}
			Expect(got).To(Equal(want))
		},
		Entry("aiorgs", "aiorgs", []string{"Name", "Display Name", "Parent", "Path", "Ready", "Reason", "Age"}),
		Entry("skills", "skills", []string{"Name", "Display Name", "Org", "Latest", "Latest ID", "Ready", "Reason", "Age"}),
		Entry("policies", "policies", []string{"Name", "Display Name", "Org", "Enforcement", "Rules", "Version", "Ready", "Reason", "Age"}),
		Entry("agents", "agents", []string{"Name", "Display Name", "Org", "Skill", "Version", "Anchor", "Phase", "Skill Version ID", "Token ID", "Reason", "Age"}),
		Entry("pimrequests", "pimrequests", []string{"Name", "Requester", "Subject", "Phase", "Approved By", "Required", "Expires", "Reason", "Age"}),
		Entry("crossorggrants", "crossorggrants", []string{"Name", "Granting", "Receiving", "Phase", "Expires", "Skills", "Age"}),
	)

	It("fills the columns from live objects", func() {
		o := readyOrg(uniq("engineering"), "")
		s := deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, s)).To(Succeed())
		ns := newNamespace()
		a := agent(ns, "prod-deploy-bot", o.Name, s.Name, 1, anchor)
		Expect(k8s.Create(ctx, a)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(claiimv1.AgentInactive))
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(s), s)).To(Succeed())
			g.Expect(s.Status.LatestVersionID).NotTo(BeEmpty())
		}).Should(Succeed())

		row := cells(serverTable("/apis/claiim.io/v1alpha1/namespaces/"+ns+"/agents"), a.Name)
		Expect(row).To(HaveKeyWithValue("Phase", "Inactive"))
		Expect(row).To(HaveKeyWithValue("Anchor", anchor))
		Expect(row).To(HaveKeyWithValue("Org", o.Name))
		Expect(row).To(HaveKeyWithValue("Version", "1"))
		Expect(row).To(HaveKeyWithValue("Skill Version ID", s.Status.LatestVersionID))
		Expect(row).To(HaveKeyWithValue("Reason", claiimv1.ReasonAnchorNotAccepted))

		row = cells(serverTable("/apis/claiim.io/v1alpha1/skills"), s.Name)
		Expect(row).To(HaveKeyWithValue("Latest ID", s.Status.LatestVersionID))
		Expect(row).To(HaveKeyWithValue("Ready", "True"))

		row = cells(serverTable("/apis/claiim.io/v1alpha1/aiorgs"), o.Name)
		Expect(row).To(HaveKeyWithValue("Path", o.Name))
		Expect(row).To(HaveKeyWithValue("Ready", "True"))

		p := policy(uniq("staging-freeze"), o.Name, denyRule("freeze", "deploy:staging"))
		p.Spec.Enforcement = claiimv1.PolicyAudit
		Expect(k8s.Create(ctx, p)).To(Succeed())
		Expect(cells(serverTable("/apis/claiim.io/v1alpha1/policies"), p.Name)).To(HaveKeyWithValue("Enforcement", "Audit"))
	})

	It("knows the short names: kubectl get aiorg,skill,pol,agent,pim", func() {
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		list, err := dc.ServerResourcesForGroupVersion(claiimv1.GroupVersion.String())
		Expect(err).NotTo(HaveOccurred())
		short := map[string][]string{}
		for _, r := range list.APIResources {
			short[r.Name] = r.ShortNames
		}
		Expect(short["aiorgs"]).To(ContainElement("aiorg"))
		Expect(short["skills"]).To(ContainElement("skill"))
		Expect(short["policies"]).To(ContainElement("pol"))
		Expect(short["agents"]).To(ContainElement("agent"))
		Expect(short["pimrequests"]).To(ContainElement("pim"))
		Expect(short["crossorggrants"]).To(ContainElement("grant"))
	})
})
