package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/testenv"
)

// getApproval asks GET /v/approvals/{id} as the holder of token.
func getApproval(token, id string) (int, api.ApprovalStatus) {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateURL+"/v/approvals/"+id, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var st api.ApprovalStatus
	Expect(json.Unmarshal(raw, &st)).To(Succeed(), string(raw))
	return resp.StatusCode, st
}

// The approval flow end to end (the manager, admission, two replicas) is
// test/approval's; here, the gate's own edges.
var _ = Describe("Approvals at the gate", func() {
	It("refuses a malformed approval_id as a bad request that names the field", func() {
		w := newWorld(worldOpts{accepted: true})
		status, body := validate(w.token, map[string]any{"action": "deploy:staging", "context": map[string]any{},
			"skill_version_id": w.svID, "approval_id": "Not/An Id"})
		Expect(status).To(Equal(http.StatusBadRequest))
		Expect(body["reason"]).To(Equal(api.ReasonBadRequest))
		Expect(body["field"]).To(Equal("approval_id"))
	})

	It("tells an agent about its own approvals only, and a retry with an unknown one waits", func() {
		w := newWorld(worldOpts{accepted: true})
		const id = "0193a1b2-0000-7000-8000-0000000000aa"
		status, st := getApproval(w.token, id)
		Expect(status).To(Equal(http.StatusOK))
		Expect(st.State).To(Equal(api.ApprovalPending))
		Expect(st.Message).To(ContainSubstring("not known to the gate yet"))

		// Another agent's approval, in the same namespace: as if absent.
		Expect(k8s.Create(ctx, &claiimv1.ActionApproval{ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: w.ns},
			Spec: claiimv1.ActionApprovalSpec{Agent: "someone-else", AgentUID: "uid-of-someone-else", Action: "deploy:staging",
				ContextDigest: "sha256:0000000000000000000000000000000000000000000000000000000000000000", SkillVersionID: w.svID,
				ApprovalsRequired: 1, RequestedAt: metav1.Now(), ExpiresAt: metav1.NewTime(time.Now().Add(time.Hour))}})).To(Succeed())
		Eventually(func() int {
			status, _ := getApproval(w.token, id)
			return status
		}).Should(Equal(http.StatusNotFound))
	})

	It("is ready and decides without the right to watch ActionApprovals, and knows no approval then", func() {
		// A gate role from before approvals existed, as during an upgrade.
		old := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: uniq("gate-before-approvals")}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"claiim.io"}, Resources: []string{"aiorgs", "skills", "policies", "agents", "crossorggrants"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}}
		Expect(k8s.Create(ctx, old)).To(Succeed())
		gateCfg, err := env.AddUser(testenv.User{Name: uniq("old-gate"), ClusterRoles: []string{old.Name}})
		Expect(err).NotTo(HaveOccurred())
		oldSrc, err := server.NewSource(gateCfg, testenv.Scheme())
		Expect(err).NotTo(HaveOccurred())
		oldSrc.KeysFrom, oldSrc.IgnoreAdmission = keysRef, true
		sctx, cancel := context.WithCancel(ctx)
		DeferCleanup(cancel)
		go func() { _ = oldSrc.Run(sctx) }()
		Eventually(oldSrc.Ready).Should(Succeed())
		Consistently(func() *claiimv1.ActionApproval { return oldSrc.Approval(sctx, "default", "any") }).
			WithTimeout(time.Second).Should(BeNil())
	})
})
