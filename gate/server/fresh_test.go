package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/chron"
	gateclient "github.com/claiim/claiim-operator/gate/client"
	"github.com/claiim/claiim-operator/gate/server"
	"github.com/claiim/claiim-operator/test/testenv"
)

// answers keeps every answer a test got, with when it was asked.
type answers struct {
	mu  sync.Mutex
	log []answer
}

type answer struct {
	asked time.Time
	got   string // "ALLOW OWN_AIORG", "DENY NOT_READY", …
}

// ask asks the gate whether c's agent may deploy to staging.
func (a *answers) ask(c *gateclient.Client) string {
	asked := time.Now()
	got := "ERROR"
	r, err := c.Validate(ctx, "deploy:staging", nil)
	var d *gateclient.Denied
	switch {
	case err == nil:
		got = "ALLOW " + r.Reason
	case errors.As(err, &d):
		got = "DENY " + d.Reason
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = append(a.log, answer{asked, got})
	return got
}

// allowedAfter lists the ALLOWs asked for after t.
func (a *answers) allowedAfter(t time.Time) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, x := range a.log {
		if x.asked.After(t) && strings.HasPrefix(x.got, "ALLOW") {
			out = append(out, fmt.Sprintf("%s asked %s after the bound", x.got, x.asked.Sub(t)))
		}
	}
	return out
}

// A gate whose only way to the apiserver is a fault proxy: each fault
// makes it answer DENY NOT_READY within StaleAfter of the change it cannot
// see, never ALLOW a suspended agent past that, and recover by itself.
var _ = Describe("Fresh or closed", Ordered, func() {
	const staleAfter = 2 * time.Second
	var (
		proxy *faultProxy
		api   string // the gate under test's /v base URL
		ready string // and its /ready
	)
	BeforeAll(func() {
		proxy = startFaultProxy(cfg)
		DeferCleanup(proxy.close)
		src, err := server.NewSource(proxy.config(cfg), testenv.Scheme())
		Expect(err).NotTo(HaveOccurred())
		src.StaleAfter = staleAfter
		src.KeysFrom = keysRef
		src.IgnoreAdmission = true
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			Expect(src.Run(sctx)).To(Succeed())
		}()
		DeferCleanup(func() { stop(); <-done })
		writer, err := chron.NewWriter(ctx, pool, chron.WriterOptions{Stream: "gate/fresh-test", CommitTimeout: time.Second})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(writer.Close)
		srv := &server.Server{Snapshots: src, Log: writer, DB: pool, Replica: "fresh-test", Logger: logf.Log.WithName("fresh-gate")}
		hs := httptest.NewServer(srv.Handler())
		DeferCleanup(hs.Close)
		api, ready = hs.URL+"/v", hs.URL+"/ready"
		Eventually(src.Ready).Should(Succeed())
	})

	DescribeTable("DENY NOT_READY within StaleAfter of a change the gate cannot see, no ALLOW past it, recovery without a restart",
		func(mode faultMode) {
			var a, o answers // the suspended agent's answers, the other's
			suspended, other := newWorld(worldOpts{accepted: true}), newWorld(worldOpts{accepted: true})
			sc, oc := gateclient.New(api, suspended.token, suspended.svID), gateclient.New(api, other.token, other.svID)
			Eventually(func() string { return a.ask(sc) }).Should(Equal("ALLOW OWN_AIORG"))
			Eventually(func() string { return o.ask(oc) }).Should(Equal("ALLOW OWN_AIORG"))

			proxy.set(mode)
			DeferCleanup(proxy.set, modePass)
			suspended.update(func(ag *claiimv1.Agent) { ag.Spec.Lifecycle = claiimv1.LifecycleSuspended }) // straight to the apiserver
			bound := time.Now().Add(staleAfter)
			if mode == modeSilentAgents {
				By("events of the other kinds keep flowing: they must not vouch for the Agents watch")
				Expect(k8s.Create(ctx, &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: uniq("churn")}})).To(Succeed())
			}

			Eventually(func() string { return a.ask(sc) }, staleAfter+2*time.Second).Should(Equal("DENY NOT_READY"))
			notReady := time.Since(bound.Add(-staleAfter))
			status, body := get(ready)
			Expect(status).To(Equal(http.StatusServiceUnavailable))
			Expect(body["reason"]).To(And(ContainSubstring("could not confirm its view of the apiserver for more than 2s"),
				ContainSubstring("check that the apiserver is reachable from the gate")))
			Expect(o.ask(oc)).To(Equal("DENY NOT_READY"), "the whole gate is closed, not one agent")
			Consistently(func() string { return a.ask(sc) }, staleAfter/2).ShouldNot(HavePrefix("ALLOW"))

			proxy.set(modePass)
			back := time.Now()
			Eventually(func() string { return a.ask(sc) }).Should(Equal("DENY AGENT_INACTIVE"))
			Eventually(func() string { return o.ask(oc) }).Should(Equal("ALLOW OWN_AIORG"))
			Expect(a.allowedAfter(bound)).To(BeEmpty(), "the suspended agent got ALLOW past the bound")
			AddReportEntry(mode.String(), fmt.Sprintf("NOT_READY %.1fs after the suspension (bound %s); recovered %.1fs after the fault ended; body: %s",
				notReady.Seconds(), staleAfter, time.Since(back).Seconds(), body["reason"]))
		},
		Entry("the apiserver stopped: connections refused", modeRefuse),
		Entry("every request answered 429", modeThrottle),
		Entry("connections accepted and never answered", modeHang),
		Entry("watches open but silent", modeSilent),
		Entry("the Agents watch silent while other kinds' events flow", modeSilentAgents),
	)
})

func get(url string) (int, map[string]string) {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	out := map[string]string{}
	Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return resp.StatusCode, out
}
