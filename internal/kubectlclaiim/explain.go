package kubectlclaiim

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/decide"
)

// defaultKeys is where the manager publishes its attestation keys: the
// namespace of a default install and controllers.AttestationKeysConfigMap
// (not imported: this binary does not link the operator for a name).
const defaultKeys = "claiim-system/claiim-attestation-keys"

// explanation is what the gate would answer and everything that led to it.
type explanation struct {
	Agent          string         `json:"agent"`
	Org            string         `json:"org"`
	Anchor         string         `json:"anchor"`
	Phase          string         `json:"phase,omitempty"`
	Action         string         `json:"action"`
	SkillVersionID string         `json:"skillVersionID"`
	Outcome        string         `json:"outcome"`
	Reason         string         `json:"reason"`
	Message        string         `json:"message"`
	Policies       []policyMatch  `json:"policies,omitempty"`
	SkillRules     []string       `json:"skillRules,omitempty"`
	Grant          string         `json:"grant,omitempty"`
	Context        map[string]any `json:"context,omitempty"`
	// Signatures says whether the manager's attestations were checked, as
	// the gate checks them, or assumed valid.
	Signatures string `json:"signatures"`
}

type policyMatch struct {
	Policy  string `json:"policy"`
	Version int64  `json:"version"`
	Rule    string `json:"rule"`
	Effect  string `json:"effect"`
	Note    string `json:"note,omitempty"`
	// Enforcement is "Audit" for a rule that would have denied but decided nothing.
	Enforcement string `json:"enforcement,omitempty"`
}

func newExplainCommand(o *Options) *cobra.Command {
	var action, context, skillVersion, keys string
	cmd := &cobra.Command{
		Use:   "explain AGENT --action ACTION [--context JSON]",
		Short: "Why the gate would answer this agent so for this action: the decision, from the objects you can read",
		Long: `explain reads the agent, AIOrgs, Skills, Policies and CrossOrgGrants with your
credentials and runs the gate's own decision function on them (gate/decide,
no I/O). It records nothing in Chron and needs no agent token. The agent
presents its pinned skill version unless --skill-version-id says otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := decide.ValidateAction(action); err != nil {
				return fmt.Errorf("--action: %w", err)
			}
			var ctx map[string]any
			if context != "" {
				if err := json.Unmarshal([]byte(context), &ctx); err != nil {
					return fmt.Errorf("--context must be a JSON object: %w", err)
				}
			}
			ex, err := o.explain(cmd, args[0], action, ctx, skillVersion, keys)
			if err != nil {
				return err
			}
			return o.print(ex, func(w io.Writer) { ex.table(w) })
		},
	}
	cmd.Flags().StringVar(&action, "action", "", "the action the agent would ask about, e.g. deploy:staging")
	cmd.Flags().StringVar(&context, "context", "", "the request's context as a JSON object, for policy conditions")
	cmd.Flags().StringVar(&skillVersion, "skill-version-id", "", "the skill version id the agent presents (default: the one it is pinned to)")
	cmd.Flags().StringVar(&keys, "attestation-keys", defaultKeys, "namespace/name of the ConfigMap with the manager's public attestation keys")
	_ = cmd.MarkFlagRequired("action")
	return cmd
}

func (o *Options) explain(cmd *cobra.Command, name, action string, reqCtx map[string]any, skillVersion, keysRef string) (*explanation, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	ns, err := o.Namespace()
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	agent := &claiimv1.Agent{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, agent); err != nil {
		return nil, err
	}
	orgs, skills, pols, grants := &claiimv1.AIOrgList{}, &claiimv1.SkillList{}, &claiimv1.PolicyList{}, &claiimv1.CrossOrgGrantList{}
	for what, l := range map[string]client.ObjectList{"aiorgs": orgs, "skills": skills, "policies": pols, "crossorggrants": grants} {
		if err := c.List(ctx, l); err != nil {
			return nil, fmt.Errorf("explain reads every %s, as the gate does: %w", what, err)
		}
	}
	in := decide.Inputs{Orgs: orgs.Items, Skills: skills.Items, Policies: pols.Items, Grants: grants.Items,
		// Only this agent: a decision depends on no other.
		Agents: []claiimv1.Agent{*agent}}
	ex := &explanation{Agent: ns + "/" + name, Action: action, Context: reqCtx}
	keys, why := o.attestationKeys(cmd, c, keysRef)
	if keys != nil {
		in.Keys, ex.Signatures = keys, "verified with the keys in ConfigMap "+keysRef+", as the gate verifies them"
	} else {
		// The status and admission stamps are taken as they are; the gate
		// would refuse what its checks refuse, which this cannot see.
		in.Keys, in.IgnoreAdmission = trustAll{}, true
		ex.Signatures = "NOT CHECKED: " + why + "; the manager's signatures on agent status and admission stamps are assumed valid"
		fmt.Fprintf(o.ErrOut, "Warning: %s\n", ex.Signatures)
	}
	snap := decide.Build(in)
	a, ok := snap.Agent(ns, name)
	if !ok {
		return nil, fmt.Errorf("agent %s/%s is not in the snapshot", ns, name)
	}
	if skillVersion == "" {
		skillVersion = agent.Status.SkillVersionID
	}
	d := decide.Decide(snap, decide.Request{Agent: a, Action: action, Context: reqCtx, SkillVersionID: skillVersion, Now: o.Now()})
	ex.Org, ex.Anchor, ex.Phase, ex.SkillVersionID = a.Org, a.Anchor, string(a.Phase), skillVersion
	ex.Outcome, ex.Reason, ex.Message, ex.Grant = string(d.Outcome), d.Reason, d.Message, d.Grant
	for _, p := range d.Policies {
		ex.Policies = append(ex.Policies, policyMatch{Policy: p.Policy, Version: p.Version, Rule: p.Rule, Effect: string(p.Effect), Note: p.Note,
			Enforcement: string(p.Enforcement)})
	}
	// As the gate writes them into Chron.
	for _, f := range d.Forbidden {
		ex.SkillRules = append(ex.SkillRules, "forbidden:"+f)
	}
	for _, al := range d.Allowed {
		ex.SkillRules = append(ex.SkillRules, "allowed:"+al)
	}
	return ex, nil
}

// attestationKeys reads the manager's public keys. They are public, but
// not everyone may read the ConfigMap: then it says why.
func (o *Options) attestationKeys(cmd *cobra.Command, c client.Client, ref string) (attest.PublicKeys, string) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return nil, "--attestation-keys must be namespace/name"
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
			return nil, "cannot read ConfigMap " + ref + " (" + string(apierrors.ReasonForError(err)) + ")"
		}
		return nil, "reading ConfigMap " + ref + ": " + err.Error()
	}
	keys, err := attest.PublicKeysFromConfigMap(cm.Data)
	if err != nil {
		return nil, "the keys in ConfigMap " + ref + " are unusable: " + err.Error()
	}
	return keys, ""
}

// trustAll accepts every attestation: explain's view when the keys can't
// be read, said so in its output.
type trustAll struct{}

func (trustAll) Verify(attest.Message, string) error { return nil }

func (ex *explanation) table(w io.Writer) {
	rows(w,
		[]string{"AGENT", fmt.Sprintf("%s (org %s, anchor %s, phase %s)", ex.Agent, ex.Org, ex.Anchor, orDash(ex.Phase))},
		[]string{"ACTION", ex.Action},
		[]string{"SKILL VERSION", orDash(ex.SkillVersionID)},
		[]string{"OUTCOME", ex.Outcome},
		[]string{"REASON", ex.Reason},
		[]string{"MESSAGE", ex.Message},
	)
	if len(ex.Policies) == 0 {
		rows(w, []string{"POLICIES", "none matched"})
	}
	for _, p := range ex.Policies {
		line := fmt.Sprintf("%s/%s (v%d) %s", p.Policy, p.Rule, p.Version, p.Effect)
		if p.Enforcement != "" {
			line += " (" + p.Enforcement + ": would deny, not enforced)"
		}
		if p.Note != "" {
			line += ": " + p.Note
		}
		rows(w, []string{"POLICIES", line})
	}
	rows(w, []string{"SKILL RULES", orDash(strings.Join(ex.SkillRules, ", "))})
	if ex.Grant != "" {
		rows(w, []string{"GRANT", ex.Grant})
	}
	rows(w, []string{"SIGNATURES", ex.Signatures})
}
