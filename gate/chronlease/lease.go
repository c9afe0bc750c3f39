package chronlease

// Stream leases. A writer's stream is not its pod's name (one stream per
// pod forever would grow the checkpoints without bound) but one of a fixed
// set: Lease claiim-chron-<scope>-<i> in the component's namespace gives
// stream <scope>/<i>. The holder renews its Lease every Interval and puts
// its stream's signed checkpoint on it in the same update, so checkpoints
// never outnumber the set.
//
// Exclusivity: another process takes a Lease only after seeing it
// unchanged for LeaseDuration (3 intervals) on its own clock, while the
// holder stops writing (Guard) once its last successful renewal is 2
// intervals old. UNIQUE (stream, seq) backs this up: even two writers
// that both believe they hold a stream cannot fork it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/claiim/claiim-operator/gate/chron"
)

// DefaultInterval is how often a holder renews its Lease and publishes its
// checkpoint. Rows written since the last checkpoint (at most one interval
// of them) are what a database superuser could cut from a tail unseen.
const DefaultInterval = 10 * time.Second

// LeaseName is the i-th Lease of scope's set.
func LeaseName(scope string, i int) string { return "claiim-chron-" + scope + "-" + strconv.Itoa(i) }

// LeaseNames are the names of scope's set of size Leases (RBAC names them).
func LeaseNames(scope string, size int) []string {
	out := make([]string, size)
	for i := range out {
		out[i] = LeaseName(scope, i)
	}
	return out
}

// StreamOf is the stream a Lease of the set gives, "" for another Lease.
func StreamOf(lease string) string {
	rest, ok := strings.CutPrefix(lease, "claiim-chron-")
	if !ok {
		return ""
	}
	scope, i, ok := strings.Cut(rest, "-")
	if _, err := strconv.Atoi(i); !ok || err != nil || chron.ScopeOf(scope+"/") == "" {
		return ""
	}
	return scope + "/" + i
}

// Holder holds one Lease of a set and publishes its stream's checkpoints.
type Holder struct {
	Client    client.Client // direct, uncached
	Namespace string
	Scope     string // chron.ScopeGate or chron.ScopeManager
	Size      int    // Leases in the set
	Replica   string // the pod's name; the holder identity adds a per-process suffix
	Interval  time.Duration
	Keys      chron.KeySet // signs checkpoints; checks the one found
	// Head is the writer's committed head (chron.Writer.Head); set it once
	// the writer exists, before Run.
	Head    func() (chron.Head, bool)
	Log     logr.Logger
	Metrics *Metrics

	identity string
	observed map[string]seen // Leases held by others: when their content last changed

	mu      sync.Mutex
	lease   *coordinationv1.Lease // ours, as last written
	stream  string
	lastOK  atomic.Int64 // unix nanos when the last successful renewal was sent
	lost    atomic.Pointer[error]
	problem atomic.Pointer[error]
}

type seen struct {
	version string
	at      time.Time
}

func (h *Holder) interval() time.Duration {
	if h.Interval <= 0 {
		return DefaultInterval
	}
	return h.Interval
}

func (h *Holder) duration() time.Duration { return 3 * h.interval() }

// Acquire takes a free Lease of the set and returns its stream and the
// checkpoint found on it, its signature checked (nil when there is none).
// It retries every interval until ctx ends; a Lease whose checkpoint does
// not verify is left alone and reported, not taken.
func (h *Holder) Acquire(ctx context.Context) (string, *chron.Checkpoint, error) {
	if h.Size <= 0 || h.Replica == "" {
		return "", nil, errors.New("chron lease: a set size and a replica name are required")
	}
	if h.identity == "" {
		suffix := make([]byte, 4)
		_, _ = rand.Read(suffix)
		h.identity = h.Replica + "_" + hex.EncodeToString(suffix)
		h.observed = map[string]seen{}
	}
	pubs := chron.PublicKeys{}
	for _, p := range h.Keys.Publics() {
		pubs[p.ID] = p
	}
	for {
		for i := range h.Size {
			stream, cp, err := h.try(ctx, i, pubs)
			if err != nil {
				h.Log.Error(err, "cannot take a Chron stream lease", "lease", LeaseName(h.Scope, i))
			}
			if stream != "" {
				h.Log.Info("holding Chron stream", "stream", stream, "lease", LeaseName(h.Scope, i), "identity", h.identity)
				return stream, cp, nil
			}
		}
		h.Log.Info("every Chron stream lease is held; waiting for one to free up", "leases", h.Size, "retryIn", h.interval())
		select {
		case <-ctx.Done():
			return "", nil, fmt.Errorf("no free Chron stream among the %d leases %s (namespace %s): %w; "+
				"raise the set size or stop a stale writer", h.Size, LeaseName(h.Scope, 0)+"…", h.Namespace, ctx.Err())
		case <-time.After(h.interval()):
		}
	}
}

// try takes Lease i if it is free: missing, released, or unchanged for a
// lease duration as this process saw it.
func (h *Holder) try(ctx context.Context, i int, pubs chron.PublicKeys) (string, *chron.Checkpoint, error) {
	name := LeaseName(h.Scope, i)
	stream := StreamOf(name)
	now := time.Now()
	l := &coordinationv1.Lease{}
	err := h.Client.Get(ctx, client.ObjectKey{Namespace: h.Namespace, Name: name}, l)
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: h.Namespace, Name: name,
			Labels: map[string]string{labelName: "claiim", labelComponent: "chron-stream"}}}
		h.hold(l, now, true)
		if err := h.Client.Create(ctx, l); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return "", nil, nil
			}
			return "", nil, err
		}
		h.took(l, stream, now)
		return stream, nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	if holder != "" && holder != h.identity {
		s, ok := h.observed[name]
		if !ok || s.version != l.ResourceVersion {
			h.observed[name] = seen{version: l.ResourceVersion, at: now}
			return "", nil, nil
		}
		if now.Sub(s.at) < h.duration() {
			return "", nil, nil
		}
	}
	var cp *chron.Checkpoint
	if text, ok := l.Annotations[AnnotationCheckpoint]; ok {
		sc, err := chron.ParseCheckpoint(text)
		if err == nil && sc.Stream != stream {
			err = fmt.Errorf("it is of stream %q", sc.Stream)
		}
		if err == nil {
			err = sc.Verify(pubs)
		}
		if err != nil {
			h.Metrics.tampered()
			return "", nil, fmt.Errorf("%w: the checkpoint on Lease %s/%s does not verify (%v); the stream is left alone: "+
				"run `claiim chron verify` and see docs/security.md, Verifying Chron", chron.ErrTampered, h.Namespace, name, err)
		}
		cp = &sc.Checkpoint
	}
	h.hold(l, now, holder != h.identity)
	if err := h.Client.Update(ctx, l); err != nil {
		if apierrors.IsConflict(err) {
			return "", nil, nil
		}
		return "", nil, err
	}
	h.took(l, stream, now)
	return stream, cp, nil
}

// hold makes l ours as of now.
func (h *Holder) hold(l *coordinationv1.Lease, now time.Time, transition bool) {
	t := metav1.NewMicroTime(now)
	l.Spec.HolderIdentity = ptr.To(h.identity)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(math.Ceil(h.duration().Seconds())))
	l.Spec.RenewTime = &t
	if transition {
		l.Spec.AcquireTime = &t
		l.Spec.LeaseTransitions = ptr.To(ptr.Deref(l.Spec.LeaseTransitions, 0) + 1)
	}
}

func (h *Holder) took(l *coordinationv1.Lease, stream string, sent time.Time) {
	h.mu.Lock()
	h.lease, h.stream = l, stream
	h.mu.Unlock()
	h.lastOK.Store(sent.UnixNano())
}

// Run renews the Lease and publishes the checkpoint every interval until
// ctx ends. It returns an error when another process holds the Lease: the
// writer has stopped (Guard) and the component must restart to take
// another stream. A failing API is retried; past two intervals the
// writer stops and Ready reports it.
func (h *Holder) Run(ctx context.Context) error {
	t := time.NewTicker(h.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := h.renew(ctx, false); err != nil {
			if e := h.lost.Load(); e != nil {
				return *e
			}
			h.Log.Error(err, "cannot publish the Chron checkpoint; the writer stops after two intervals without one",
				"stream", h.Stream(), "interval", h.interval())
		}
	}
}

// Release publishes the final checkpoint and frees the Lease; call it
// after the writer has closed, so the checkpoint is its last head.
func (h *Holder) Release(ctx context.Context) error { return h.renew(ctx, true) }

// renew writes our Lease: renewed (or released) with the current
// checkpoint. A conflict means someone else wrote it: if they took it,
// the stream is lost.
func (h *Holder) renew(ctx context.Context, release bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lease == nil || h.lost.Load() != nil {
		return errors.New("chron lease: not held")
	}
	for attempt := 0; ; attempt++ {
		sent := time.Now()
		l := h.lease.DeepCopy()
		if err := h.sign(l, sent); err != nil {
			return err
		}
		h.hold(l, sent, false)
		if release {
			l.Spec.HolderIdentity = nil
		}
		err := h.Client.Update(ctx, l)
		if err == nil {
			h.lease = l
			h.lastOK.Store(sent.UnixNano())
			h.Metrics.published(sent)
			return nil
		}
		h.Metrics.publishFailed()
		if !apierrors.IsConflict(err) || attempt > 0 {
			return fmt.Errorf("renewing Chron stream lease %s: %w", l.Name, err)
		}
		cur := &coordinationv1.Lease{}
		if gerr := h.Client.Get(ctx, client.ObjectKeyFromObject(l), cur); gerr != nil {
			return fmt.Errorf("renewing Chron stream lease %s: %w", l.Name, gerr)
		}
		if ptr.Deref(cur.Spec.HolderIdentity, "") != h.identity {
			e := fmt.Errorf("lost Chron stream %s: Lease %s/%s is now held by %q; this process stops writing and must restart",
				h.stream, h.Namespace, l.Name, ptr.Deref(cur.Spec.HolderIdentity, ""))
			h.lost.Store(&e)
			return e
		}
		h.lease = cur // someone edited labels or annotations: keep ours and retry
	}
}

// sign puts the signed checkpoint of the writer's head on l, unless there
// is no head yet (then the last one stays).
func (h *Holder) sign(l *coordinationv1.Lease, now time.Time) error {
	if h.Head == nil {
		return nil
	}
	head, ok := h.Head()
	if !ok || head.Seq == 0 {
		return nil
	}
	sc, err := chron.Checkpoint{Stream: h.stream, Seq: head.Seq, Hash: head.Hash, Time: now}.Sign(h.Keys.SigningKey())
	if err != nil {
		return err
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnotationCheckpoint] = sc.Encode()
	return nil
}

// Stream is the stream held, "" before Acquire.
func (h *Holder) Stream() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stream
}

// Lease is the held Lease as last written (nil before Acquire): the
// object Events about the stream regard.
func (h *Holder) Lease() *coordinationv1.Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lease == nil {
		return nil
	}
	return h.lease.DeepCopy()
}

// Guard is the writer's guard (chron.WriterOptions.Guard): nil while the
// Lease is surely ours, that is renewed within two intervals.
func (h *Holder) Guard() error {
	if e := h.lost.Load(); e != nil {
		return *e
	}
	last := h.lastOK.Load()
	if last == 0 {
		return errors.New("chron: this process holds no Chron stream yet")
	}
	if age := time.Since(time.Unix(0, last)); age > 2*h.interval() {
		return fmt.Errorf("chron: the checkpoint of stream %s was last published %s ago (more than twice the %s interval): "+
			"the Kubernetes API is unreachable or refuses the Lease update, so the stream is not surely this process's",
			h.Stream(), age.Round(time.Second), h.interval())
	}
	return nil
}

// Tampered records that the writer refused its stream (chron.WriterOptions.OnTamper).
func (h *Holder) Tampered(err error) {
	h.problem.Store(&err)
	h.Metrics.tampered()
	h.Log.Error(err, "Chron stream does not match its signed checkpoint; not writing", "stream", h.Stream())
}

// Ready is nil while the component may write Chron: the Lease is held,
// the last checkpoint is at most two intervals old, and the stream
// matched its checkpoint.
func (h *Holder) Ready() error {
	if e := h.problem.Load(); e != nil {
		return *e
	}
	return h.Guard()
}
