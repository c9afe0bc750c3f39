package server_test

import (
	"net/http"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/gate/chron"
)

// actions are batch items naming only an action.
func actions(names ...string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = map[string]any{"action": map[string]any{"name": n}}
	}
	return out
}

// batch posts a batch under w's subject and returns the status, the
// decisions in order and their reason codes.
func (w *world) batch(semantic string, items []any) (int, []any, []string) {
	GinkgoHelper()
	body := map[string]any{"subject": w.subject(), "context": map[string]any{"target": "eu-1"}, "evaluations": items}
	if semantic != "" {
		body["options"] = map[string]any{"evaluations_semantic": semantic}
	}
	status, out, _ := authzen("/access/v1/evaluations", w.token, body, "")
	evs, ok := out["evaluations"].([]any)
	Expect(ok).To(BeTrue(), "%v", out)
	var decisions []any
	var reasons []string
	for _, e := range evs {
		decisions = append(decisions, e.(map[string]any)["decision"])
		reasons = append(reasons, decisionContext(e)["reason_code"].(string))
	}
	return status, decisions, reasons
}

// decisionRows counts w's decision rows.
func (w *world) decisionRows() int {
	GinkgoHelper()
	n := 0
	for _, r := range w.rows() {
		if r.Kind == chron.KindDecision {
			n++
		}
	}
	return n
}

var _ = Describe("AuthZEN evaluations", func() {
	It("runs every evaluation by default, in the order asked, one Chron row each, with the batch's defaults", func() {
		w := newWorld(worldOpts{accepted: true})
		status, decisions, reasons := w.batch("", actions("deploy:staging", "deploy:production", "db:orders:read", "deploy:staging"))
		Expect(status).To(Equal(http.StatusOK))
		Expect(decisions).To(Equal([]any{true, false, false, true}))
		Expect(reasons).To(Equal([]string{"OWN_AIORG", "SKILL_FORBIDDEN", "NOT_PERMITTED", "OWN_AIORG"}))
		rows := w.rows()
		Expect(rows).To(HaveLen(4))
		for _, r := range rows {
			Expect(r.Context).To(HaveKeyWithValue("target", "eu-1"), "the batch's default context")
		}
	})

	It("stops at the first deny (deny_on_first_deny) or the first permit (permit_on_first_permit)", func() {
		w := newWorld(worldOpts{accepted: true})
		status, decisions, reasons := w.batch("deny_on_first_deny", actions("deploy:staging", "deploy:production", "deploy:staging"))
		Expect(status).To(Equal(http.StatusOK))
		Expect(decisions).To(Equal([]any{true, false}))
		Expect(reasons).To(Equal([]string{"OWN_AIORG", "SKILL_FORBIDDEN"}))
		Expect(w.decisionRows()).To(Equal(2), "what was not evaluated was not recorded")

		_, decisions, _ = w.batch("permit_on_first_permit", actions("deploy:production", "deploy:staging", "deploy:production"))
		Expect(decisions).To(Equal([]any{false, true}))
		Expect(w.decisionRows()).To(Equal(4))

		_, decisions, _ = w.batch("deny_on_first_deny", actions("deploy:staging", "deploy:staging"))
		Expect(decisions).To(Equal([]any{true, true}), "nothing to stop at: all of them")
	})

	It("answers a refused item as that item's false, and refuses a batch out of bounds", func() {
		a, b := newWorld(worldOpts{accepted: true}), newWorld(worldOpts{accepted: true})
		items := actions("deploy:staging", "deploy:staging")
		items[1].(map[string]any)["subject"] = b.subject()
		status, decisions, reasons := a.batch("", items)
		Expect(status).To(Equal(http.StatusOK))
		Expect(decisions).To(Equal([]any{true, false}))
		Expect(reasons).To(Equal([]string{"OWN_AIORG", "SUBJECT_MISMATCH"}))
		Expect(b.rows()).To(BeEmpty())

		names := make([]string, 65)
		for i := range names {
			names[i] = "deploy:staging"
		}
		before := a.decisionRows()
		for _, body := range []map[string]any{
			{"subject": a.subject(), "evaluations": actions(names...)},
			{"subject": a.subject(), "evaluations": actions("deploy:staging"), "options": map[string]any{"evaluations_semantic": "first_come"}},
		} {
			status, out, _ := authzen("/access/v1/evaluations", a.token, body, "")
			Expect(status).To(Equal(http.StatusBadRequest))
			Expect(out).To(HaveKeyWithValue("decision", false))
			Expect(decisionContext(out)).To(HaveKeyWithValue("reason_code", "BAD_REQUEST"))
		}
		Expect(a.decisionRows()).To(Equal(before+2), "one BAD_REQUEST row per refused batch, none for its items")

		By("without evaluations, the batch is one evaluation of its defaults")
		status, out, _ := authzen("/access/v1/evaluations", a.token, map[string]any{"subject": a.subject(), "action": map[string]any{"name": "deploy:staging"}}, "")
		Expect(status).To(Equal(http.StatusOK))
		Expect(out).To(HaveKeyWithValue("decision", true))
	})
})
