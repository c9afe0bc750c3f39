package console_test

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/test/testenv"
)

// The catalog pages against the shared world: the seed's objects from
// config/samples, created by admin under an approved PIM session.

var samplesOnce sync.Once

// samples applies config/samples as admin (elevated), once: the
// engineering org, the deploy-bot skill, the no-production-deploys
// policy and the prod-deploy-bot agent.
func (w *world) samples(t *testing.T) {
	t.Helper()
	w.orgs(t) // engineering first, as orgs creates it and refuses an existing one
	samplesOnce.Do(func() {
		for _, f := range []string{"claiim_v1alpha1_aiorg.yaml", "claiim_v1alpha1_skill.yaml", "claiim_v1alpha1_policy.yaml", "claiim_v1alpha1_agent.yaml"} {
			if err := testenv.ApplyFile(w.ctx, w.env.As(adminUser), filepath.Join(testenv.RepoRoot(), "config", "samples", f)); err != nil {
				t.Fatal(err)
			}
		}
	})
	eventually(t, func(g Gomega) {
		sk := &claiimv1.Skill{}
		g.Expect(w.env.Client.Get(w.ctx, client.ObjectKey{Name: "deploy-bot"}, sk)).To(Succeed())
		g.Expect(sk.Status.LatestVersionID).To(HavePrefix("deploy-bot-v1-"))
	})
}

// unique is a name no other test uses.
func unique(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:8])
}

// mustGet loads path and fails unless it answers 200.
func (b *browser) mustGet(path string) string {
	b.t.Helper()
	status, body := b.get(path)
	if status != http.StatusOK {
		b.t.Fatalf("GET %s as %s: %d\n%s", path, b.user, status, body)
	}
	return body
}

// submit posts a form without following the redirect: the status, the
// Location (after a success) and the body (after a refusal).
func (b *browser) submit(path string, form url.Values) (int, string, string) {
	b.t.Helper()
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(b.w.ctx, http.MethodPost, b.w.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", b.w.srv.URL)
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

// Nothing a page sends may need 'unsafe-inline': no inline script, no
// style attribute, no event handler attribute.
var inlineCode = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>[^<]|<[^>]*\s(?:style|on[a-z]+)=|<[^>]*javascript:`)

func TestCatalogPagesRender(t *testing.T) {
	w := kube(t)
	w.samples(t)
	grant := &claiimv1.CrossOrgGrant{ObjectMeta: metav1.ObjectMeta{Name: unique("grant")},
		Spec: claiimv1.CrossOrgGrantSpec{GrantingOrg: "engineering", ReceivingOrg: "sales", Skills: []string{"deploy-bot"},
			Reason: "sales demos deploy to staging", Duration: &metav1.Duration{Duration: time.Hour}}}
	policy := &claiimv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: unique("eng-policy")},
		Spec: claiimv1.PolicySpec{Org: "engineering", Enforcement: claiimv1.PolicyAudit, Rules: []claiimv1.PolicyRule{{Name: "no-deletes", Effect: claiimv1.PolicyEffectDeny,
			Actions: []claiimv1.ActionPattern{"*:delete"}, Condition: `context.env == "prod"`}}}}
	for _, o := range []client.Object{grant, policy} {
		if err := w.env.As(adminUser).Create(w.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func(g Gomega) { // platform's path, which names its ancestors
		o := &claiimv1.AIOrg{}
		g.Expect(w.env.Client.Get(w.ctx, client.ObjectKey{Name: "platform"}, o)).To(Succeed())
		g.Expect(o.Status.Path).To(Equal("engineering/platform"))
	})
	b := w.login(t, adminUser)
	for path, want := range map[string][]string{
		"/":                               {"AIOrgs", "Skills", "Policies", "Agents", `data-expires="`, `href="/orgs/new"`},
		"/orgs":                           {`<ul class="tree">`, `href="/orgs/engineering"`, `href="/orgs/sales"`},
		"/orgs/engineering":               {"this org", `href="/skills/deploy-bot"`, `href="/policies/no-production-deploys"`, `href="/agents/default/prod-deploy-bot"`, "every org", grant.Name},
		"/orgs/platform":                  {"inherited from engineering", `href="/orgs/engineering"`, "engineering/platform"},
		"/policies/" + policy.Name:        {"*:delete", "context.env == &#34;prod&#34;", "agents of <a href=\"/orgs/engineering\">engineering</a> and of every org beneath it", "change no answer (spec.enforcement: Audit)"},
		"/skills":                         {`href="/skills/deploy-bot"`, "deploy-bot-v1-"},
		"/skills/deploy-bot":              {"Version 1", "deploy:staging", "deploy:production", "deploy-bot@yourcompany.com", `href="/agents/default/prod-deploy-bot"`, "never change"},
		"/skills/deploy-bot/diff?from=1":  {`class="diff"`, "deploy:staging"},
		"/policies":                       {`href="/policies/no-production-deploys"`, "1 Deny", "every org", `title="evaluated and recorded, never enforced">Audit</span>`},
		"/policies/no-production-deploys": {"deny-production-deploys", "Deny", "deploy:production", "Generation", "Earlier generations are not stored yet"},
		"/grants":                         {grant.Name, "engineering", "sales"},
		"/grants/" + grant.Name:           {"sales demos deploy to staging", "deploy-bot", "granting side", "Active now"},
		"/orgs/new":                       {`name="name"`, `name="parent"`, "Preview YAML", "kind: AIOrg"},
		"/skills/new?org=engineering":     {`name="allowedActions"`, "kind: Skill", "org: engineering"},
		"/skills/deploy-bot/versions/new": {"publish version 2", "deploy:staging", "version: 2"},
		"/policies/new":                   {`name="rule.0.actions"`, "Add a rule", "kind: Policy"},
		"/agents/new?org=engineering":     {`name="skill"`, `value="default"`, `value="` + adminUser + `"`, "kind: Agent"},
	} {
		body := b.mustGet(path)
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("GET %s lacks %q", path, s)
			}
		}
		if m := inlineCode.FindString(body); m != "" {
			t.Errorf("GET %s sends inline code the CSP forbids: %q", path, m)
		}
	}
	if status, body := b.get("/skills/deploy-bot/diff?from=1&to=9"); status != http.StatusNotFound || !strings.Contains(body, "choose two of them") {
		t.Errorf("a diff with a version that does not exist: %d", status)
	}
	if status, _ := b.get("/orgs/" + unique("none")); status != http.StatusNotFound {
		t.Errorf("an org that does not exist: %d, want 404", status)
	}
}

func TestOrgTreeNestsChildren(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	body := w.login(t, adminUser).mustGet("/orgs")
	eng := strings.Index(body, `<a href="/orgs/engineering">engineering</a>`)
	plat := strings.Index(body, `<a href="/orgs/platform">platform</a>`)
	if eng < 0 || plat < eng {
		t.Fatalf("engineering at %d, platform at %d:\n%s", eng, plat, body)
	}
	// platform is in a list inside engineering's item (other tests add
	// more children), not a sibling: find where that item ends.
	depth, end := 1, -1
	for i := eng; i < len(body) && end < 0; i++ {
		switch {
		case strings.HasPrefix(body[i:], "<li>"):
			depth++
		case strings.HasPrefix(body[i:], "</li>"):
			if depth--; depth == 0 {
				end = i
			}
		}
	}
	if plat > end || !strings.Contains(body[eng:plat], `<ul class="tree">`) {
		t.Errorf("platform (at %d) is not nested under engineering (%d to %d):\n%s", plat, eng, end, body)
	}
}

func TestSkillDiffShowsAnAddedRule(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	b := w.login(t, adminUser)
	name := unique("diff-bot")
	status, loc, body := b.submit("/skills/new", url.Values{"name": {name}, "org": {"engineering"}, "displayName": {"Diff Bot"},
		"agentEmail": {"diff-bot@example.com"}, "allowedActions": {"deploy:staging"}, "forbiddenActions": {"deploy:production"}, "do": {"create"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/skills/"+name) {
		t.Fatalf("creating skill %s: %d %s\n%s", name, status, loc, body)
	}
	// The new-version form starts from version 1; add a rule to it.
	if form := b.mustGet("/skills/" + name + "/versions/new"); !strings.Contains(form, "deploy:staging\n</textarea>") {
		t.Errorf("the new-version form does not start from version 1:\n%s", form)
	}
	v2 := url.Values{"agentEmail": {"diff-bot@example.com"}, "allowedActions": {"deploy:staging\r\ndeploy:qa\r\n"},
		"forbiddenActions": {"deploy:production"}, "generation": {"1"}, "do": {"create"}}
	status, loc, body = b.submit("/skills/"+name+"/versions/new", v2)
	if status != http.StatusSeeOther || !strings.Contains(loc, "version+2+published") {
		t.Fatalf("publishing version 2: %d %s\n%s", status, loc, body)
	}
	// The same form again, opened before version 2: it does not build
	// on a version its author has not seen.
	if status, _, body := b.submit("/skills/"+name+"/versions/new", v2); status != http.StatusConflict ||
		!strings.Contains(body, "changed since this form was opened (its latest version is now 2)") {
		t.Errorf("a form opened before version 2 was published: %d\n%s", status, body)
	}
	diff := b.mustGet("/skills/" + name + "/diff?from=1&to=2")
	// html/template writes "+" as "&#43;".
	for _, want := range []string{`<span class="add">&#43; - deploy:qa</span>`, `<span class="del">- version: 1</span>`,
		`<span class="add">&#43; version: 2</span>`, `<span class="same">  - deploy:staging</span>`} {
		if !strings.Contains(diff, want) {
			t.Errorf("the diff lacks %q:\n%s", want, diff)
		}
	}
	if strings.Contains(diff, `<span class="del">- - deploy`) {
		t.Errorf("the diff deletes a rule that stayed:\n%s", diff)
	}
	// Version 1 is still there, unchanged: published versions are immutable.
	detail := b.mustGet("/skills/" + name)
	if !strings.Contains(detail, "Version 1") || !strings.Contains(detail, "Version 2") || !strings.Contains(detail, "What changed since version 1") {
		t.Errorf("the skill page does not show both versions:\n%s", detail)
	}
}

// revokeSessions ends user's PIM sessions, so the next elevate makes a
// new one.
func (w *world) revokeSessions(t *testing.T, user string) {
	t.Helper()
	var list claiimv1.PIMRequestList
	if err := w.env.Client.List(w.ctx, &list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		p := &list.Items[i]
		if !p.Elevates(user, time.Now()) {
			continue
		}
		patch := client.MergeFrom(p.DeepCopy())
		p.Annotations[claiimv1.AnnotationRevoke] = "console tests: acting without a session"
		if err := w.env.As(user).Patch(w.ctx, p, patch); err != nil {
			t.Fatal(err)
		}
	}
	elevated.Delete(user)
}

func TestCreateOrgNeedsPIM(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	w.revokeSessions(t, adminUser)
	t.Cleanup(func() { w.elevate(t, adminUser) }) // for the tests after this one
	b := w.login(t, adminUser)
	name := unique("ops")
	form := url.Values{"name": {name}, "displayName": {"Ops & <Friends>"}, "description": {"runs things"}, "parent": {"engineering"}, "do": {"create"}}

	if page := b.mustGet("/orgs/new"); !strings.Contains(page, "no active PIM session") {
		t.Errorf("the form does not warn that there is no PIM session")
	}
	eventually(t, func(g Gomega) {
		status, _, body := b.submit("/orgs/new", form)
		g.Expect(status).To(BeNumerically(">=", 400))
		g.Expect(body).To(ContainSubstring("needs an active PIM session for " + adminUser))
		// The values stay, escaped.
		g.Expect(body).To(ContainSubstring(`value="` + name + `"`))
		g.Expect(body).To(ContainSubstring(`value="Ops &amp; &lt;Friends&gt;"`))
		g.Expect(body).To(ContainSubstring(`value="engineering"`))
		g.Expect(body).To(ContainSubstring("runs things</textarea>"))
	})
	if err := w.env.Client.Get(w.ctx, client.ObjectKey{Name: name}, &claiimv1.AIOrg{}); err == nil {
		t.Fatalf("AIOrg %s exists after the refusal", name)
	}

	w.elevate(t, adminUser)
	status, loc, body := b.submit("/orgs/new", form)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/orgs/"+name+"?done=") {
		t.Fatalf("with a session: %d %s\n%s", status, loc, body)
	}
	page := b.mustGet(loc)
	for _, want := range []string{"AIOrg " + name + " created", "kind: AIOrg", "parent: engineering", `<details class="yaml" open>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the new org's page lacks %q", want)
		}
	}
	eventually(t, func(g Gomega) {
		tree := b.mustGet("/orgs")
		g.Expect(tree).To(ContainSubstring(`<a href="/orgs/` + name + `">` + name + `</a>`))
	})
}

func TestPreviewShowsTheYAMLWithoutCreating(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	b := w.login(t, adminUser)
	name := unique("preview")
	status, _, body := b.submit("/policies/new", url.Values{"name": {name}, "org": {"engineering"}, "rules": {"1"},
		"rule.0.name": {"no-prod"}, "rule.0.effect": {"Deny"}, "rule.0.actions": {"deploy:production"}, "do": {"addrule"}})
	if status != http.StatusOK {
		t.Fatalf("adding a rule row: %d\n%s", status, body)
	}
	for _, want := range []string{`name="rule.1.actions"`, "name: " + name, "- deploy:production", "effect: Deny", `value="no-prod"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the previewed policy form lacks %q", want)
		}
	}
	if err := w.env.Client.Get(w.ctx, client.ObjectKey{Name: name}, &claiimv1.Policy{}); err == nil {
		t.Errorf("a preview created policy %s", name)
	}
	// Fields past their bound are refused before the apiserver is asked.
	status, _, body = b.submit("/orgs/new", url.Values{"name": {name}, "description": {strings.Repeat("x", 2000)}, "do": {"create"}})
	if status != http.StatusUnprocessableEntity || !strings.Contains(body, "Description is longer than 1024 characters") {
		t.Errorf("an over-long description: %d", status)
	}
}

func TestCreateAgentShowsTokenOnce(t *testing.T) {
	w := kube(t)
	w.samples(t)
	// admin may read Secrets in this namespace, as the dev control plane
	// lets them in default.
	ns := unique("agents")
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "token-reader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "token-reader", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "token-reader"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: adminUser}}},
	} {
		if err := w.env.Client.Create(w.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	b := w.login(t, adminUser)
	status, loc, body := b.submit("/agents/new", url.Values{"namespace": {ns}, "name": {"deploy-bot"}, "displayName": {"Staging Deploy Bot"},
		"org": {"engineering"}, "accountabilityAnchor": {adminUser}, "skill": {"deploy-bot"}, "version": {""}, "do": {"create"}})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/agents/"+ns+"/deploy-bot?done=") {
		t.Fatalf("provisioning: %d %s\n%s", status, loc, body)
	}
	sec := &corev1.Secret{}
	if err := w.env.Client.Get(w.ctx, client.ObjectKey{Namespace: ns, Name: "deploy-bot-claiim-token"}, sec); err != nil {
		t.Fatal(err)
	}
	token := string(sec.Data[claiimv1.SecretKeyAgentToken])
	if token == "" || strings.Contains(loc, token) {
		t.Fatalf("token %q, redirect %s", token, loc)
	}
	ag := &claiimv1.Agent{}
	if err := w.env.Client.Get(w.ctx, client.ObjectKey{Namespace: ns, Name: "deploy-bot"}, ag); err != nil || ag.Spec.SkillRef.Version != 1 {
		t.Fatalf("the agent: %v, pinned to %d (the latest is 1)", err, ag.Spec.SkillRef.Version)
	}
	// The next page the person loads shows it: the agent's page once it
	// is registered, the dashboard otherwise. Then never again.
	page := loc
	if _, first := b.get(loc); !strings.Contains(first, token) {
		page = "/"
		if first := b.mustGet(page); !strings.Contains(first, token) {
			t.Fatalf("the token is shown on no page after provisioning")
		}
	}
	if _, again := b.get(page); strings.Contains(again, token) {
		t.Errorf("the token is shown a second time on %s", page)
	}
	if again := b.mustGet("/"); strings.Contains(again, token) {
		t.Errorf("the token is shown again on the dashboard")
	}
}

// Someone who may provision but not read Secrets (admin, in default) is
// told how to get the token instead.
func TestCreateAgentWithoutSecretAccessSaysHow(t *testing.T) {
	w := kube(t)
	w.samples(t)
	b := w.login(t, adminUser)
	name := unique("no-secret-bot")
	status, loc, body := b.submit("/agents/new", url.Values{"namespace": {"default"}, "name": {name}, "org": {"engineering"},
		"accountabilityAnchor": {adminUser}, "skill": {"deploy-bot"}, "version": {"1"}, "do": {"create"}})
	if status != http.StatusSeeOther {
		t.Fatalf("provisioning: %d\n%s", status, body)
	}
	flash, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	done := flash.Query().Get("done")
	if want := "kubectl get secret " + name + "-claiim-token -n default"; !strings.Contains(done, want) {
		t.Errorf("the flash %q does not say %q", done, want)
	}
}

func TestCatalogActionsDisabledWithoutRights(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	b := w.login(t, auditorUser)
	for path, label := range map[string]string{"/orgs": "New AIOrg", "/skills": "New skill", "/policies": "New policy", "/": "New agent"} {
		body := b.mustGet(path)
		if !strings.Contains(body, `<button type="button" disabled>`+label+`</button> <span class="why">you may not create`) {
			t.Errorf("%s: no disabled %q button with the reason:\n%s", path, label, body)
		}
	}
	form := b.mustGet("/orgs/new")
	if !strings.Contains(form, `value="create" disabled>Create</button> <span class="why">you may not create aiorgs`) {
		t.Errorf("the AIOrg form's Create is not disabled with a reason:\n%s", form)
	}
	// Someone with no role sees what they may not list, not a failed page.
	dash := w.login(t, nobodyUser).mustGet("/")
	for _, want := range []string{"you may not list AIOrgs", "you may not list skills", "you may not list agents", "you may not list PIM requests"} {
		if !strings.Contains(dash, want) {
			t.Errorf("nobody's dashboard lacks %q", want)
		}
	}
}

func TestCatalogEscapesWhatPeopleWrote(t *testing.T) {
	w := kube(t)
	w.orgs(t)
	name := unique("xss")
	evil := `<script>alert("pwned")</script>`
	org := &claiimv1.AIOrg{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: claiimv1.AIOrgSpec{DisplayName: `<img src=x onerror=alert(1)>`, Description: evil, Parent: "sales"}}
	if err := w.env.As(adminUser).Create(w.ctx, org); err != nil {
		t.Fatal(err)
	}
	b := w.login(t, adminUser)
	for _, path := range []string{"/orgs/" + name, "/orgs"} {
		body := b.mustGet(path)
		if strings.Contains(body, evil) || strings.Contains(body, "<img src=x") {
			t.Errorf("%s shows what a person wrote as HTML", path)
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s does not show the display name, escaped", path)
		}
	}
	if body := b.mustGet("/orgs/" + name); !strings.Contains(body, `&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;`) {
		t.Errorf("the description is not shown escaped")
	}
}
