package certs

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Reloader returns what every replica runs, leader or not: a watch of the
// certificate Secret alone (a field selector on its name) that writes the
// stored serving certificate to CertDir whenever the Secret changes, so a
// renewal made by the leader reaches every replica's webhook server; and
// tells the leader's Start to look again.
func (r *Rotator) Reloader(cs kubernetes.Interface) manager.Runnable {
	return &reloader{r: r, secrets: cs.CoreV1().Secrets(r.Namespace)}
}

type reloader struct {
	r       *Rotator
	secrets interface {
		List(context.Context, metav1.ListOptions) (*corev1.SecretList, error)
		Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
	}
}

func (l *reloader) NeedLeaderElection() bool { return false }

func (l *reloader) Start(ctx context.Context) error {
	if err := l.r.init(); err != nil {
		return err
	}
	log := ctrl.LoggerFrom(ctx).WithName(l.r.Purpose + "-certificate")
	byName := fields.OneTermEqualSelector("metadata.name", l.r.SecretName).String()
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return l.secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return l.secrets.Watch(ctx, o)
		},
	}
	changed := func(obj any) {
		if sec, ok := obj.(*corev1.Secret); ok {
			if err := l.r.serve(sec.Data); err != nil {
				log.Error(err, "reloading the "+l.r.Purpose+" certificate", "secret", l.r.Namespace+"/"+l.r.SecretName)
			}
		}
		select { // non-blocking: one pending look is enough
		case l.r.poke <- struct{}{}:
		default:
		}
	}
	_, informer := toolscache.NewInformerWithOptions(toolscache.InformerOptions{
		ListerWatcher: lw, ObjectType: &corev1.Secret{},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc:    changed,
			UpdateFunc: func(_, obj any) { changed(obj) },
			DeleteFunc: changed, // nothing to serve; the leader stores a new one
		},
	})
	informer.RunWithContext(ctx)
	return nil
}
