package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/server"
)

var _ = Describe("Requests that fail authentication", func() {
	// The gate under test has its own limits and a clock that moves only
	// when the test says: buckets never refill behind its back.
	var (
		c    *clock
		h    http.Handler
		refs *server.Refusals
	)
	BeforeEach(func() {
		c = &clock{t: time.Now()}
		refs = &server.Refusals{Log: writer, Replica: "abuse-test", Interval: time.Hour, Now: c.Now}
		h = (&server.Server{Snapshots: src, Log: writer, DB: pool, Replica: "abuse-test", WriteTimeout: 2 * time.Second,
			Now: c.Now, Logger: logf.Log.WithName("abuse-gate"), Refusals: refs,
			Limits: server.AuthLimits{PerSource: 2, PerToken: 1, Tarpit: -1}}).Handler() // bursts: 4 per address, 2 per token id; no wait
	})

	ask := func(from, tok string, w *world) (int, api.ValidateResponse) {
		GinkgoHelper()
		body, _ := json.Marshal(map[string]any{"action": "deploy:staging", "skill_version_id": w.svID})
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v/validate", bytes.NewReader(body))
		req.RemoteAddr = from + ":40000"
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var resp api.ValidateResponse
		Expect(json.Unmarshal(rec.Body.Bytes(), &resp)).To(Succeed(), rec.Body.String())
		if rec.Code == http.StatusTooManyRequests {
			Expect(rec.Header().Get("Retry-After")).NotTo(BeEmpty())
		}
		return rec.Code, resp
	}
	refusedRows := func() map[string]chron.Row {
		GinkgoHelper()
		Expect(refs.Flush(ctx)).To(Succeed())
		rows, _, err := chron.List(ctx, pool, chron.Filter{Kind: string(chron.KindAuthRefused), Limit: 1000})
		Expect(err).NotTo(HaveOccurred())
		byID := map[string]chron.Row{}
		for _, r := range rows {
			byID[r.ID] = r
		}
		return byID
	}

	It("are limited per address and per token id, never the agent whose id they carry, and counted in one row per address and reason", func() {
		w := newWorld(worldOpts{accepted: true})
		id := strings.Split(w.token, "_")[1]
		wrongSecret := "clm_" + id + "_" + strings.Repeat("A", 43)
		unknown := "clm_0123456789abcdef_" + strings.Repeat("A", 43)

		By("an unknown token from one address: 401 within the address's burst, then 429 RATE_LIMITED")
		ids := map[int]string{}
		for i := range 10 {
			status, resp := ask("10.0.0.1", unknown, w)
			Expect(resp.Outcome).To(Equal(api.Deny))
			want, reason := http.StatusUnauthorized, "UNAUTHENTICATED"
			if i >= 4 {
				want, reason = http.StatusTooManyRequests, api.ReasonRateLimited
			}
			Expect(status).To(Equal(want), "request %d: %+v", i, resp)
			Expect(resp.Reason).To(Equal(reason))
			Expect(resp.DecisionID).NotTo(BeEmpty())
			ids[status] = resp.DecisionID
		}

		By("the agent's own token from that address: ALLOW, every time")
		for range 3 {
			status, resp := ask("10.0.0.1", w.token, w)
			Expect(status).To(Equal(http.StatusOK), "%+v", resp)
			Expect(resp.Reason).To(Equal("OWN_AIORG"))
		}

		By("the agent's token id with a wrong secret, from ever new addresses: the id's burst, then 429, while the agent is always allowed")
		var wrongIDs []string
		for i := range 6 {
			from := "10.0.1." + string(rune('1'+i))
			status, resp := ask(from, wrongSecret, w)
			want := http.StatusUnauthorized
			if i >= 2 {
				want = http.StatusTooManyRequests
				Expect(resp.Message).To(ContainSubstring("this token id"))
			}
			Expect(status).To(Equal(want), "request %d: %+v", i, resp)
			wrongIDs = append(wrongIDs, resp.DecisionID)
			status, resp = ask(from, w.token, w)
			Expect(status).To(Equal(http.StatusOK), "the agent after junk with its id: %+v", resp)
		}

		By("after a second the address may fail again")
		c.Step(time.Second)
		status, _ := ask("10.0.0.1", unknown, w)
		Expect(status).To(Equal(http.StatusUnauthorized))

		By("Chron holds one row per address and reason, with the count, not one per request")
		rows := refusedRows()
		first, limited := rows[ids[http.StatusUnauthorized]], rows[ids[http.StatusTooManyRequests]]
		Expect(first.Context).To(HaveKeyWithValue("source", "10.0.0.1"))
		Expect(first.Context).To(HaveKeyWithValue("cause", "unknown-token"))
		Expect(first.Context).To(HaveKeyWithValue("count", BeNumerically("==", 5))) // 4, and 1 after the second
		Expect(first.Reason).To(Equal("UNAUTHENTICATED"))
		Expect(first.Actor).To(BeEmpty(), "a made-up token id is noise, not an actor")
		Expect(limited.Context).To(HaveKeyWithValue("count", BeNumerically("==", 6)))
		Expect(limited.Reason).To(Equal(api.ReasonRateLimited))

		wrong := rows[wrongIDs[0]]
		Expect(wrong.Context).To(HaveKeyWithValue("cause", "wrong-secret"))
		Expect(wrong.Context).To(HaveKeyWithValue("count", BeNumerically("==", 1)))
		Expect(wrong.Actor).To(Equal("token:" + id))
		Expect(wrong.AgentName).To(Equal(w.agent.Name), "the row names the agent whose id was used")
		Expect(wrong.AgentNamespace).To(Equal(w.ns))
		Expect(wrong.Message).To(ContainSubstring("1 request to /v/validate from 10.0.1.1 refused UNAUTHENTICATED"))
		for _, id := range wrongIDs {
			Expect(rows).To(HaveKey(id))
		}

		By("the agent's answers each have their decision row")
		decided, _, err := chron.List(ctx, pool, chron.Filter{Agent: w.agent.Name, Namespace: w.ns, Kind: string(chron.KindDecision), Limit: 100})
		Expect(err).NotTo(HaveOccurred())
		Expect(decided).To(HaveLen(3 + 6))
		Expect(decided).To(HaveEach(HaveField("Outcome", "ALLOW")))
	})

	It("overflow into one row per reason and cause once an interval has its bound of rows", func() {
		w := newWorld(worldOpts{accepted: true})
		refs.MaxKeys = 3
		var got []string
		for i := range 8 {
			_, resp := ask("10.0.2."+string(rune('1'+i)), "", w)
			got = append(got, resp.DecisionID)
		}
		rows := refusedRows()
		over := rows[got[7]]
		Expect(got[3:]).To(HaveEach(Equal(over.ID)), "addresses past the bound share the overflow row")
		Expect(over.Context).To(HaveKeyWithValue("source", "*"))
		Expect(over.Context).To(HaveKeyWithValue("count", BeNumerically("==", 5)))
		Expect(over.Context).To(HaveKeyWithValue("cause", "no-token"))
		Expect(rows[got[0]].Context).To(HaveKeyWithValue("count", BeNumerically("==", 1)))
	})
})
