package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
)

// subject is the AuthZEN subject of w's agent.
func (w *world) subject() map[string]any {
	return map[string]any{"type": "agent", "id": w.ns + "/" + w.agent.Name, "properties": map[string]any{"skill_version_id": w.svID}}
}

// authzen posts an AuthZEN body and returns the status, the decoded body
// and the X-Request-ID the gate echoed.
func authzen(path, token string, body any, requestID string) (int, map[string]any, string) {
	GinkgoHelper()
	b, err := json.Marshal(body)
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateURL+path, bytes.NewReader(b))
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if requestID != "" {
		req.Header.Set("X-Request-ID", requestID)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	Expect(json.Unmarshal(raw, &out)).To(Succeed(), string(raw))
	return resp.StatusCode, out, resp.Header.Get("X-Request-ID")
}

// decisionContext is the "context" of an AuthZEN decision.
func decisionContext(d any) map[string]any {
	GinkgoHelper()
	m, ok := d.(map[string]any)
	Expect(ok).To(BeTrue(), "%v", d)
	c, ok := m["context"].(map[string]any)
	Expect(ok).To(BeTrue(), "%v", d)
	return c
}

// rowByID finds w's row with the given id.
func (w *world) rowByID(id any) chron.Row {
	GinkgoHelper()
	for _, r := range w.rows() {
		if r.ID == id {
			return r
		}
	}
	Fail("no row " + id.(string))
	return chron.Row{}
}

// recorded is what a decision row says, without what differs between
// any two rows (id, time, request id, place in the chain).
func recorded(r chron.Row) chron.Record {
	rec := r.Record
	rec.ID, rec.RequestID, rec.Time = "", "", time.Time{}
	return rec
}

var _ = Describe("AuthZEN", func() {
	It("answers an evaluation with the /v/validate decision and the same Chron row", func() {
		w := newWorld(worldOpts{accepted: true})
		for _, c := range []struct {
			action   string
			decision bool
			reason   string
		}{{"deploy:staging", true, "OWN_AIORG"}, {"deploy:production", false, "SKILL_FORBIDDEN"}, {"db:orders:read", false, "NOT_PERMITTED"}} {
			status, az, echoed := authzen("/access/v1/evaluation", w.token, map[string]any{"subject": w.subject(),
				"action": map[string]any{"name": c.action}, "resource": map[string]any{"type": "environment", "id": "eu-1"},
				"context": map[string]any{"target": "eu-1"}}, "req-"+c.action)
			Expect(status).To(Equal(http.StatusOK), "%v", az)
			Expect(echoed).To(Equal("req-"+c.action), "AuthZEN's X-Request-ID comes back")
			Expect(az).To(HaveKeyWithValue("decision", c.decision))
			dc := decisionContext(az)
			Expect(dc).To(HaveKeyWithValue("reason_code", c.reason))
			Expect(dc["reason"]).To(HaveKey("en"))

			vstatus, v := w.ask(c.action, map[string]any{"target": "eu-1", "resource": map[string]any{"type": "environment", "id": "eu-1"}})
			Expect(v).To(HaveKeyWithValue("reason", c.reason))
			Expect(vstatus == http.StatusOK).To(Equal(c.decision))

			azRow, vRow := w.rowByID(dc["decision_id"]), w.rowByID(v["decision_id"])
			Expect(azRow.Kind).To(Equal(chron.KindDecision))
			Expect(azRow.RequestID).To(Equal("req-" + c.action))
			Expect(azRow.Context).To(HaveKeyWithValue("resource", HaveKeyWithValue("id", "eu-1")), "the resource is part of what was asked")
			Expect(recorded(azRow)).To(Equal(recorded(vRow)), "the AuthZEN row and the /v/validate row differ")
			Expect(dc["chron_id"]).To(Equal(fmt.Sprintf("%s/%d", azRow.Stream, azRow.Seq)))
		}
	})

	It("never trusts the subject: another agent or another kind of subject is refused (403), recorded as the caller's", func() {
		a, b := newWorld(worldOpts{accepted: true}), newWorld(worldOpts{accepted: true})
		for _, sub := range []map[string]any{b.subject(), {"type": "user", "id": "admin@claiim.io", "properties": map[string]any{"skill_version_id": a.svID}}} {
			status, az, _ := authzen("/access/v1/evaluation", a.token, map[string]any{"subject": sub, "action": map[string]any{"name": "deploy:staging"}}, "")
			Expect(status).To(Equal(http.StatusForbidden))
			Expect(az).To(HaveKeyWithValue("decision", false))
			dc := decisionContext(az)
			Expect(dc).To(HaveKeyWithValue("reason_code", "SUBJECT_MISMATCH"))
			row := a.rowByID(dc["decision_id"])
			Expect(row.Outcome).To(Equal("DENY"))
			Expect(row.Context).To(HaveKeyWithValue("authzen_subject", HaveKeyWithValue("id", sub["id"])))
		}
		Expect(b.rows()).To(BeEmpty(), "nothing was decided for the agent named in the body")
	})

	It("refuses what it cannot decide, naming the member (400), and an unauthenticated caller (401)", func() {
		w := newWorld(worldOpts{accepted: true})
		noSV := w.subject()
		noSV["properties"] = map[string]any{}
		for _, c := range []struct {
			body  any
			field string
		}{
			{map[string]any{"subject": noSV, "action": map[string]any{"name": "deploy:staging"}}, "subject.properties.skill_version_id"},
			{map[string]any{"subject": w.subject(), "action": map[string]any{"name": "Deploy Staging"}}, "action.name"},
			{map[string]any{"subject": w.subject()}, "action"},
			{map[string]any{"action": map[string]any{"name": "deploy:staging"}}, "subject"},
			{map[string]any{"subject": w.subject(), "action": map[string]any{"name": "deploy:staging"}, "context": map[string]any{"s": strings.Repeat("x", 2000)}}, "context"},
			{map[string]any{"subject": w.subject(), "action": map[string]any{"name": 7}}, "action.name"},
			{[]any{1}, "body"},
		} {
			status, az, _ := authzen("/access/v1/evaluation", w.token, c.body, "")
			Expect(status).To(Equal(http.StatusBadRequest), "%v", c.body)
			Expect(az).To(HaveKeyWithValue("decision", false))
			dc := decisionContext(az)
			Expect(dc).To(HaveKeyWithValue("reason_code", "BAD_REQUEST"))
			Expect(dc).To(HaveKeyWithValue("field", c.field), "%v", dc["reason"])
			Expect(w.rowByID(dc["decision_id"]).Reason).To(Equal("BAD_REQUEST"))
		}

		status, az, _ := authzen("/access/v1/evaluation", "", map[string]any{"subject": w.subject(), "action": map[string]any{"name": "deploy:staging"}}, "")
		Expect(status).To(Equal(http.StatusUnauthorized))
		Expect(az).To(HaveKeyWithValue("decision", false))
		Expect(decisionContext(az)).To(HaveKeyWithValue("reason_code", "UNAUTHENTICATED"))
		Expect(decisionContext(az)["decision_id"]).NotTo(BeEmpty(), "counted in its interval's auth.refused row")
	})

	It("authenticates an in-cluster agent by its projected ServiceAccount token", func() {
		w := newWorld(worldOpts{accepted: true})
		Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: "deploy-bot"}})).To(Succeed())
		w.update(func(a *claiimv1.Agent) { a.Spec.ServiceAccountName = "deploy-bot" })
		cs, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		tr, err := cs.CoreV1().ServiceAccounts(w.ns).CreateToken(ctx, "deploy-bot",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{server.Audience}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var dc map[string]any
		Eventually(func(g Gomega) {
			status, az, _ := authzen("/access/v1/evaluation", tr.Status.Token, map[string]any{"subject": w.subject(), "action": map[string]any{"name": "deploy:staging"}}, "")
			g.Expect(status).To(Equal(http.StatusOK), "%v", az)
			g.Expect(az).To(HaveKeyWithValue("decision", true))
			dc = decisionContext(az)
		}).Should(Succeed())
		Expect(w.rowByID(dc["decision_id"]).Actor).To(Equal("serviceaccount:" + w.ns + "/deploy-bot"))
	})

	It("serves its metadata with the endpoints' URLs", func() {
		resp, err := http.Get(gateURL + "/.well-known/authzen-configuration")
		Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		var md map[string]any
		Expect(json.NewDecoder(resp.Body).Decode(&md)).To(Succeed())
		Expect(md).To(Equal(map[string]any{"policy_decision_point": gateURL,
			"access_evaluation_endpoint":  gateURL + "/access/v1/evaluation",
			"access_evaluations_endpoint": gateURL + "/access/v1/evaluations"}))
	})
})
