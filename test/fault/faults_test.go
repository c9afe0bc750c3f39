package fault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/api"
)

// The bounds this suite holds the system to (docs/reliability.md).
const (
	// recoveryBound: service is back (an ALLOW for agent A) within this
	// long after the repair, without restarting anything else.
	recoveryBound = 30 * time.Second
	// hangHold is how long PostgreSQL stays stopped (SIGSTOP).
	hangHold = 10 * time.Second
	// probeAllowance is added to the gate's --stale-after for the
	// freshness bound: the probe period and its per-call timeout.
	probeAllowance = 5 * time.Second
	// The load in make test: modest, fixed, a few workers.
	testRate    = 40
	testWorkers = 4
)

// window is one fault as it happened.
type window struct {
	start  time.Time // the fault began
	healed time.Time // the broken part was repaired (or replaced)
	// stream, when set, is the Chron stream of the gate that must answer
	// for service to count as back (a rollout's new gate).
	stream string
	// suspended is when agent C was suspended after the apiserver came
	// back; probes are its calls after that.
	suspended time.Time
	probes    []call
}

// fault breaks one part under load and repairs it.
type fault struct {
	name string
	// inject breaks the part, holds the fault, repairs it, and fills w.
	// It registers a t.Cleanup that repairs the part if the test stops
	// half-way, so the next fault starts from a working system.
	inject func(t *testing.T, s *system, w *window)
	// check returns what broke of this fault's own promise, beyond the
	// common invariants.
	check func(s *system, w *window, calls []call) error
	// recovery bounds (d) when it is not recoveryBound.
	recovery time.Duration
}

func faults() []fault {
	return []fault{
		{name: "PostgreSQL SIGKILL", inject: pgKill, check: refusedDuring},
		{name: "PostgreSQL SIGSTOP 10s", inject: pgHang, check: refusedDuring},
		{name: "PostgreSQL restart", inject: pgRestart},
		{name: "gate SIGTERM (rollout)", inject: gateRollout, check: noConnectionErrors},
		{name: "gate SIGKILL", inject: gateKill},
		// Last: after it the watches of the manager and the gate take up
		// to 30 s to retry, which the next fault would wait for.
		{name: "kube-apiserver killed", inject: apiserverStop, check: notReadyPastFreshness,
			// client-go's watch retry backs off up to 30 s, then the
			// gate proves its view fresh again.
			recovery: recoveryBound + probeAllowance},
	}
}

func pgKill(t *testing.T, s *system, w *window) {
	s.restartPGIfLeftDown(t)
	w.start = time.Now()
	pids, err := s.pg.signal(syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL will not start while its lock file names a live pid.
	eventually(t, time.Minute, "every PostgreSQL process exited", func() error {
		for _, pid := range pids {
			if !gone(pid) {
				return fmt.Errorf("pid %d is still there", pid)
			}
		}
		return nil
	})
	s.pgStart(t)
	w.healed = time.Now()
}

func pgHang(t *testing.T, s *system, w *window) {
	w.start = time.Now()
	pids, err := s.pg.signal(syscall.SIGSTOP)
	resume := func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(hangHold) // the fault itself: every process stopped this long
	resume()
	w.healed = time.Now()
}

func pgRestart(t *testing.T, s *system, w *window) {
	s.restartPGIfLeftDown(t)
	w.start = time.Now()
	if err := s.env.Postgres.Control(s.ctx, "stop"); err != nil {
		t.Fatal(err)
	}
	s.pgStart(t)
	w.healed = time.Now()
}

// restartPGIfLeftDown starts PostgreSQL again at the end of the test if
// the fault left it down.
func (s *system) restartPGIfLeftDown(t *testing.T) {
	t.Cleanup(func() {
		if s.env.Chron.Ping(s.ctx) != nil {
			_ = s.env.Postgres.Control(s.ctx, "start")
		}
	})
}

func (s *system) pgStart(t *testing.T) {
	if err := s.env.Postgres.Control(s.ctx, "start"); err != nil {
		t.Fatal(err)
	}
}

// freshBound is how long after the apiserver stopped the gate may still
// answer from its last view: --stale-after plus the probe's allowance.
func (s *system) freshBound() time.Duration { return s.staleAfter + probeAllowance }

func apiserverStop(t *testing.T, s *system, w *window) {
	// Agent C acts through the outage and is suspended once it ends.
	s.resume(t, s.c)
	down := true
	t.Cleanup(func() {
		if down {
			s.apiserver.start(t, filepath.Join(s.dir, "kube-apiserver.log"))
		}
	})
	s.apiserver.kill(t)
	w.start = time.Now()
	// Long enough past the bound for the load to show what the gate
	// answers once its view can no longer be proven fresh.
	time.Sleep(s.freshBound() + 3*time.Second)
	s.apiserver.start(t, filepath.Join(s.dir, "kube-apiserver.log"))
	down = false
	eventually(t, time.Minute, "kube-apiserver serves again", func() error {
		return s.env.Client.List(s.ctx, &corev1.NamespaceList{})
	})
	w.healed = time.Now()
	s.suspendAfterReturn(t, w)
}

// suspendAfterReturn suspends agent C right after the apiserver returned,
// while the gate's watches may still be backing off, and asks as C until
// the gate denies it or the freshness bound has passed.
func (s *system) suspendAfterReturn(t *testing.T, w *window) {
	s.setLifecycle(t, s.c, claiimv1.LifecycleSuspended)
	w.suspended = time.Now()
	h := httpClient(callTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for deadline := w.suspended.Add(s.freshBound() + time.Second); time.Now().Before(deadline); <-tick.C {
		c := s.call(s.c, h)
		w.probes = append(w.probes, c)
		if c.outcome == outcomeDeny {
			return
		}
	}
}

// gateRollout is a Deployment's rolling update: the new pod starts and is
// ready, the old one gets SIGTERM, and the Service drops it once its
// /ready fails; then it drains and exits.
func gateRollout(t *testing.T, s *system, w *window) {
	old := s.gate
	py := s.startPythonLoad(t, s.agentByLabel("A"))
	next := s.startGate(t, s.nextReplica(), 0)
	s.gate = next
	t.Cleanup(func() { s.route(next) })
	w.start = time.Now()
	old.signal(t, syscall.SIGTERM) // once: a second SIGTERM exits at once
	// The endpoints controller's view: the old pod leaves once not ready.
	eventually(t, 10*time.Second, "the terminating gate's /ready fails", func() error {
		if ready(old.base) == nil {
			return fmt.Errorf("gate %s is still ready", old.replica)
		}
		return nil
	})
	s.route(next)
	w.healed, w.stream = w.start, s.streamOf(t, next.replica)
	old.waitExit(t, shutdownDrain+20*time.Second)
	// The Python client's calls count like the Go load's: every ALLOW has
	// its row, and none failed (noConnectionErrors), across the old
	// gate's exit and on to the new one.
	eventually(t, 10*time.Second, "the Python load answered by the new gate", func() error { return py.answeredBy(w.stream) })
	pc := py.stop(t)
	if len(pc) == 0 {
		t.Error("the Python load made no call during the rollout")
	}
	w.probes = append(w.probes, pc...)
}

// gateKill is a crash: the container is killed and the kubelet restarts
// it in the same pod (same address, same replica name).
func gateKill(t *testing.T, s *system, w *window) {
	old := s.gate
	w.start = time.Now()
	old.signal(t, syscall.SIGKILL)
	old.waitExit(t, 10*time.Second)
	w.healed = time.Now()
	s.gate = s.startGate(t, old.replica, old.port)
	s.route(s.gate)
}

// refusedDuring: the fault was real, the gate refused while it lasted.
func refusedDuring(_ *system, w *window, calls []call) error {
	for _, c := range calls {
		if c.agent == "A" && c.outcome != outcomeAllow && !c.start.Before(w.start) && c.start.Before(w.healed) {
			return nil
		}
	}
	return fmt.Errorf("no call of agent A was refused while the fault lasted (%s): was it injected?", w.healed.Sub(w.start).Round(time.Millisecond))
}

// notReadyPastFreshness: past --stale-after (plus the probe allowance)
// with the apiserver down, the gate no longer vouches for its view: agent
// A is denied NOT_READY, so an agent suspended during the outage could not
// be allowed either; and once the apiserver is back, a suspension (agent
// C's) is honoured within the same bound, not when a backed-off watch
// happens to retry.
func notReadyPastFreshness(s *system, w *window, calls []call) error {
	after, seen, bad := w.start.Add(s.freshBound()), 0, 0
	var first call
	for _, c := range calls {
		if c.agent != "A" || c.start.Before(after) || !c.start.Before(w.healed) {
			continue
		}
		seen++
		if c.outcome != outcomeDeny || c.reason != api.ReasonNotReady {
			if bad++; bad == 1 {
				first = c
			}
		}
	}
	var errs []error
	switch {
	case seen == 0:
		errs = append(errs, errors.New("no call of agent A was made between the freshness bound and the apiserver's return"))
	case bad > 0:
		errs = append(errs, fmt.Errorf("past the freshness bound (%s) with the apiserver down, %d of %d answers to agent A were not DENY %s; the first, %s after the stop: %s %s %s",
			s.freshBound(), bad, seen, api.ReasonNotReady, first.start.Sub(w.start).Round(time.Millisecond), first.outcome, first.reason, first.err))
	}
	if n := len(w.probes); n > 0 && w.probes[n-1].outcome == outcomeAllow {
		errs = append(errs, fmt.Errorf("agent C, suspended just after the apiserver returned, was still allowed %s later (freshness bound %s)",
			w.probes[n-1].end.Sub(w.suspended).Round(time.Millisecond), s.freshBound()))
	}
	return errors.Join(errs...)
}

// noConnectionErrors: a rollout is not an outage; every call is answered,
// and agent A is never refused.
func noConnectionErrors(_ *system, _ *window, calls []call) error {
	bad := 0
	var first call
	for _, c := range calls {
		if c.outcome == outcomeError || (c.agent == "A" && c.outcome != outcomeAllow) {
			if bad++; bad == 1 {
				first = c
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("during the rollout %d calls failed; the first, of agent %s: %s %s (HTTP %d) %s",
			bad, first.agent, first.outcome, first.reason, first.status, first.err)
	}
	return nil
}

// chronVerify runs `claiim chron verify` over everything the faults left.
func (s *system) chronVerify(t *testing.T) {
	cmd := exec.Command(s.claiim, "chron", "verify", "--offline") // the suite runs no stream Leases
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("claiim chron verify after the faults: %v\n%s", err, out)
	}
}

// ensureServing is a guard between faults: the gate answers A.
func (s *system) ensureServing(t *testing.T) {
	eventually(t, recoveryBound, "the gate answers agent A with ALLOW", func() error { return s.expect(s.a, true) })
}

// streamOf is the Chron stream the gate replica holds: the stream of the
// Lease whose holder is that replica (chronlease: "<replica>_<suffix>").
func (s *system) streamOf(t *testing.T, replica string) string {
	t.Helper()
	var stream string
	eventually(t, 10*time.Second, "gate "+replica+" holds a Chron stream", func() error {
		leases := &coordinationv1.LeaseList{}
		if err := s.env.Client.List(s.ctx, leases, client.InNamespace("claiim-system")); err != nil {
			return err
		}
		for _, l := range leases.Items {
			i, ok := strings.CutPrefix(l.Name, "claiim-chron-gate-")
			if ok && strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), replica+"_") {
				stream = "gate/" + i
				return nil
			}
		}
		return fmt.Errorf("no Lease held by %s", replica)
	})
	return stream
}
