package server_test

import (
	"net/http"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("Chron unavailable", Serial, func() {
	It("answers DENY/503 while PostgreSQL is down, never an ALLOW without its row, and recovers without a restart", func() {
		w := newWorld(worldOpts{accepted: true})
		var mu sync.Mutex
		var allowed []string // decision ids of every ALLOW answered
		ask := func() (int, map[string]any) {
			status, body := w.ask("deploy:staging", map[string]any{"target": "eu-staging-1"})
			if body["outcome"] == "ALLOW" {
				mu.Lock()
				allowed = append(allowed, body["decision_id"].(string))
				mu.Unlock()
			}
			return status, body
		}
		status, _ := ask()
		Expect(status).To(Equal(http.StatusOK))

		Expect(pg.Control(ctx, "stop")).To(Succeed())
		restarted := false
		DeferCleanup(func() {
			if !restarted {
				_ = pg.Control(ctx, "start")
			}
		})

		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				status, body := ask()
				Expect(status).To(Equal(http.StatusServiceUnavailable))
				Expect(body).To(HaveKeyWithValue("outcome", "DENY"))
				Expect(body).To(HaveKeyWithValue("reason", "CHRON_UNAVAILABLE"))
				Expect(body["message"]).To(ContainSubstring("fail-closed"))
			}()
		}
		wg.Wait()
		By("AuthZEN fails closed the same way, one evaluation or a batch")
		status, az, _ := authzen("/access/v1/evaluation", w.token, map[string]any{"subject": w.subject(), "action": map[string]any{"name": "deploy:staging"}}, "")
		Expect(status).To(Equal(http.StatusServiceUnavailable))
		Expect(az).To(HaveKeyWithValue("decision", false))
		Expect(decisionContext(az)).To(HaveKeyWithValue("reason_code", "CHRON_UNAVAILABLE"))
		status, az, _ = authzen("/access/v1/evaluations", w.token, map[string]any{"subject": w.subject(), "evaluations": actions("deploy:staging", "deploy:staging")}, "")
		Expect(status).To(Equal(http.StatusServiceUnavailable))
		Expect(az["evaluations"]).To(HaveEach(HaveKeyWithValue("decision", false)))
		resp, err := http.Get(gateURL + "/ready")
		Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))

		Expect(pg.Control(ctx, "start")).To(Succeed())
		restarted = true
		Eventually(func(g Gomega) {
			status, _ := ask()
			g.Expect(status).To(Equal(http.StatusOK))
		}).Should(Succeed())

		ids := map[string]bool{}
		for _, r := range w.rows() {
			ids[r.ID] = true
		}
		for _, id := range allowed {
			Expect(ids).To(HaveKey(id), "an ALLOW was answered without its Chron row")
		}
	})
})
