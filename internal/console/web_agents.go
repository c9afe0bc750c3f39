package console

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Agents' pages. The actions are the ones kubectl claiim agent takes, as
// the same patches: spec.lifecycle for suspend, activate and decommission,
// the anchor-accepted annotation (the anchor's own name) for accept, and
// the rotate-token annotation for a new token. Admission decides which
// need a PIM session (suspending is a safety action and needs none).

type agentsData struct {
	Namespace string
	Agents    []claiimv1.Agent
}

func (c *Console) agents(w http.ResponseWriter, r *http.Request, s *Session) {
	ns := r.URL.Query().Get("namespace")
	v := newView(r, s, "Agents", "agents", nil)
	var list claiimv1.AgentList
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	status := http.StatusOK
	if err := validNamespace(ns); err != nil {
		v.Error, status = err.Error(), http.StatusBadRequest
	} else if err := s.Client().List(r.Context(), &list, opts...); err != nil {
		v.Error, status = apiMessage(err), errorStatus(err)
	}
	slices.SortFunc(list.Items, func(a, b claiimv1.Agent) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	v.Data = agentsData{Namespace: ns, Agents: list.Items}
	c.render(w, status, "agents", v)
}

func validNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	return validName("namespace", ns)
}

// agentData is one agent's page.
type agentData struct {
	Agent    *claiimv1.Agent
	Accepted bool
	GateURL  string
	// The last rotation asked for, the last carried out, and how many
	// token changes the agent has had.
	RotateRequested, RotateDone, TokenEpoch string
	Actions                                 agentActions
	PIM                                     pimHint
}

type agentActions struct {
	Suspend, Activate, Decommission, Accept, Rotate permit
}

// pimHint says whether the person holds an active PIM session, so that
// the page can say before they try that admission will want one.
type pimHint struct {
	Known   bool
	Active  bool
	Name    string
	Expires time.Time
}

func (c *Console) agent(w http.ResponseWriter, r *http.Request, s *Session) {
	c.showAgent(w, r, s, http.StatusOK, "")
}

// showAgent renders the agent's page, with errMsg as the failure of the
// action just tried.
func (c *Console) showAgent(w http.ResponseWriter, r *http.Request, s *Session, status int, errMsg string) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	v := newView(r, s, "Agent "+ns+"/"+name, "agents", nil)
	v.Error = errMsg
	a, err := c.getAgent(r.Context(), s, ns, name)
	if err != nil {
		if v.Error == "" {
			v.Error, status = apiMessage(err), errorStatus(err)
		}
		c.render(w, status, "agent", v)
		return
	}
	d := agentData{Agent: a, Accepted: a.AnchorAccepted(), GateURL: c.GateURL,
		RotateRequested: a.Annotations[claiimv1.AnnotationRotateToken], RotateDone: a.Annotations[claiimv1.AnnotationTokenRotated],
		TokenEpoch: a.Annotations[claiimv1.AnnotationTokenEpoch],
		Actions:    agentPermits(r.Context(), s, a), PIM: pimHintFor(r.Context(), s)}
	v.Title = "Agent " + cmp.Or(a.Spec.DisplayName, a.Name)
	v.Data = d
	c.render(w, status, "agent", v)
}

func (c *Console) getAgent(ctx context.Context, s *Session, ns, name string) (*claiimv1.Agent, error) {
	if err := validNamespace(ns); err != nil {
		return nil, err
	}
	if err := validName("agent", name); err != nil {
		return nil, err
	}
	a := &claiimv1.Agent{}
	return a, s.Client().Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, a)
}

// agentPermits disables what RBAC forbids, then what the agent's state
// makes pointless. What needs PIM is left to admission, which alone can
// tell a valid session (pimHint only warns).
func agentPermits(ctx context.Context, s *Session, a *claiimv1.Agent) agentActions {
	rbac := may(ctx, s, claiimAccess("patch", "agents", a.Namespace, a.Name),
		fmt.Sprintf("%s may not patch agents in namespace %s", s.Name(), a.Namespace))
	gone := allow()
	if a.Decommissioned() {
		gone = refuse("the agent is decommissioned, which is permanent")
	}
	var acts agentActions
	acts.Suspend = rbac.and(gone)
	if a.Spec.Lifecycle == claiimv1.LifecycleSuspended {
		acts.Suspend = acts.Suspend.and(refuse("already suspended"))
	}
	acts.Activate = rbac.and(gone)
	if a.Spec.Lifecycle != claiimv1.LifecycleSuspended {
		acts.Activate = acts.Activate.and(refuse("the agent is not suspended"))
	}
	acts.Decommission = rbac.and(gone)
	acts.Rotate = rbac.and(gone)
	anchor := string(a.Spec.AccountabilityAnchor)
	switch {
	case a.AnchorAccepted():
		acts.Accept = refuse("already accepted by %s", anchor)
	case s.Name() != anchor:
		acts.Accept = refuse("only the accountability anchor %s can accept this agent, as themself", anchor)
	default:
		acts.Accept = rbac.and(gone)
	}
	return acts
}

// pimHintFor looks for an active session of s among the requests s may
// list; when s may list none, the page says nothing about it.
func pimHintFor(ctx context.Context, s *Session) pimHint {
	var list claiimv1.PIMRequestList
	if err := s.Client().List(ctx, &list); err != nil {
		return pimHint{}
	}
	h := pimHint{Known: true}
	now := time.Now()
	for i := range list.Items {
		p := &list.Items[i]
		if p.Elevates(s.Name(), now) {
			if exp := p.Session(now).ExpiresAt; exp.After(h.Expires) {
				h.Active, h.Name, h.Expires = true, p.Name, exp
			}
		}
	}
	return h
}

// agentAction carries out one of the agent's actions as the person.
func (c *Console) agentAction(w http.ResponseWriter, r *http.Request, s *Session) {
	if !readForm(w, r) {
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	a, err := c.getAgent(r.Context(), s, ns, name)
	if err != nil {
		c.showAgent(w, r, s, errorStatus(err), apiMessage(err))
		return
	}
	var patch map[string]any
	var what string
	switch r.PathValue("action") {
	case "suspend":
		patch, what = lifecyclePatch(claiimv1.LifecycleSuspended), "suspended"
	case "activate":
		patch, what = lifecyclePatch(claiimv1.LifecycleActive), "activated"
	case "decommission":
		if r.PostForm.Get("confirm") != "yes" {
			c.showAgent(w, r, s, http.StatusBadRequest, fmt.Sprintf("decommissioning is permanent: agent %s/%s can never act again and its token is revoked. "+
				"Tick the confirmation to proceed", ns, name))
			return
		}
		patch, what = lifecyclePatch(claiimv1.LifecycleDecommissioned), "decommissioned"
	case "accept":
		// The annotation names who accepted; admission lets only the
		// anchor set it, to their own name.
		patch, what = annotationPatch(claiimv1.AnnotationAnchorAccepted, s.Name()), "accepted by "+s.Name()
	case "rotate":
		value := strings.TrimSpace(r.PostForm.Get("value"))
		if value == "" {
			// Any value the annotation has not had asks for a new token.
			value = time.Now().UTC().Format(time.RFC3339Nano)
		}
		if value == a.Annotations[claiimv1.AnnotationRotateToken] {
			c.showAgent(w, r, s, http.StatusBadRequest, "the agent's last rotation request already has this value; give a new one")
			return
		}
		patch, what = annotationPatch(claiimv1.AnnotationRotateToken, value), "token rotation requested ("+value+")"
	default:
		http.NotFound(w, r)
		return
	}
	if err := patchAs(r.Context(), s, a, patch); err != nil {
		c.showAgent(w, r, s, errorStatus(err), apiMessage(err))
		return
	}
	c.Log.Info("agent action", "user", s.Name(), "agent", ns+"/"+name, "action", r.PathValue("action"))
	done(w, r, "/agents/"+ns+"/"+name, fmt.Sprintf("agent %s/%s %s", ns, name, what))
}

func lifecyclePatch(to claiimv1.AgentLifecycle) map[string]any {
	return map[string]any{"spec": map[string]any{"lifecycle": to}}
}

func annotationPatch(key, value string) map[string]any {
	return map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}}
}

// patchAs sends a JSON merge patch of obj as the person.
func patchAs(ctx context.Context, s *Session, obj client.Object, patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return s.Client().Patch(ctx, obj, client.RawPatch(types.MergePatchType, b))
}
