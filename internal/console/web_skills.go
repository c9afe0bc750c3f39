package console

import (
	"net/http"
	"slices"
	"strconv"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/linediff"
)

func (c *Console) registerSkills(mux *http.ServeMux) {
	mux.HandleFunc("GET /skills", c.page(c.skills))
	mux.HandleFunc("GET /skills/{name}", c.page(c.skill))
	mux.HandleFunc("GET /skills/{name}/diff", c.page(c.skillDiff))
}

type skillRow struct {
	Name, DisplayName, Org, LatestID string
	Versions, Latest                 int
	Ready                            ready
}

type skillsData struct {
	listing
	Skills []skillRow
	New    action
}

func (c *Console) skills(w http.ResponseWriter, r *http.Request, s *Session) {
	var list claiimv1.SkillList
	d := skillsData{listing: listAs(r.Context(), s, &list, "skills"),
		New: action{Href: "/skills/new", Label: "New skill", permit: can(r.Context(), s, "create", "skills", "")}}
	for _, sk := range list.Items {
		d.Skills = append(d.Skills, skillRow{Name: sk.Name, DisplayName: sk.Spec.DisplayName, Org: string(sk.Spec.Org),
			LatestID: sk.Status.LatestVersionID, Versions: len(sk.Spec.Versions), Latest: int(latestVersion(&sk)), Ready: readyOf(sk.Status.Conditions)})
	}
	c.render(w, http.StatusOK, "skills", newView(r, s, "Skills", "skills", d))
}

// latestVersion is the highest version number the spec holds.
func latestVersion(sk *claiimv1.Skill) int32 {
	var n int32
	for _, v := range sk.Spec.Versions {
		n = max(n, v.Version)
	}
	return n
}

// agentRef names an agent, for a link to its page.
type agentRef struct {
	Namespace, Name, Phase string
}

type skillVersionView struct {
	Version int32
	// ID and Digest are the manager's (status); empty until it has
	// published the version.
	ID, Digest         string
	AgentEmail, Prompt string
	Allowed, Forbidden []claiimv1.ActionPattern
	Agents             []agentRef
	Latest             bool
	// Previous is the version before, 0 for the first.
	Previous int32
}

type skillData struct {
	Skill      *claiimv1.Skill
	Ready      ready
	Versions   []skillVersionView // newest first
	AgentsList listing
	Numbers    []int32
	From, To   int32
	YAML       string
	NewVersion action
}

func (c *Console) skill(w http.ResponseWriter, r *http.Request, s *Session) {
	ctx, name := r.Context(), r.PathValue("name")
	sk := &claiimv1.Skill{}
	if !c.fetch(w, r, s, "skills", client.ObjectKey{Name: name}, sk) {
		return
	}
	d := skillData{Skill: sk, Ready: readyOf(sk.Status.Conditions), YAML: c.manifestYAML(sk, sk.Spec),
		NewVersion: action{Href: "/skills/" + name + "/versions/new", Label: "Publish a new version",
			permit: can(ctx, s, "update", "skills", "")}}

	pinned := map[int32][]agentRef{}
	var agents claiimv1.AgentList
	if d.AgentsList = listAs(ctx, s, &agents, "agents"); d.AgentsList.OK() {
		for _, a := range agents.Items {
			if a.Spec.SkillRef.Name == name {
				pinned[a.Spec.SkillRef.Version] = append(pinned[a.Spec.SkillRef.Version],
					agentRef{Namespace: a.Namespace, Name: a.Name, Phase: string(a.Status.Phase)})
			}
		}
	}
	published := map[int32]claiimv1.PublishedSkillVersion{}
	for _, p := range sk.Status.Versions {
		published[p.Version] = p
	}
	latest := latestVersion(sk)
	for _, v := range sk.Spec.Versions {
		d.Numbers = append(d.Numbers, v.Version)
		d.Versions = append(d.Versions, skillVersionView{Version: v.Version, ID: published[v.Version].ID, Digest: published[v.Version].Digest,
			AgentEmail: v.AgentEmail, Prompt: v.SystemPrompt, Allowed: v.AllowedActions, Forbidden: v.ForbiddenActions,
			Agents: pinned[v.Version], Latest: v.Version == latest, Previous: v.Version - 1})
	}
	slices.Reverse(d.Versions)
	d.To, d.From = latest, max(latest-1, 1)
	c.render(w, http.StatusOK, "skill", newView(r, s, "Skill "+name, "skills", d))
}

type skillDiffData struct {
	Skill          string
	Numbers        []int32
	From, To       int32
	Lines          []linediff.Line
	Added, Deleted int
}

// skillDiff is a line diff of two versions' YAML. Published versions
// never change, so the diff of two version numbers never changes either.
func (c *Console) skillDiff(w http.ResponseWriter, r *http.Request, s *Session) {
	name := r.PathValue("name")
	sk := &claiimv1.Skill{}
	if !c.fetch(w, r, s, "skills", client.ObjectKey{Name: name}, sk) {
		return
	}
	d := skillDiffData{Skill: name}
	for _, v := range sk.Spec.Versions {
		d.Numbers = append(d.Numbers, v.Version)
	}
	latest := latestVersion(sk)
	d.To = versionParam(r, "to", latest)
	d.From = versionParam(r, "from", max(d.To-1, 1))
	from, to := sk.Version(d.From), sk.Version(d.To)
	if from == nil || to == nil {
		v := newView(r, s, "Skill "+name+": diff", "skills", d)
		v.Error = "skill " + name + " has versions 1 to " + strconv.Itoa(int(latest)) + "; choose two of them"
		c.render(w, http.StatusNotFound, "skill_diff", v)
		return
	}
	d.Lines = linediff.Diff(versionYAML(from), versionYAML(to))
	d.Added, d.Deleted = linediff.Changes(d.Lines)
	c.render(w, http.StatusOK, "skill_diff", newView(r, s, "Skill "+name+": v"+strconv.Itoa(int(d.From))+" → v"+strconv.Itoa(int(d.To)), "skills", d))
}

// versionParam is a version number from the query, def when absent; an
// unparsable one is 0, which no version has.
func versionParam(r *http.Request, key string, def int32) int32 {
	q := r.URL.Query().Get(key)
	if q == "" {
		return def
	}
	n, err := strconv.ParseInt(q, 10, 32)
	if err != nil || n < 1 || n > claiimv1.MaxSkillVersions {
		return 0
	}
	return int32(n)
}

func versionYAML(v *claiimv1.SkillVersion) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "# cannot show this version as YAML: " + err.Error()
	}
	return string(b)
}
