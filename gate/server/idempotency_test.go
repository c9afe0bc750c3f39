package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/google/uuid"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	gateclient "github.com/claiim/claiim-operator/gate/client"
)

// askKeyed is w.ask with an Idempotency-Key.
func (w *world) askKeyed(key, action string) (int, map[string]any) {
	GinkgoHelper()
	b, _ := json.Marshal(api.ValidateRequest{Action: action, SkillVersionID: w.svID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateURL+"/v/validate", bytes.NewReader(b))
	Expect(err).NotTo(HaveOccurred())
	req.Header = http.Header{"Authorization": {"Bearer " + w.token}, api.IdempotencyKeyHeader: {key}}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	var out map[string]any
	Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return resp.StatusCode, out
}

// rowsWithID counts w's Chron rows stored under id.
func (w *world) rowsWithID(id any) int {
	GinkgoHelper()
	n := 0
	for _, r := range w.rows() {
		if r.ID == id {
			n++
		}
	}
	return n
}

var _ = Describe("An Idempotency-Key", func() {
	It("makes every try one decision: one row, the first answer, even after the agent is suspended", func() {
		w := newWorld(worldOpts{accepted: true})
		key := uuid.Must(uuid.NewV7()).String()
		status, first := w.askKeyed(key, "deploy:staging")
		Expect(status).To(Equal(http.StatusOK))
		Expect(first).To(HaveKeyWithValue("outcome", "ALLOW"))

		By("the agent is suspended: a new request is denied")
		w.update(func(a *claiimv1.Agent) { a.Spec.Lifecycle = claiimv1.LifecycleSuspended })
		asked := 0
		Eventually(func(g Gomega) {
			_, body := w.ask("deploy:staging", nil)
			asked++
			g.Expect(body).To(HaveKeyWithValue("reason", "AGENT_INACTIVE"))
		}).Should(Succeed())

		By("a retry of the first request gets its decision, already recorded, and records nothing")
		status, retry := w.askKeyed(key, "deploy:staging")
		Expect(status).To(Equal(http.StatusOK))
		for _, f := range []string{"outcome", "reason", "message", "decision_id", "chron_id", "skill_rules"} {
			Expect(retry).To(HaveKeyWithValue(f, first[f]))
		}
		Expect(w.rowsWithID(first["decision_id"])).To(Equal(1))

		By("a new key is a new decision")
		status, other := w.askKeyed(uuid.Must(uuid.NewV7()).String(), "deploy:staging")
		Expect(status).To(Equal(http.StatusForbidden))
		Expect(other).To(HaveKeyWithValue("reason", "AGENT_INACTIVE"))
		Expect(other["decision_id"]).NotTo(Equal(first["decision_id"]))
		Expect(w.rows()).To(HaveLen(1+asked+1), "one row per decision, none for the retry")
	})

	It("decides concurrent tries once", func() {
		w := newWorld(worldOpts{accepted: true})
		key := uuid.NewString()
		ids := make([]any, 8)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				defer GinkgoRecover()
				status, body := w.askKeyed(key, "deploy:staging")
				Expect(status).To(Equal(http.StatusOK))
				ids[i] = body["decision_id"]
			})
		}
		wg.Wait()
		Expect(ids).To(HaveEach(ids[0]))
		Expect(w.rows()).To(HaveLen(1))
	})

	It("names one decision per agent: two agents' equal keys are two decisions", func() {
		a, b := newWorld(worldOpts{accepted: true}), newWorld(worldOpts{accepted: true})
		key := uuid.NewString()
		_, ra := a.askKeyed(key, "deploy:staging")
		_, rb := b.askKeyed(key, "deploy:staging")
		Expect(ra).To(HaveKeyWithValue("outcome", "ALLOW"))
		Expect(rb).To(HaveKeyWithValue("outcome", "ALLOW"))
		Expect(ra["decision_id"]).NotTo(Equal(rb["decision_id"]))
	})

	It("reused for another request is a DENY of its own, recorded; the first decision is untouched", func() {
		w := newWorld(worldOpts{accepted: true})
		key := uuid.NewString()
		_, first := w.askKeyed(key, "deploy:staging")
		Expect(first).To(HaveKeyWithValue("outcome", "ALLOW"))
		status, body := w.askKeyed(key, "deploy:production")
		Expect(status).To(Equal(http.StatusConflict))
		Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
		Expect(body).To(HaveKeyWithValue("reason", api.ReasonIdempotencyConflict))
		Expect(body["message"]).To(ContainSubstring("new key"))
		Expect(body["decision_id"]).NotTo(Equal(first["decision_id"]))
		Expect(w.rows()).To(ContainElement(And(HaveField("ID", body["decision_id"]), HaveField("Action", "deploy:production"),
			HaveField("Reason", api.ReasonIdempotencyConflict), HaveField("Outcome", chron.OutcomeDeny))))
		Expect(w.rowsWithID(first["decision_id"])).To(Equal(1))
	})

	It("out of bounds is a bad request naming the header", func() {
		w := newWorld(worldOpts{accepted: true})
		for _, key := range []string{strings.Repeat("k", api.MaxIdempotencyKeyLen+1), "two words"} {
			status, body := w.askKeyed(key, "deploy:staging")
			Expect(status).To(Equal(http.StatusBadRequest))
			Expect(body).To(HaveKeyWithValue("reason", api.ReasonBadRequest))
			Expect(body).To(HaveKeyWithValue("field", api.IdempotencyKeyHeader))
		}
	})

	It("given to the Go client gets the first answer again", func() {
		w := newWorld(worldOpts{accepted: true})
		c := gateclient.New(gateURL+"/v", w.token, w.svID)
		key := gateclient.WithIdempotencyKey(gateclient.NewKey())
		r1, err := c.Validate(ctx, "deploy:staging", nil, key)
		Expect(err).NotTo(HaveOccurred())
		r2, err := c.Validate(ctx, "deploy:staging", nil, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(r2.DecisionID).To(Equal(r1.DecisionID))
		r3, err := c.Validate(ctx, "deploy:staging", nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(r3.DecisionID).NotTo(Equal(r1.DecisionID))
		Expect(w.rows()).To(HaveLen(2))
	})
})
