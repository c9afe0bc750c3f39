package console

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// defaultAgentNamespace is where the seed provisions agents.
const defaultAgentNamespace = "default"

// agentForm provisions an Agent pinned to a published skill version.
type agentForm struct {
	Namespace, Name, DisplayName, Org, Anchor, Skill, Version, ServiceAccount string
	// latest is each skill's latest version, for a version left blank.
	latest map[string]int32
}

func (a *agentForm) parse(v url.Values) error {
	f := fields{v: v}
	a.Namespace = f.text("namespace", "Namespace", 63)
	a.Name = f.text("name", "Name", maxName)
	a.DisplayName = f.text("displayName", "Display name", maxDisplayName)
	a.Org = f.text("org", "AI Org", maxOrgName)
	a.Anchor = f.text("accountabilityAnchor", "Accountability anchor", 253)
	a.Skill = f.text("skill", "Skill", maxName)
	a.Version = f.text("version", "Skill version", 2)
	a.ServiceAccount = f.text("serviceAccountName", "ServiceAccount", maxName)
	if a.Version != "" {
		if n, err := strconv.Atoi(a.Version); err != nil || n < 1 || n > claiimv1.MaxSkillVersions {
			f.errs = append(f.errs, "Skill version is a number from 1 to "+strconv.Itoa(claiimv1.MaxSkillVersions)+", or blank for the latest")
		}
	}
	return f.err()
}

// version is the pinned version: as typed, or the skill's latest.
func (a *agentForm) version() int32 {
	if n, err := strconv.Atoi(a.Version); err == nil && n >= 1 && n <= claiimv1.MaxSkillVersions {
		return int32(n)
	}
	return a.latest[a.Skill]
}

func (a *agentForm) namespace() string {
	if a.Namespace == "" || len(a.Namespace) > 63 {
		return defaultAgentNamespace
	}
	return a.Namespace
}

func (a *agentForm) object() (client.Object, any) {
	ag := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Name},
		Spec: claiimv1.AgentSpec{Org: claiimv1.OrgName(a.Org), DisplayName: a.DisplayName, AccountabilityAnchor: claiimv1.Username(a.Anchor),
			SkillRef: claiimv1.SkillRef{Name: a.Skill, Version: a.version()}, ServiceAccountName: a.ServiceAccount}}
	return ag, ag.Spec
}

func (c *Console) newAgent(w http.ResponseWriter, r *http.Request, s *Session) {
	ctx := r.Context()
	opts := options(ctx, s)
	f := &agentForm{latest: map[string]int32{}}
	for _, sk := range opts.Skills {
		f.latest[sk.Name] = sk.Latest
	}
	if r.Method == http.MethodGet {
		_ = f.parse(r.URL.Query())
		// The seed's defaults: the default namespace, the person
		// provisioning as the accountability anchor.
		if f.Namespace == "" {
			f.Namespace = defaultAgentNamespace
		}
		if f.Anchor == "" {
			f.Anchor = s.Name()
		}
	}
	c.serveForm(w, r, s, formSpec{page: "agent_new", title: "New agent", nav: "agents",
		verb: "create", resource: "agents",
		apply: func(ctx context.Context, obj client.Object) (string, string, error) {
			if err := s.Client().Create(ctx, obj); err != nil {
				return "", "", err
			}
			ag := obj.(*claiimv1.Agent)
			what := "Agent " + ag.Namespace + "/" + ag.Name + " provisioned"
			tok, how := agentToken(ctx, s, ag)
			if tok != "" {
				s.ShowOnce(tok)
				what += "; its token is shown below, once"
			} else {
				what += ". " + how
			}
			return "/agents/" + ag.Namespace + "/" + ag.Name, what, nil
		}}, f, opts)
}

// tokenWait bounds how long provisioning waits for the manager to write
// the new agent's token Secret.
const tokenWait = 15 * time.Second

// agentToken reads a new agent's token from its Secret as the person,
// waiting up to tokenWait for the manager to write it. When it cannot,
// how says how to get it with kubectl.
func agentToken(ctx context.Context, s *Session, a *claiimv1.Agent) (token, how string) {
	secret := a.Name + "-claiim-token" // what the manager names it until status says
	kubectl := func() string {
		return "Read its token with: kubectl get secret " + secret + " -n " + a.Namespace +
			" -o jsonpath='{.data." + claiimv1.SecretKeyAgentToken + "}' | base64 -d"
	}
	ok, _, err := s.Allowed(ctx, readSecrets(a.Namespace))
	if err == nil && !ok {
		return "", "You may not read Secrets in namespace " + a.Namespace + ", so the console cannot show its token; " +
			"someone who may can. " + kubectl()
	}
	var got string
	poll := func(ctx context.Context) (bool, error) {
		cur := &claiimv1.Agent{}
		if err := s.Client().Get(ctx, client.ObjectKeyFromObject(a), cur); err != nil {
			return false, nil // a hiccup: try again until the bound
		}
		if cur.Status.Token == nil || cur.Status.Token.SecretName == "" {
			return false, nil
		}
		secret = cur.Status.Token.SecretName
		// Unstructured: the console's scheme need not know core/v1.
		sec := &unstructured.Unstructured{}
		sec.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		switch err := s.Client().Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: secret}, sec); {
		case apierrors.IsForbidden(err):
			return false, err
		case err != nil:
			return false, nil
		}
		b64, _, _ := unstructured.NestedString(sec.Object, "data", claiimv1.SecretKeyAgentToken)
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return false, fmt.Errorf("the token Secret %s holds no readable %s: %w", secret, claiimv1.SecretKeyAgentToken, err)
		}
		got = string(raw)
		return got != "", nil
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, tokenWait, true, poll)
	switch {
	case err == nil:
		return got, ""
	case apierrors.IsForbidden(err):
		return "", "You may not read its token Secret: " + apiMessage(err) + ". " + kubectl()
	case wait.Interrupted(err):
		return "", "The manager has not written its token yet (the agent's page shows why). " + kubectl()
	}
	return "", "The console could not read its token: " + apiMessage(err) + ". " + kubectl()
}

func readSecrets(namespace string) authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: namespace}
}
