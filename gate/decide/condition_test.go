package decide

import (
	"strings"
	"testing"
)

func TestCondition(t *testing.T) {
	vars := map[string]any{
		"action":  "deploy:production",
		"context": map[string]any{"target": "eu-prod-1", "replicas": 3},
		"agent":   map[string]any{"name": "bot", "namespace": "ns", "org": "engineering", "labels": map[string]any{"tier": "prod"}},
	}
	cases := []struct {
		expr    string
		want    bool
		evalErr bool
	}{
		{`context.target.startsWith("eu-")`, true, false},
		{`context.replicas > 2`, true, false},
		{`context.replicas > 2.5`, true, false},
		{`agent.labels.tier == "prod" && action == "deploy:production"`, true, false},
		{`has(context.region)`, false, false},
		{`context.region == "eu"`, false, true}, // missing key: an error, which a Deny rule treats as a match
	}
	for _, c := range cases {
		cond, err := CompileCondition(c.expr)
		if err != nil {
			t.Fatalf("CompileCondition(%q): %v", c.expr, err)
		}
		got, err := cond.Eval(vars)
		if (err != nil) != c.evalErr {
			t.Errorf("%q: error %v, want error=%v", c.expr, err, c.evalErr)
		}
		if err == nil && got != c.want {
			t.Errorf("%q = %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestCompileConditionRejects(t *testing.T) {
	cases := map[string]string{
		`context.target ==`:   "does not compile",
		`request.user == "x"`: "undeclared reference",
		`context.target`:      "must evaluate to a bool",
		`context.all(a, context.all(b, context.all(c, string(context[a]) + string(context[b]) != string(context[c]))))`: "too expensive",
		strings.Repeat("true && ", 600) + "true": "longer than",
	}
	for expr, want := range cases {
		_, err := CompileCondition(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CompileCondition(%.40q) = %v, want an error containing %q", expr, err, want)
		}
	}
}
