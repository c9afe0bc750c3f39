package controllers_test

import (
	"os"
	"path/filepath"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	lua "github.com/yuin/gopher-lua"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/test/testenv"
)

// argoHealth runs docs/gitops.md's Argo CD health script, as Argo CD does
// (gopher-lua, the object as the global `obj`), on a live object.
func argoHealth(g Gomega, obj client.Object) (string, string) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "gitops.md"))
	g.Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile("(?s)```lua\n(.*?)```").FindSubmatch(b)
	g.Expect(m).NotTo(BeNil(), "no lua block in docs/gitops.md")

	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(claiimv1.GroupVersion.WithKind(kindOf(obj)))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), u)).To(Succeed())
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, u.Object))
	g.Expect(L.DoString("return (function() " + string(m[1]) + " end)()")).To(Succeed())
	hs, ok := L.Get(-1).(*lua.LTable)
	g.Expect(ok).To(BeTrue(), "the script returns a table")
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch t := v.(type) {
	case map[string]any:
		tb := L.NewTable()
		for k, e := range t {
			tb.RawSetString(k, toLua(L, e))
		}
		return tb
	case []any:
		tb := L.NewTable()
		for _, e := range t {
			tb.Append(toLua(L, e))
		}
		return tb
	case string:
		return lua.LString(t)
	case bool:
		return lua.LBool(t)
	case int64:
		return lua.LNumber(t)
	case float64:
		return lua.LNumber(t)
	}
	return lua.LNil
}

var _ = Describe("Argo CD health (docs/gitops.md)", func() {
	It("is Healthy when Ready, Progressing while an anchor hasn't accepted, Suspended when suspended, Degraded when broken", func() {
		o := readyOrg(uniq("engineering"), "")
		s := deployBot(uniq("deploy-bot"), o.Name)
		Expect(k8s.Create(ctx, s)).To(Succeed())
		broken := policy(uniq("broken"), "", denyRule("r", "deploy:production"))
		broken.Spec.Rules[0].Condition = "context.x =="
		Expect(k8s.Create(ctx, broken)).To(Succeed())
		ns := newNamespace()
		waiting := agent(ns, "waiting", o.Name, s.Name, 1, anchor)
		Expect(k8s.Create(ctx, waiting)).To(Succeed())
		suspended := agent(ns, "suspended", o.Name, s.Name, 1, anchor)
		suspended.Spec.Lifecycle = claiimv1.LifecycleSuspended
		Expect(k8s.Create(ctx, suspended)).To(Succeed())

		Eventually(func(g Gomega) {
			for obj, want := range map[client.Object]string{o: "Healthy", s: "Healthy", waiting: "Progressing", suspended: "Suspended", broken: "Degraded"} {
				got, msg := argoHealth(g, obj)
				g.Expect(got).To(Equal(want), "%s %s: %s", kindOf(obj), obj.GetName(), msg)
			}
		}).Should(Succeed())
		_, msg := argoHealth(Default, broken)
		Expect(msg).To(ContainSubstring("does not compile"))
	})
})
