package v1alpha1

import (
	"strings"
	"testing"
)

func TestSkillVersionDigestAndID(t *testing.T) {
	v := SkillVersion{Version: 1, AgentEmail: "deploy-bot@yourcompany.com",
		AllowedActions: []ActionPattern{"deploy:staging"}, ForbiddenActions: []ActionPattern{"deploy:production"}}
	d := v.Digest()
	if !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Fatalf("digest %q", d)
	}
	if d != v.Digest() {
		t.Fatal("digest is not deterministic")
	}
	w := v
	w.ForbiddenActions = nil
	if w.Digest() == d {
		t.Fatal("a changed body has the same digest")
	}
	if id := SkillVersionID("deploy-bot", 1, d); id != "deploy-bot-v1-"+d[7:15] {
		t.Fatalf("id %q", id)
	}
}

func TestSkillVersionID(t *testing.T) {
	s := &Skill{}
	s.Name = "deploy-bot"
	s.Spec.Versions = []SkillVersion{{Version: 1, AgentEmail: "a@b.c"}}
	id, d, ok := s.VersionID(1)
	if !ok || d != s.Spec.Versions[0].Digest() || id != SkillVersionID("deploy-bot", 1, d) {
		t.Errorf("VersionID(1) = %q %q %v", id, d, ok)
	}
	if id, d, ok := s.VersionID(2); ok || id != "" || d != "" {
		t.Errorf("VersionID(2) = %q %q %v", id, d, ok)
	}
}

func TestParseSkillVersionID(t *testing.T) {
	for _, c := range []struct {
		skill   string
		version int32
	}{{"deploy-bot", 1}, {"a-v2-b", 12}, {"x", 64}} {
		id := SkillVersionID(c.skill, c.version, "sha256:0123456789abcdef")
		if s, v, ok := ParseSkillVersionID(id); !ok || s != c.skill || v != c.version {
			t.Errorf("%s: got %q %d %v", id, s, v, ok)
		}
	}
	for _, bad := range []string{"", "deploy-bot", "deploy-bot-v-1234", "-v1-abcd", "deploy-bot-vx-12345678"} {
		if _, _, ok := ParseSkillVersionID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
