package chronlease

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/jackc/pgx/v5/pgxpool"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/test/testenv"
)

// One control plane and one PostgreSQL for the package; each test has
// its own namespace, and its streams live in that namespace's Leases.
var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || testenv.Available() != nil {
		os.Exit(m.Run()) // each test skips itself
	}
	var err error
	if env, err = testenv.Launch(testenv.Options{Chron: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// interval is short so that renewals, expiry and takeovers happen within
// a test; nothing asserts on how long they take.
const interval = 100 * time.Millisecond

type fixture struct {
	pool *pgxpool.Pool
	ns   string
	keys chron.KeySet
	ctx  context.Context
}

func setup(t *testing.T) *fixture {
	t.Helper()
	if env == nil {
		t.Skip("needs envtest and PostgreSQL")
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "chron-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	keys, err := EnsureKeySet(ctx, env.Client, ns.Name, GateKeysSecret, chron.ScopeGate, false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnsureKeySet(ctx, env.Client, ns.Name, GateKeysSecret, chron.ScopeGate, false)
	if err != nil || again.CurrentChain != keys.CurrentChain || again.CurrentSigning != keys.CurrentSigning {
		t.Fatalf("keys made again instead of read: %v", err)
	}
	if err := PublishPublic(ctx, env.Client, ns.Name, keys); err != nil {
		t.Fatal(err)
	}
	// Streams are named alike in every namespace: a database per test.
	url, err := env.Postgres.CreateDatabase(ctx, strings.ReplaceAll(ns.Name, "-", "_"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := chron.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return &fixture{ns: ns.Name, keys: keys, ctx: ctx, pool: pool}
}

func (f *fixture) holder(t *testing.T, c client.Client, size int) *Holder {
	return &Holder{Client: c, Namespace: f.ns, Scope: chron.ScopeGate, Size: size, Replica: "gate-" + utilrand.String(4),
		Interval: interval, Keys: f.keys, Log: testr.New(t)}
}

// writer opens the stream h holds, as the gate does.
func (f *fixture) writer(t *testing.T, h *Holder, stream string, cp *chron.Checkpoint) *chron.Writer {
	t.Helper()
	k := f.keys.ChainKey()
	w, err := chron.NewWriter(f.ctx, f.pool, chron.WriterOptions{Stream: stream, Key: &k, Guard: h.Guard,
		Checkpoint: cp, OnTamper: h.Tampered, CommitTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.Head = w.Head
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func record(i int) *chron.Record {
	return &chron.Record{Kind: chron.KindDecision, Action: fmt.Sprintf("act:%d", i), Outcome: chron.OutcomeDeny, Replica: "t"}
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) lease(t *testing.T, name string) *coordinationv1.Lease {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: name}, l); err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) source() Source {
	return Source{Reader: env.Client, LeaseNamespaces: []string{f.ns}, PublicNamespace: f.ns,
		KeySecrets: []SecretRef{{Namespace: f.ns, Name: GateKeysSecret, Scope: chron.ScopeGate}}}
}

// verify runs VerifyWith with what the API holds, as the CLI does.
func (f *fixture) verify(t *testing.T) []chron.Problem {
	t.Helper()
	opts, problems, err := f.source().Options(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := chron.VerifyWith(f.ctx, f.pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	return append(problems, rep.Problems...)
}

// TestCheckpointsPublished: a holder takes a stream of the set, publishes
// its head signed on the Lease while rows are written, and verify (with
// the public key alone, as the CLI can) checks the stream against it; a
// second process finds no free stream while the set is held.
func TestCheckpointsPublished(t *testing.T) {
	f := setup(t)
	h := f.holder(t, env.Client, 1)
	stream, cp, err := h.Acquire(f.ctx)
	if err != nil || stream != "gate/0" || cp != nil {
		t.Fatalf("acquire: %q %v %v", stream, cp, err)
	}
	w := f.writer(t, h, stream, cp)
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	go func() { _ = h.Run(ctx) }()
	var last chron.Row
	for i := range 5 {
		if last, err = w.Write(f.ctx, record(i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the checkpoint of seq 5", func() error {
		sc, err := chron.ParseCheckpoint(f.lease(t, "claiim-chron-gate-0").Annotations[AnnotationCheckpoint])
		if err != nil || sc.Seq != last.Seq || sc.Hash != last.Hash {
			return fmt.Errorf("checkpoint %+v (%w)", sc, err)
		}
		return nil
	})
	if p := f.verify(t); len(p) > 0 {
		t.Fatalf("clean log: %v", p)
	}
	if err := h.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}

	other := f.holder(t, env.Client, 1)
	short, cancel := context.WithTimeout(f.ctx, 5*interval)
	defer cancel()
	if s, _, err := other.Acquire(short); err == nil || s != "" {
		t.Fatalf("a second process took %q while it was held (%v)", s, err)
	}
}

// TestTakeoverChecksTheCheckpoint: a holder that stops renewing loses its
// stream to another process, which continues it only after checking the
// database against the signed checkpoint; the old holder stops writing.
// A tail cut below the checkpoint makes the new holder refuse and report.
func TestTakeoverChecksTheCheckpoint(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprintf("cut=%v", cut), func(t *testing.T) {
			f := setup(t)
			first := f.holder(t, env.Client, 1)
			stream, _, err := first.Acquire(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			w := f.writer(t, first, stream, nil)
			for i := range 4 {
				if _, err := w.Write(f.ctx, record(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := first.renew(f.ctx, false); err != nil { // publishes seq 4; then it goes silent
				t.Fatal(err)
			}
			if cut {
				if _, err := f.pool.Exec(f.ctx, "ALTER TABLE chron_records DISABLE TRIGGER ALL; DELETE FROM chron_records WHERE seq >= 3"); err != nil {
					t.Fatal(err)
				}
			}

			second := f.holder(t, env.Client, 1)
			got, cp, err := second.Acquire(f.ctx) // waits out the silent holder's lease
			if err != nil || got != stream || cp == nil || cp.Seq != 4 {
				t.Fatalf("takeover: %q %+v %v", got, cp, err)
			}
			w2 := f.writer(t, second, got, cp)
			row, err := w2.Write(f.ctx, record(9))
			if cut {
				if !errors.Is(err, chron.ErrTampered) || second.Ready() == nil {
					t.Fatalf("a stream cut below its checkpoint: %v (ready: %v), want ErrTampered and not ready", err, second.Ready())
				}
				return
			}
			if err != nil || row.Seq != 5 {
				t.Fatalf("continuing the stream: %+v, %v", row, err)
			}
			if err := first.renew(f.ctx, false); err == nil || first.Guard() == nil {
				t.Fatalf("the old holder still believes it holds the stream")
			}
			if _, err := w.Write(f.ctx, record(10)); err == nil {
				t.Fatal("the old holder's writer still writes")
			}
		})
	}
}

// TestNotReadyWithoutCheckpoints: a gate whose Lease updates are refused
// (its RBAC taken away; the gate's Role allows get and update of its set
// only) is not ready and stops writing past two intervals, and is ready
// again once it can publish.
func TestNotReadyWithoutCheckpoints(t *testing.T) {
	f := setup(t)
	const size = 2
	for _, name := range LeaseNames(chron.ScopeGate, size) { // made by the manager in a cluster
		if err := env.Client.Create(f.ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	user := "system:serviceaccount:" + f.ns + ":claiim-gate"
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "gate"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "update"},
		ResourceNames: LeaseNames(chron.ScopeGate, size)}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "gate"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "gate"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(f.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.AddUser(testenv.User{Name: user}); err != nil {
		t.Fatal(err)
	}
	h := f.holder(t, env.As(user), size)
	stream, cp, err := h.Acquire(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := f.writer(t, h, stream, cp)
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	go func() { _ = h.Run(ctx) }()
	if _, err := w.Write(f.ctx, record(1)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(f.ctx, binding); err != nil {
		t.Fatal(err)
	}
	eventually(t, "not ready", func() error {
		if err := h.Ready(); err == nil || !strings.Contains(err.Error(), "more than twice") {
			return fmt.Errorf("ready: %w", err)
		}
		return nil
	})
	if _, err := w.Write(f.ctx, record(2)); err == nil {
		t.Fatal("wrote without a published checkpoint")
	}
	binding.ResourceVersion = ""
	if err := env.Client.Create(f.ctx, binding); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready again", h.Ready)
	if _, err := w.Write(f.ctx, record(3)); err != nil {
		t.Fatal(err)
	}
}

// TestScheduledVerify: the manager's verify finds a stream removed below
// its checkpoint and raises a metric, a Warning Event and one
// chron.verify.failed row, however often it runs.
func TestScheduledVerify(t *testing.T) {
	f := setup(t)
	h := f.holder(t, env.Client, 1)
	stream, _, err := h.Acquire(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := f.writer(t, h, stream, nil)
	for i := range 3 {
		if _, err := w.Write(f.ctx, record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.renew(f.ctx, false); err != nil {
		t.Fatal(err)
	}
	mkeys, err := EnsureKeySet(f.ctx, env.Client, f.ns, ManagerKeysSecret, chron.ScopeManager, true)
	if err != nil {
		t.Fatal(err)
	}
	mk := mkeys.ChainKey()
	log, err := chron.NewWriter(f.ctx, f.pool, chron.WriterOptions{Stream: "manager/0", Key: &mk, IDKey: mkeys.EventID})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(f.ctx.Done())
	defer b.Shutdown()
	v := &Verifier{Pool: f.pool, Source: f.source(), Log: log, Recorder: b.NewRecorder(testenv.Scheme(), "claiim-chron"),
		Regarding: func() runtime.Object { return h.Lease() }, Logger: testr.New(t)}
	v.Source.KeySecrets = append(v.Source.KeySecrets, SecretRef{Namespace: f.ns, Name: ManagerKeysSecret, Scope: chron.ScopeManager})
	if p, err := v.Once(f.ctx); err != nil || len(p) > 0 {
		t.Fatalf("clean: %v %v", p, err)
	}

	if _, err := f.pool.Exec(f.ctx, "ALTER TABLE chron_records DISABLE TRIGGER ALL; DELETE FROM chron_records WHERE stream = 'gate/0'"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		p, err := v.Once(f.ctx)
		if err != nil || len(p) != 1 || !strings.HasPrefix(p[0].What, chron.WhatStreamRemoved) {
			t.Fatalf("after the stream's removal: %v %v", p, err)
		}
	}
	rows, _, err := chron.List(f.ctx, f.pool, chron.Filter{Kind: string(chron.KindVerifyFailed)})
	if err != nil || len(rows) != 1 || rows[0].Stream != "manager/0" || !strings.Contains(rows[0].Message, chron.WhatStreamRemoved) {
		t.Fatalf("chron.verify.failed rows: %+v %v", rows, err)
	}
	eventually(t, "the Warning Event", func() error {
		var list eventsv1.EventList
		if err := env.Client.List(f.ctx, &list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Reason == "ChronVerifyFailed" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "stream removed") {
				return nil
			}
		}
		return fmt.Errorf("%d events, none ChronVerifyFailed", len(list.Items))
	})
}
