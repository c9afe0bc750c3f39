// Package cli holds the commands of the production claiim binary
// (cmd/claiim): the manager, the gate and the Chron reader. Nothing here
// may import test code: a test in cmd/claiim checks the binary's imports.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/controllers"
	"github.com/claiim/claiim-operator/controllers/admission"
	"github.com/claiim/claiim-operator/controllers/certs"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/chronlease"
)

// RunManager runs the operator: the reconcilers and the admission webhooks.
func RunManager(args []string) error {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	var mf metricsFlags
	mf.bind(fs)
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader so only one replica reconciles at a time")
	leaderNS := fs.String("leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	gateURL := fs.String("gate-url", "", "gate API URL written into every agent's token Secret (CLAIIM_GATE_URL); default: the gate Service's address with --manage-gate, else "+controllers.DefaultGateURL)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of Chron, where control-plane events are recorded (default $DATABASE_URL)")
	webhooks := fs.Bool("enable-webhooks", true, "serve the admission webhooks (PIM, immutability, lifecycle); they need Chron")
	webhookHost := fs.String("webhook-host", "", "address the admission webhook server binds (default: all)")
	webhookPort := fs.Int("webhook-port", 9443, "port of the admission webhook server")
	certDir := fs.String("webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key for the webhook server")
	certSecret := fs.String("webhook-cert-secret", "", "when set, the manager issues and renews its own webhook certificate in this Secret (in its namespace) and injects the CA into the webhook configurations; leave empty with cert-manager")
	webhookService := fs.String("webhook-service", "claiim-webhook-service", "the webhook Service's name (the certificate's DNS name)")
	mutatingCfg := fs.String("webhook-mutating-configuration", "claiim-mutating-webhook-configuration", "MutatingWebhookConfiguration whose caBundle the manager keeps")
	validatingCfg := fs.String("webhook-validating-configuration", "claiim-validating-webhook-configuration", "ValidatingWebhookConfiguration whose caBundle the manager keeps")
	admitExisting := fs.Bool("admit-existing", true, "with the webhooks: once per install (ConfigMap "+controllers.AdmissionUpgradeConfigMap+"), stamp the CLAIIM objects created before admission stamps existed, as they are (the upgrade step; docs/security.md)")
	protect := fs.Bool("protect-manifests", true, "with the webhooks: keep CLAIIM's CRDs and webhook configurations as built into this binary, restoring them when edited or deleted")
	webhookURL := fs.String("webhook-url", "", "the webhook server's base URL, e.g. https://127.0.0.1:9443, when the manager runs outside the cluster; empty: the webhook Service")
	managerUser := fs.String("manager-username", defaultManagerUsername(), "the manager's own Kubernetes username, exempt from PIM")
	approverSAs := fs.String("pim-approver-serviceaccounts", "", "comma-separated ServiceAccount usernames (system:serviceaccount:<ns>:<name>) allowed to approve PIMRequests; PIM approvals come from people, so none by default")
	whatIfURL := fs.String("what-if-database-url", os.Getenv("CLAIIM_WHATIF_DATABASE_URL"), "with the webhooks: PostgreSQL URL of a Chron role that may read the gate's decisions "+
		"(the reader role; the manager's own role reads only its own streams), for the what-if of every admitted Policy, Skill or Agent change; empty disables it (default $CLAIIM_WHATIF_DATABASE_URL)")
	whatIfBudget := fs.Duration("what-if-budget", 2*time.Second, "how long a what-if may take, reading Chron included; past it, it reports a sample")
	pendingTTL := fs.Duration("pim-pending-ttl", claiimv1.DefaultPIMPendingTTL, "how long a PIMRequest may wait for its approvals; past it the request expires (Chron PIM_PENDING_EXPIRED) and can no longer be approved. Between 1m and 8760h")
	manageGate := fs.Bool("manage-gate", false, "run the gate in-cluster: create and keep its Deployment, Service, RBAC, PDB and NetworkPolicy")
	gate := controllers.GateConfig{}
	fs.StringVar(&gate.Namespace, "gate-namespace", podNamespace(), "namespace of the gate's objects")
	fs.StringVar(&gate.Image, "gate-image", os.Getenv("CLAIIM_IMAGE"), "the gate's image (default $CLAIIM_IMAGE: the manager's own)")
	gateReplicas := fs.Int("gate-replicas", 2, "gate replicas")
	gatePort := fs.Int("gate-port", 8181, "the gate API's port")
	fs.BoolVar(&gate.TLS, "gate-tls", true, "with --manage-gate: the gate serves HTTPS under a CA the manager keeps (Secret "+controllers.GateTLSSecret+"), published for agents in their token Secrets (CLAIIM_GATE_CA)")
	gateStreams := fs.Int("gate-chron-streams", 0, "size of the gate's set of Chron stream Leases (default two per replica plus one)")
	fs.StringVar(&gate.DatabaseSecret, "gate-database-secret", "claiim-database", "Secret (in the gate's namespace) whose DATABASE_URL key points the gate at Chron")
	gateResources := bindGateResources(fs)
	cs := chronStreamFlags(fs, "manager", "", 4)
	verifyEvery := fs.Duration("chron-verify-interval", chronlease.DefaultVerifyInterval, "how often the leader verifies Chron "+
		"(rows since the last clean run; the whole log every 12th run) and raises a metric, an Event and a Chron row on a problem")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if *pendingTTL < time.Minute || *pendingTTL > 8760*time.Hour {
		return fmt.Errorf("--pim-pending-ttl=%s: give a duration between 1m and 8760h (a year)", *pendingTTL)
	}
	resources, err := gateResources.requirements()
	if err != nil {
		return err
	}
	gate.Resources = resources

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (set KUBECONFIG or run in a pod): %w", err)
	}
	if *webhooks && *dbURL == "" {
		return errors.New("the admission webhooks record every control-plane change in Chron: set DATABASE_URL or --database-url (or --enable-webhooks=false for reconcilers alone)")
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:           webhook.NewServer(webhook.Options{Host: *webhookHost, Port: *webhookPort, CertDir: *certDir}),
		Scheme:                  newScheme(),
		Cache:                   controllers.CacheOptions(),
		Metrics:                 mf.options(*metricsAddr),
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "claiim-manager.claiim.io",
		LeaderElectionNamespace: *leaderNS,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	opts := controllers.Options{GateURL: *gateURL, PIMPendingTTL: *pendingTTL}
	if *manageGate {
		if gate.Image == "" {
			return errors.New("--manage-gate needs the gate's image: --gate-image or $CLAIIM_IMAGE")
		}
		gate.Replicas, gate.Port, gate.ChronStreams = int32(*gateReplicas), int32(*gatePort), int32(*gateStreams)
		opts.Gate = &gate
	}
	var whatIf *admission.WhatIf
	if *dbURL != "" {
		pool, err := chron.OpenPool(ctx, *dbURL, chron.PoolOptions{Application: "claiim-manager",
			StatementTimeout: chron.ComponentStatementTimeout, IdleInTxTimeout: chron.ComponentIdleInTxTimeout})
		if err != nil {
			return fmt.Errorf("Chron database URL: %w", err)
		}
		defer pool.Close()
		w, holder, err := managerChron(ctx, mgr, cfg, pool, cs, gate.Namespace, *verifyEvery)
		if err != nil {
			return err
		}
		defer func() {
			_ = w.Close()
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = holder.Release(rctx) // the last checkpoint is the writer's last head
		}()
		// PostgreSQL may be down, or Chron not yet migrated: the manager
		// serves anyway and checks the schema in the background
		// (chronlog.go).
		mc := newCheckedChron("manager", pool, w, ctrl.Log.WithName("chron"))
		if err := mgr.Add(mc); err != nil {
			return err
		}
		opts.Log, opts.History = mc, mc
		opts.ChronPool = pool // the leader materializes approval requests (controllers/approvals.go)
	}
	if *webhooks && *whatIfURL != "" {
		// Its own pool: a slow what-if never takes the connections that
		// record admissions.
		pool, err := chron.OpenPool(ctx, *whatIfURL, chron.PoolOptions{Application: "claiim-manager-whatif", StatementTimeout: *whatIfBudget})
		if err != nil {
			return fmt.Errorf("--what-if-database-url: %w", err)
		}
		defer pool.Close()
		whatIf = &admission.WhatIf{Chron: pool, Budget: *whatIfBudget}
	}
	// The attestation key: created the first time, then read by every
	// replica; its public half is published for the gate (docs/security.md).
	if opts.Signer, err = controllers.LoadSigner(ctx, mgr.GetAPIReader(), mgr.GetClient(), podNamespace()); err != nil {
		return err
	}
	opts.Namespace = podNamespace()
	opts.AdmitExisting = *webhooks && *admitExisting
	var rot *certs.Rotator // the webhook certificate, when the manager keeps it
	if *webhooks && *protect {
		opts.Protect = &controllers.ProtectConfig{Namespace: podNamespace(), Service: *webhookService, URL: *webhookURL,
			Mutating: *mutatingCfg, Validating: *validatingCfg}
		if *certSecret != "" {
			opts.Protect.CABundle = func(ctx context.Context) error { return rot.Ensure(ctx) }
		}
	}
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		return err
	}

	if *webhooks && *certSecret != "" {
		direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return err
		}
		rot = &certs.Rotator{Client: direct, Namespace: podNamespace(), SecretName: *certSecret, Service: *webhookService,
			CertDir: *certDir, Mutating: []string{*mutatingCfg}, Validating: []string{*validatingCfg}}
		// Tests shorten the lifetimes through the environment, deliberately
		// not a flag; unset in production.
		if err := rot.SetLifetimes(os.Getenv("CLAIIM_WEBHOOK_CERT_LIFETIMES")); err != nil {
			return fmt.Errorf("CLAIIM_WEBHOOK_CERT_LIFETIMES: %w", err)
		}
		// The webhook server reads the certificate when it starts; then the
		// leader renews it and every replica reloads it.
		if err := rot.Ensure(ctx); err != nil {
			return fmt.Errorf("webhook certificate: %w", err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		if err := errors.Join(mgr.Add(rot), mgr.Add(rot.Reloader(cs))); err != nil {
			return err
		}
	}
	if *webhooks {
		if err := admission.Setup(mgr, admission.Options{Reader: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Client: mgr.GetClient(), Log: opts.Log,
			ManagerUsername: *managerUser, Signer: opts.Signer, ApproverServiceAccounts: splitList(*approverSAs), WhatIf: whatIf,
			PIMPendingTTL: *pendingTTL}); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready means the webhook server answers TLS: until then the Service
	// must not send admissions here.
	ready := healthz.Ping
	if *webhooks {
		ready = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		return err
	}
	ctrl.Log.Info("starting the CLAIIM manager", "gateURL", *gateURL)
	return mgr.Start(ctx)
}

// defaultManagerUsername is the manager's ServiceAccount username in a
// pod: system:serviceaccount:<namespace>:claiim-manager.
func defaultManagerUsername() string {
	if u := os.Getenv("CLAIIM_MANAGER_USERNAME"); u != "" {
		return u
	}
	return "system:serviceaccount:" + podNamespace() + ":claiim-manager"
}

// splitList splits a comma-separated flag, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "claiim-system"
}
