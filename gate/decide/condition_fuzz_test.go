package decide

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzCondition: whatever the expression, compiling never panics and a
// refusal is an error; what compiles is a bool expression within
// MaxConditionLen whose evaluation never panics and, on any context within
// the gate's request bounds, never runs out of budget: the promise of
// CompileCondition's compile-time cost estimate. Each context is tried as
// given and inflated to the bounds (every map and list filled to
// MaxContextEntries, every string to MaxContextString), the worst case of
// its shape.
func FuzzCondition(f *testing.F) {
	for _, s := range [][2]string{
		{`context.target.startsWith("eu-")`, `{"target":"eu-prod-1"}`},
		{`context.exists(k, context[k] == "x")`, `{"a":"x"}`},
		{`action.matches("^deploy:.*")`, `{}`},
		{`context.replicas > 2 && agent.labels.tier == "prod"`, `{"replicas":3}`},
		{`context.all(a, context.all(b, string(context[a]) + string(context[b]) != ""))`, `{"a":"x","b":"y"}`},
		{`context.l.exists(x, x.matches(context.re))`, `{"l":["a"],"re":"a+"}`},
		{`context.l.map(x, context.l.map(y, x + y)).size() > 0`, `{"l":["a","b"]}`},
		{`context.l.filter(x, x.size() > 3).size() == context.l.size()`, `{"l":["abcd"]}`},
		{`context.m.a.b.c == 1`, `{"m":{"a":{"b":{"c":1}}}}`},
		{`string(context) != ""`, `{"a":[1,{"b":2}]}`},
		{`context.s.split(",").size() > 1`, `{"s":"a,b"}`},
		{`size(context.s + context.s + context.s) > 3000`, `{"s":"x"}`},
		{`[1,2,3].all(i, [1,2,3].all(j, i*j < 10))`, `{}`},
		{`context.l.sort() == context.l`, `{"l":[3,1]}`},
		{`dyn(context.n) / 0 == 1`, `{"n":1}`},
		{`context.target ==`, `{}`},
		{`context.target`, `{}`},
		{`request.user == "x"`, `{}`},
		{strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300), `{}`},
		{strings.Repeat("!", 5000) + "true", `{}`},
		{"\xff", `{}`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	agent := map[string]any{"name": "bot", "namespace": "agents", "org": "engineering", "anchor": "admin@claiim.io",
		"labels": map[string]any{"tier": "prod"}}
	f.Fuzz(func(t *testing.T, expr string, ctxJSON []byte) {
		c, err := CompileCondition(expr)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("CompileCondition(%q): an empty error", expr)
			}
			return
		}
		if len(expr) > MaxConditionLen || c.String() != expr {
			t.Fatalf("compiled %d characters, as %q", len(expr), c.String())
		}
		var ctx map[string]any
		if json.Unmarshal(ctxJSON, &ctx) != nil || !withinBounds(ctx, 1) {
			ctx = map[string]any{"target": "eu-prod-1"}
		}
		for _, vars := range []map[string]any{
			{"action": "deploy:production", "context": ctx, "agent": agent},
			{"action": strings.Repeat("a:", MaxActionLen/2-1) + "bb", "context": inflate(ctx, 1).(map[string]any), "agent": agent},
		} {
			if _, err := c.Eval(vars); err != nil && strings.Contains(err.Error(), "cost limit") {
				t.Fatalf("%q compiled within the budget but ran out of it: %v", expr, err)
			}
		}
	})
}

// withinBounds is the gate's request bound (gate/server checkContext) as
// the fuzzer needs it: contexts beyond it never reach a condition.
func withinBounds(v any, depth int) bool {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if !withinBounds(e, depth+1) {
				return false
			}
		}
		return depth <= MaxContextDepth && len(x) <= MaxContextEntries
	case []any:
		for _, e := range x {
			if !withinBounds(e, depth+1) {
				return false
			}
		}
		return depth <= MaxContextDepth && len(x) <= MaxContextEntries
	case string:
		return len(x) <= MaxContextString
	}
	return true
}

// inflate fills a bounded value to the bounds: maps get filler keys,
// lists repeat their items, strings repeat their text.
func inflate(v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, MaxContextEntries)
		var some any = "x"
		for k, e := range x {
			m[k] = inflate(e, depth+1)
			some = m[k]
		}
		for i := 0; len(m) < MaxContextEntries; i++ {
			m["~"+strings.Repeat("f", i)] = some
		}
		return m
	case []any:
		l := make([]any, 0, MaxContextEntries)
		for len(x) > 0 && len(l) < MaxContextEntries {
			l = append(l, inflate(x[len(l)%len(x)], depth+1))
		}
		return l
	case string:
		if x == "" {
			x = "x"
		}
		return strings.Repeat(x, max(1, MaxContextString/len(x)))
	}
	return v
}
