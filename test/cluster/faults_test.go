package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/client"
)

// answer is one call of the load.
type answer struct {
	outcome, reason, chronID string
	err                      error
}

// load is agents calling the gate Service, as pods do, from the node.
type load struct {
	mu      sync.Mutex
	answers []answer
	stop    chan struct{}
	wg      sync.WaitGroup
}

// startLoad calls deploy:staging (the seed's ALLOW) from workers through
// the gate Service's ClusterIP, with the agent's token, over TLS checked
// against the gate's CA under the Service's DNS name.
func (c *cluster) startLoad(t *testing.T, workers int) *load {
	t.Helper()
	secret := "prod-deploy-bot-claiim-token"
	url := c.secretValue("default", secret, "CLAIIM_GATE_URL")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.secretValue("default", secret, "CLAIIM_GATE_CA"))) {
		t.Fatal("CLAIIM_GATE_CA holds no certificate")
	}
	ip := strings.TrimSpace(c.kubectl("-n", ns, "get", "svc/claiim-gate", "-o", "jsonpath={.spec.clusterIP}"))
	// The node has no cluster DNS: dial the Service's ClusterIP, verify the name.
	var d net.Dialer
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		// A connection per call: kube-proxy spreads calls over every gate
		// pod, so a fault on any pod meets the load.
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return d.DialContext(ctx, network, net.JoinHostPort(ip, port))
		},
	}}
	gc := client.New(url, c.secretValue("default", secret, "AGENT_TOKEN"), c.secretValue("default", secret, "SKILL_VERSION_ID")).WithHTTPClient(hc)
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				r, err := gc.Validate(ctx, "deploy:staging", map[string]any{"target": "staging-eu-1"})
				cancel()
				a := answer{err: err}
				var den *client.Denied
				switch {
				case errors.As(err, &den) && den.Err == nil:
					a = answer{outcome: api.Deny, reason: den.Reason, chronID: den.ChronID}
				case err == nil:
					a = answer{outcome: r.Outcome, reason: r.Reason, chronID: r.ChronID}
				default:
					time.Sleep(100 * time.Millisecond) // the gate is away: don't spin
				}
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
			}
		})
	}
	// The load is only worth its name once answers flow.
	eventually(t, func(g Gomega) { g.Expect(l.allows()).To(BeNumerically(">", 0)) }, time.Minute)
	return l
}

func (l *load) allows() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.answers {
		if a.outcome == api.Allow {
			n++
		}
	}
	return n
}

// finish waits until ALLOWs flow again after the fault, stops the load and
// checks what the faults issue asks of every fault: each ALLOW and each
// recorded DENY is a Chron row; a DENY always says why; a failed call is
// the client's to retry, never a silent ALLOW.
func (c *cluster) finish(t *testing.T, l *load) {
	t.Helper()
	before := l.allows()
	eventually(t, func(g Gomega) { g.Expect(l.allows()).To(BeNumerically(">", before+5)) }, 2*time.Minute)
	close(l.stop)
	l.wg.Wait()
	counts := map[string]int{}
	for _, a := range l.answers {
		switch {
		case a.err != nil:
			counts["error"]++
		case a.outcome == api.Allow:
			counts["ALLOW"]++
			if a.chronID == "" {
				t.Errorf("an ALLOW without its Chron row id: %+v", a)
				continue
			}
			c.expectRow(t, a.chronID, "ALLOW")
		default:
			counts["DENY "+a.reason]++
			if a.reason == "" {
				t.Errorf("a DENY without a reason: %+v", a)
			}
			if a.chronID != "" {
				c.expectRow(t, a.chronID, "DENY")
			}
		}
	}
	t.Logf("answers during the fault: %v", counts)
}

// leaderDeleted deletes the pod holding the manager's Lease: the other
// replica takes it, and a PIM request (webhook, then controller) completes.
func (c *cluster) leaderDeleted(t *testing.T) {
	lease := "claiim-manager.claiim.io"
	holder := c.kubectl("-n", ns, "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
	pod, _, _ := strings.Cut(holder, "_")
	if pod == "" {
		t.Fatalf("lease %s has no holder (%q)", lease, holder)
	}
	c.kubectl("-n", ns, "delete", "pod", pod, "--wait=false")
	eventually(t, func(g Gomega) {
		h, err := c.as("", "-n", ns, "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(h).NotTo(BeEmpty())
		g.Expect(h).NotTo(HavePrefix(pod + "_"))
	}, 2*time.Minute)
	c.elevate(t)
	c.kubectl("-n", ns, "rollout", "status", "deploy/claiim-manager", "--timeout=3m")
}

// gateRolled restarts the gate Deployment under load.
func (c *cluster) gateRolled(t *testing.T) {
	l := c.startLoad(t, 4)
	c.kubectl("-n", ns, "rollout", "restart", "deploy/claiim-gate")
	c.kubectl("-n", ns, "rollout", "status", "deploy/claiim-gate", "--timeout=3m")
	c.finish(t, l)
}

// gatePodKilled crashes one gate pod mid-load: SIGKILL to its process, as
// the OOM killer would, so calls in flight on it are cut. The kubelet
// restarts the container; no answer given is without its row.
func (c *cluster) gatePodKilled(t *testing.T) {
	l := c.startLoad(t, 4)
	pod, uid := c.liveGatePod(t)
	pid := gateProcess(t, uid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, func(g Gomega) {
		out, err := c.as("", "-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(Equal("1 true"))
	}, 2*time.Minute)
	c.finish(t, l)
}

// liveGatePod is a gate pod not being deleted, with its UID: after the
// previous fault's rollout, old pods may still be terminating and vanish
// between a list and a get.
func (c *cluster) liveGatePod(t *testing.T) (name, uid string) {
	eventually(t, func(g Gomega) {
		out, err := c.as("", "-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=gate", "-o",
			`jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.metadata.deletionTimestamp}{"\n"}{end}`)
		g.Expect(err).NotTo(HaveOccurred())
		name, uid = "", ""
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				name, uid = f[0], f[1]
				break
			}
		}
		g.Expect(name).NotTo(BeEmpty(), "no gate pod that is not being deleted: %s", out)
	}, 2*time.Minute)
	return name, uid
}

// gateProcess finds the gate's process of the pod with this UID on the
// node (the test shares the node's process namespace).
func gateProcess(t *testing.T, podUID string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cg, err1 := os.ReadFile(filepath.Join(p, "cgroup"))
		cmd, err2 := os.ReadFile(filepath.Join(p, "cmdline"))
		if err1 != nil || err2 != nil || !strings.Contains(string(cg), "pod"+podUID) {
			continue
		}
		if args := strings.Split(string(cmd), "\x00"); len(args) > 1 && args[0] == "/claiim" && args[1] == "gate" {
			pid, _ := strconv.Atoi(filepath.Base(p))
			return pid
		}
	}
	t.Fatalf("no gate process of pod %s on the node", podUID)
	return 0
}

// helmUpgrade changes values under load: the manager rolls, and the gate
// follows the manager's new configuration.
func (c *cluster) helmUpgrade(t *testing.T) {
	l := c.startLoad(t, 4)
	if out, err := c.helmRun("upgrade", release, "charts/claiim", "-n", ns, "--reuse-values", "--wait", "--timeout", "5m",
		"--set", "manager.logLevel=debug", "--set", "gate.replicas=3"); err != nil {
		t.Fatal(err)
	} else {
		t.Log(out)
	}
	eventually(t, func(g Gomega) {
		out, err := c.as("", "-n", ns, "get", "deploy/claiim-gate", "-o", "jsonpath={.status.readyReplicas}")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out).To(Equal("3"))
	}, 3*time.Minute)
	c.finish(t, l)
}
