package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// orgForm creates an AIOrg.
type orgForm struct {
	Name, DisplayName, Description, Parent string
}

func (o *orgForm) parse(v url.Values) error {
	f := fields{v: v}
	o.Name = f.text("name", "Name", maxOrgName)
	o.DisplayName = f.text("displayName", "Display name", maxDisplayName)
	o.Description = f.block("description", "Description", maxDescription)
	o.Parent = f.text("parent", "Parent", maxOrgName)
	return f.err()
}

func (o *orgForm) object() (client.Object, any) {
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: o.Name},
		Spec: claiimv1.AIOrgSpec{DisplayName: o.DisplayName, Description: o.Description, Parent: claiimv1.OrgName(o.Parent)}}
	return org, org.Spec
}

func (c *Console) newOrg(w http.ResponseWriter, r *http.Request, s *Session) {
	f := &orgForm{}
	if r.Method == http.MethodGet {
		_ = f.parse(r.URL.Query())
	}
	c.serveForm(w, r, s, formSpec{page: "org_new", title: "New AIOrg", nav: "orgs",
		verb: "create", resource: "aiorgs", apply: created(s, "AIOrg", "/orgs/")}, f, options(r.Context(), s))
}

// versionFields are one skill version's, as typed.
type versionFields struct {
	AgentEmail, SystemPrompt, Allowed, Forbidden string
	allowed, forbidden                           []string
}

func (vf *versionFields) parse(f *fields) {
	vf.AgentEmail = f.text("agentEmail", "Agent email", maxEmail)
	vf.SystemPrompt = f.block("systemPrompt", "System prompt", claiimv1.MaxSystemPromptLen)
	vf.Allowed, vf.allowed = f.list("allowedActions", "Allowed actions", claiimv1.MaxActionsPerList, 128)
	vf.Forbidden, vf.forbidden = f.list("forbiddenActions", "Forbidden actions", claiimv1.MaxActionsPerList, 128)
}

func (vf *versionFields) version(n int32) claiimv1.SkillVersion {
	return claiimv1.SkillVersion{Version: n, AgentEmail: vf.AgentEmail, SystemPrompt: vf.SystemPrompt,
		AllowedActions: patterns(vf.allowed), ForbiddenActions: patterns(vf.forbidden)}
}

// skillForm creates a Skill with its version 1.
type skillForm struct {
	Name, Org, DisplayName, Description string
	versionFields
}

func (k *skillForm) parse(v url.Values) error {
	f := fields{v: v}
	k.Name = f.text("name", "Name", maxName)
	k.Org = f.text("org", "AI Org", maxOrgName)
	k.DisplayName = f.text("displayName", "Display name", maxDisplayName)
	k.Description = f.block("description", "Description", maxDescription)
	k.versionFields.parse(&f)
	return f.err()
}

func (k *skillForm) object() (client.Object, any) {
	sk := &claiimv1.Skill{ObjectMeta: metav1.ObjectMeta{Name: k.Name}, Spec: claiimv1.SkillSpec{Org: claiimv1.OrgName(k.Org),
		DisplayName: k.DisplayName, Description: k.Description, Versions: []claiimv1.SkillVersion{k.version(1)}}}
	return sk, sk.Spec
}

func (c *Console) newSkill(w http.ResponseWriter, r *http.Request, s *Session) {
	f := &skillForm{}
	if r.Method == http.MethodGet {
		_ = f.parse(r.URL.Query())
	}
	c.serveForm(w, r, s, formSpec{page: "skill_new", title: "New skill", nav: "skills",
		verb: "create", resource: "skills", apply: created(s, "Skill", "/skills/")}, f, options(r.Context(), s))
}

// skillVersionForm publishes the next version of an existing skill: the
// skill as read, with one version appended. Published versions are
// immutable, so this is the only way a skill's rulebook changes.
type skillVersionForm struct {
	Skill *claiimv1.Skill
	Next  int32
	// Generation is the skill's when the form was opened, so a version
	// someone else published meanwhile is not silently built upon.
	Generation int64
	versionFields
}

func (k *skillVersionForm) parse(v url.Values) error {
	f := fields{v: v}
	k.versionFields.parse(&f)
	if g, err := strconv.ParseInt(f.text("generation", "Generation", 20), 10, 64); err == nil {
		k.Generation = g
	}
	return f.err()
}

func (k *skillVersionForm) object() (client.Object, any) {
	sk := k.Skill.DeepCopy()
	sk.Spec.Versions = append(sk.Spec.Versions, k.version(k.Next))
	return sk, sk.Spec
}

func (c *Console) newSkillVersion(w http.ResponseWriter, r *http.Request, s *Session) {
	name := r.PathValue("name")
	sk := &claiimv1.Skill{}
	if !c.fetch(w, r, s, "skills", client.ObjectKey{Name: name}, sk) {
		return
	}
	f := &skillVersionForm{Skill: sk, Next: latestVersion(sk) + 1, Generation: sk.Generation}
	if latest := sk.Version(latestVersion(sk)); latest != nil {
		// Start from the latest version: most new versions change a little.
		f.AgentEmail, f.SystemPrompt = latest.AgentEmail, latest.SystemPrompt
		f.Allowed, f.Forbidden = joinLines(latest.AllowedActions), joinLines(latest.ForbiddenActions)
		f.allowed, f.forbidden = toStrings(latest.AllowedActions), toStrings(latest.ForbiddenActions)
	}
	title := "Skill " + name + ": publish version " + strconv.Itoa(int(f.Next))
	c.serveForm(w, r, s, formSpec{page: "skill_version_new", title: title, nav: "skills",
		verb: "update", resource: "skills",
		apply: func(ctx context.Context, obj client.Object) (string, string, error) {
			if err := appendVersion(ctx, s, obj.(*claiimv1.Skill), f.Generation); err != nil {
				return "", "", err
			}
			return "/skills/" + name, "Skill " + name + " version " + strconv.Itoa(int(f.Next)) + " published", nil
		}}, f, formOptions{})
}

// appendVersion appends want's last version to the skill, as it stood at
// generation (when the person opened the form): the manager's status
// writes in between are retried over, but a spec someone changed
// meanwhile (another version published) is not built upon unseen.
func appendVersion(ctx context.Context, s *Session, want *claiimv1.Skill, generation int64) error {
	v := want.Spec.Versions[len(want.Spec.Versions)-1]
	var stale error
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &claiimv1.Skill{}
		if err := s.Client().Get(ctx, client.ObjectKeyFromObject(want), cur); err != nil {
			return err
		}
		if cur.Generation != generation || cur.UID != want.UID || latestVersion(cur)+1 != v.Version {
			stale = fmt.Errorf("skill %s changed since this form was opened (its latest version is now %d); open the form again",
				want.Name, latestVersion(cur))
			return stale
		}
		cur.Spec.Versions = append(cur.Spec.Versions, v)
		return s.Client().Update(ctx, cur)
	})
	if err != nil && errors.Is(err, stale) {
		return apierrors.NewConflict(claiimv1.GroupVersion.WithResource("skills").GroupResource(), want.Name, stale)
	}
	return err
}

func joinLines(ps []claiimv1.ActionPattern) string {
	out := ""
	for _, p := range ps {
		out += string(p) + "\n"
	}
	return out
}

func toStrings(ps []claiimv1.ActionPattern) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, string(p))
	}
	return out
}

// policyForm creates a Policy. Its rules are rows; "Add a rule" posts
// the form back with one more row, so the form needs no script.
type policyForm struct {
	Name, Org, DisplayName, Description string
	Rules                               []ruleFields
}

type ruleFields struct {
	// N numbers the row from 1, for its legend.
	N                                        int
	Name, Effect, Actions, Agents, Condition string
	actions, agents                          []string
}

// blank: a row left empty is not a rule.
func (rf *ruleFields) blank() bool {
	return rf.Name == "" && len(rf.actions) == 0 && len(rf.agents) == 0 && rf.Condition == ""
}

// Effects are the choices of a rule's effect, Deny first.
func (*policyForm) Effects() []claiimv1.PolicyEffect {
	return []claiimv1.PolicyEffect{claiimv1.PolicyEffectDeny, claiimv1.PolicyEffectAllow}
}

func (p *policyForm) parse(v url.Values) error {
	f := fields{v: v}
	p.Name = f.text("name", "Name", maxName)
	p.Org = f.text("org", "AI Org", maxOrgName)
	p.DisplayName = f.text("displayName", "Display name", maxDisplayName)
	p.Description = f.block("description", "Description", maxDescription)
	n, _ := strconv.Atoi(v.Get("rules"))
	if v.Get("do") == "addrule" {
		n++
	}
	n = min(max(n, 1), maxFormRules)
	p.Rules = make([]ruleFields, n)
	for i := range p.Rules {
		rf, key := &p.Rules[i], "rule."+strconv.Itoa(i)+"."
		rf.N = i + 1
		label := "Rule " + strconv.Itoa(i+1)
		rf.Name = f.text(key+"name", label+" name", 63)
		rf.Effect = f.text(key+"effect", label+" effect", 8)
		rf.Actions, rf.actions = f.list(key+"actions", label+" actions", maxRuleActions, 128)
		rf.Agents, rf.agents = f.list(key+"agents", label+" agents", maxRuleAgents, 317)
		rf.Condition = f.block(key+"condition", label+" condition", maxCondition)
		if rf.Effect == "" {
			rf.Effect = string(claiimv1.PolicyEffectDeny)
		}
	}
	return f.err()
}

func (p *policyForm) object() (client.Object, any) {
	pol := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: claiimv1.PolicySpec{Org: claiimv1.OrgName(p.Org),
		DisplayName: p.DisplayName, Description: p.Description, Rules: []claiimv1.PolicyRule{}}}
	for i := range p.Rules {
		rf := &p.Rules[i]
		if rf.blank() {
			continue
		}
		name := rf.Name
		if name == "" {
			name = ruleName(rf.Effect, rf.actions, i)
		}
		rule := claiimv1.PolicyRule{Name: name, Effect: claiimv1.PolicyEffect(rf.Effect), Actions: patterns(rf.actions), Condition: rf.Condition}
		if len(rf.agents) > 0 {
			rule.Agents = &claiimv1.AgentSelector{Names: rf.agents}
		}
		pol.Spec.Rules = append(pol.Spec.Rules, rule)
	}
	return pol, pol.Spec
}

// ruleName names a rule left unnamed, as the onboarding guide's form has
// no name field: its effect and first action ("deny-deploy-production"),
// else its position; always a valid, per-policy unique name.
func ruleName(effect string, actions []string, i int) string {
	base := strings.ToLower(effect)
	if len(actions) > 0 {
		base += "-" + actions[0]
	}
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(base) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	suffix := "-" + strconv.Itoa(i+1)
	name := strings.Trim(b.String(), "-")
	if len(name)+len(suffix) > 63 {
		name = strings.Trim(name[:63-len(suffix)], "-")
	}
	if name == "" {
		return "rule" + suffix
	}
	if i == 0 {
		return name
	}
	return name + suffix
}

func (c *Console) newPolicy(w http.ResponseWriter, r *http.Request, s *Session) {
	f := &policyForm{}
	if r.Method == http.MethodGet {
		_ = f.parse(r.URL.Query())
	}
	c.serveForm(w, r, s, formSpec{page: "policy_new", title: "New policy", nav: "policies",
		verb: "create", resource: "policies", apply: created(s, "Policy", "/policies/")}, f, options(r.Context(), s))
}
