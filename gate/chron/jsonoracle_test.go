package chron

// The reflection-based encoding the appender replaced, kept as the oracle
// jsonappend_test.go compares it with: these are the hashed row format's
// bytes as they were first defined. fixTree and bound, which did not
// change, are shared.

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
	"unicode/utf8"
)

// content is the hashed part of a row, in hash format v1. The field order is
// the format: never reorder, add only with a new version. The JSON columns
// are embedded as their canonical text, so the hash never depends on how
// jsonb spells them.
type content struct {
	ID             string          `json:"id"`
	Time           string          `json:"time"`
	Kind           string          `json:"kind"`
	Actor          string          `json:"actor"`
	AgentName      string          `json:"agent_name"`
	AgentNamespace string          `json:"agent_namespace"`
	AgentUID       string          `json:"agent_uid"`
	Org            string          `json:"org"`
	Action         string          `json:"action"`
	Context        json.RawMessage `json:"context"`
	Outcome        string          `json:"outcome"`
	Reason         string          `json:"reason"`
	Message        string          `json:"message"`
	Anchor         string          `json:"anchor"`
	SkillVersionID string          `json:"skill_version_id"`
	SkillDigest    string          `json:"skill_digest"`
	Policies       json.RawMessage `json:"policies"`
	SkillRules     json.RawMessage `json:"skill_rules"`
	Replica        string          `json:"replica"`
	RequestID      string          `json:"request_id"`
}

func contentBodyOracle(r *Record, ctxJSON, polJSON, rulesJSON []byte) ([]byte, error) {
	return json.Marshal(content{
		ID: r.ID, Time: r.Time.UTC().Format(time.RFC3339Nano), Kind: string(r.Kind), Actor: r.Actor,
		AgentName: r.AgentName, AgentNamespace: r.AgentNamespace, AgentUID: r.AgentUID, Org: r.Org,
		Action: r.Action, Context: ctxJSON, Outcome: r.Outcome, Reason: r.Reason, Message: r.Message,
		Anchor: r.Anchor, SkillVersionID: r.SkillVersionID, SkillDigest: r.SkillDigest,
		Policies: polJSON, SkillRules: rulesJSON, Replica: r.Replica, RequestID: r.RequestID,
	})
}

func policiesJSONOracle(ps []PolicyMatch) ([]byte, error) {
	t := make([]any, len(ps))
	for i, p := range ps {
		m := map[string]any{"name": p.Name, "version": float64(p.Version), "rule": p.Rule, "effect": p.Effect}
		if p.Enforcement != "" {
			m["enforcement"] = p.Enforcement
		}
		t[i] = m
	}
	return json.Marshal(t)
}

func rulesJSONOracle(r []string) ([]byte, error) {
	if r == nil {
		r = []string{}
	}
	return json.Marshal(r)
}

func canonFromJSONOracle(b []byte) ([]byte, error) {
	var t any
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return json.Marshal(fixTree(t))
}

func boundContextOracle(c map[string]any) (map[string]any, []byte, error) {
	if len(c) == 0 {
		return nil, []byte("{}"), nil
	}
	tree, ok := jsonCopyOracle(c)
	t, _ := tree.(map[string]any)
	if !ok {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: context is not JSON: %w", ErrInvalid, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, fmt.Errorf("%w: context is not a JSON object: %w", ErrInvalid, err)
		}
		t = m
	}
	t = fixTree(t).(map[string]any)
	t = bound(t, 1).(map[string]any)
	out, err := json.Marshal(t)
	if err != nil {
		return nil, nil, err
	}
	if len(out) > maxContextBytes {
		t = shrinkOracle(t)
		if out, err = json.Marshal(t); err != nil {
			return nil, nil, err
		}
	}
	return t, out, nil
}

func shrinkOracle(t map[string]any) map[string]any {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	marker, _ := json.Marshal(Truncated)
	size := 2
	out := make(map[string]any, len(t))
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(t[k])
		n := len(kb) + 1 + len(vb) + 1
		if size+n > maxContextBytes {
			out[k] = Truncated
			n = len(kb) + 1 + len(marker) + 1
		} else {
			out[k] = t[k]
		}
		size += n
	}
	if size > maxContextBytes {
		return map[string]any{Truncated: fmt.Sprintf("context larger than %d bytes", maxContextBytes)}
	}
	return out
}

func jsonCopyOracle(v any) (any, bool) { return jsonCopyDepthOracle(v, 0) }

func jsonCopyDepthOracle(v any, depth int) (any, bool) {
	if depth > 64 {
		return nil, false
	}
	switch x := v.(type) {
	case nil, bool:
		return x, true
	case string:
		return x, utf8.ValidString(x)
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case map[string]any:
		if x == nil {
			return nil, true
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, ok := jsonCopyDepthOracle(e, depth+1)
			if !ok || !utf8.ValidString(k) {
				return nil, false
			}
			m[k] = c
		}
		return m, true
	case []any:
		if x == nil {
			return nil, true
		}
		l := make([]any, len(x))
		for i, e := range x {
			c, ok := jsonCopyDepthOracle(e, depth+1)
			if !ok {
				return nil, false
			}
			l[i] = c
		}
		return l, true
	}
	return nil, false
}

// prepareOracle is prepare as it was: each JSON part marshalled on its own.
func prepareOracle(r *Record) (prepared, error) {
	p, err := prepare(r) // validation and text cleaning are unchanged
	if err != nil {
		return p, err
	}
	in := *r
	in.Correction, in.Claim = nil, nil
	ctx, ctxJSON, err := boundContextOracle(in.Context)
	if err != nil {
		return prepared{}, err
	}
	polJSON, err := policiesJSONOracle(p.rec.Policies)
	if err != nil {
		return prepared{}, err
	}
	rulesJSON, err := rulesJSONOracle(p.rec.SkillRules)
	if err != nil {
		return prepared{}, err
	}
	rec := p.rec
	rec.Context = ctx
	body, err := contentBodyOracle(&rec, ctxJSON, polJSON, rulesJSON)
	if err != nil {
		return prepared{}, err
	}
	return prepared{rec: rec, ctxJSON: ctxJSON, polJSON: polJSON, rulesJSON: rulesJSON, body: body}, nil
}
