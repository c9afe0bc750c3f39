// Package chron is CLAIIM's audit log: an append-only, hash-chained table in
// PostgreSQL. Every gate decision and every control-plane event is one row.
//
// Three layers keep it honest. A trigger refuses UPDATE, DELETE and TRUNCATE
// for everyone; the writer role holds only SELECT and INSERT (GrantWriter);
// and every row carries the SHA-256 of its predecessor in its writer's stream,
// so Verify finds rows edited, deleted or reordered by someone who switched
// the trigger off (Verify says what a chain alone cannot show).
//
// Writer batches concurrent records into one transaction (group commit) and
// answers each caller only once its row has committed.
package chron

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// PolicyMatch is one policy rule that matched a decision.
type PolicyMatch struct {
	Name    string `json:"name"`
	Version int64  `json:"version"` // the Policy's metadata.generation
	Rule    string `json:"rule"`
	Effect  string `json:"effect"` // "Allow" | "Deny"
}

// Record is one Chron row as the caller fills it. ID is client-generated (a
// UUID string) so that a retried Write is idempotent: a second Write with a
// known ID stores nothing and returns the row already stored.
type Record struct {
	ID             string
	Time           time.Time
	Kind           Kind
	Actor          string // control-plane events: the Kubernetes username; empty for decisions
	AgentName      string
	AgentNamespace string
	AgentUID       string
	Org            string
	Action         string
	Context        map[string]any // request context; Write masks secrets and bounds it
	Outcome        string         // OutcomeAllow | OutcomeDeny
	Reason         string         // stable reason code, e.g. OWN_AIORG, POLICY_DENY
	Message        string
	Anchor         string // accountability anchor (a human username)
	SkillVersionID string
	SkillDigest    string
	Policies       []PolicyMatch
	SkillRules     []string // skill patterns that matched, e.g. "forbidden:deploy:production"
	Replica        string   // gate replica / writer identity
	RequestID      string
}

// Row is a stored Record plus its chain fields. Hash covers the Record,
// Stream and Seq, chained through PrevHash; CommittedAt is the database's
// clock and is not hashed. Rows read back (List) carry it; the Row a Write
// returns doesn't: the batch's one statement doesn't read it back.
type Row struct {
	Record
	Stream      string
	Seq         int64
	PrevHash    string
	Hash        string
	CommittedAt time.Time
}

// Outcomes of every row.
const (
	OutcomeAllow = "ALLOW"
	OutcomeDeny  = "DENY"
)

// GenesisHash is the prev_hash of the first row of every stream.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

const (
	maxContextBytes = 16 << 10
	maxContextDepth = 4
	// Truncated replaces context parts beyond the depth or size bound.
	Truncated = "…truncated"
	// Masked replaces the value of every context key that looks secret.
	Masked = "***"
)

// ErrInvalid wraps a Record that cannot be stored as given.
var ErrInvalid = errors.New("chron: invalid record")

// Secrets hide behind key names; their values must never reach the audit
// store, whose readers are not the secrets' owners.
var sensitiveKeyParts = []string{"token", "password", "passwd", "secret", "key", "credential", "authorization", "cookie"}

func sensitiveKey(k string) bool {
	k = strings.ToLower(k)
	for _, p := range sensitiveKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// prepared is a Record normalized to exactly what will be stored, with the
// canonical JSON of its content computed in the caller's goroutine so the
// single writer goroutine only appends seq and hashes.
type prepared struct {
	rec                         Record
	ctxJSON, polJSON, rulesJSON []byte // canonical JSON, stored as is
	body                        []byte // canonical content without stream and seq (see contentBody)
}

// prepare validates and normalizes r: text made valid UTF-8 without NUL
// (PostgreSQL refuses both, and one bad row must not sink its whole batch),
// time in UTC microseconds (PostgreSQL's precision), context masked and
// bounded. The result is what is stored and what is hashed.
func prepare(r *Record) (prepared, error) {
	rec := *r
	if rec.ID == "" {
		rec.ID = NewID()
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = normTime(rec.Time)
	if y := rec.Time.Year(); y < 1 || y > 9999 {
		return prepared{}, fmt.Errorf("%w: time %s out of range", ErrInvalid, rec.Time)
	}
	rec.Kind = Kind(cleanText(string(rec.Kind)))
	for _, s := range []*string{&rec.ID, &rec.Actor, &rec.AgentName, &rec.AgentNamespace, &rec.AgentUID,
		&rec.Org, &rec.Action, &rec.Outcome, &rec.Reason, &rec.Message, &rec.Anchor, &rec.SkillVersionID,
		&rec.SkillDigest, &rec.Replica, &rec.RequestID} {
		*s = cleanText(*s)
	}
	if rec.Kind == "" {
		return prepared{}, fmt.Errorf("%w: kind is empty", ErrInvalid)
	}
	if rec.Outcome != OutcomeAllow && rec.Outcome != OutcomeDeny {
		return prepared{}, fmt.Errorf("%w: outcome %q is neither %s nor %s", ErrInvalid, rec.Outcome, OutcomeAllow, OutcomeDeny)
	}
	if len(rec.Policies) == 0 {
		rec.Policies = nil
	} else {
		ps := make([]PolicyMatch, len(rec.Policies))
		for i, p := range rec.Policies {
			ps[i] = PolicyMatch{Name: cleanText(p.Name), Version: p.Version, Rule: cleanText(p.Rule), Effect: cleanText(p.Effect)}
		}
		rec.Policies = ps
	}
	if len(rec.SkillRules) == 0 {
		rec.SkillRules = nil
	} else {
		rs := make([]string, len(rec.SkillRules))
		for i, s := range rec.SkillRules {
			rs[i] = cleanText(s)
		}
		rec.SkillRules = rs
	}
	ctx, ctxJSON, err := boundContext(rec.Context)
	if err != nil {
		return prepared{}, err
	}
	rec.Context = ctx
	polJSON, err := policiesJSON(rec.Policies)
	if err != nil {
		return prepared{}, fmt.Errorf("%w: policies: %v", ErrInvalid, err)
	}
	rulesJSON, err := json.Marshal(rulesOrEmpty(rec.SkillRules)) // clean strings: already canonical
	if err != nil {
		return prepared{}, fmt.Errorf("%w: skill rules: %v", ErrInvalid, err)
	}
	body, err := contentBody(&rec, ctxJSON, polJSON, rulesJSON)
	if err != nil {
		return prepared{}, err
	}
	return prepared{rec: rec, ctxJSON: ctxJSON, polJSON: polJSON, rulesJSON: rulesJSON, body: body}, nil
}

// policiesJSON is canonJSON of clean policy matches, built without the
// round trip: the generic tree canonJSON would decode (version as a
// float64, keys sorted by encoding/json), encoded once.
func policiesJSON(ps []PolicyMatch) ([]byte, error) {
	t := make([]any, len(ps))
	for i, p := range ps {
		t[i] = map[string]any{"name": p.Name, "version": float64(p.Version), "rule": p.Rule, "effect": p.Effect}
	}
	return json.Marshal(t)
}

func rulesOrEmpty(r []string) []string {
	if r == nil {
		return []string{}
	}
	return r
}

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func cleanText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}

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

// contentBody encodes everything of a row but stream and seq. The JSON
// arguments must already be canonical (canonJSON / canonFromJSON).
func contentBody(r *Record, ctxJSON, polJSON, rulesJSON []byte) ([]byte, error) {
	b, err := json.Marshal(content{
		ID: r.ID, Time: r.Time.UTC().Format(time.RFC3339Nano), Kind: string(r.Kind), Actor: r.Actor,
		AgentName: r.AgentName, AgentNamespace: r.AgentNamespace, AgentUID: r.AgentUID, Org: r.Org,
		Action: r.Action, Context: ctxJSON, Outcome: r.Outcome, Reason: r.Reason, Message: r.Message,
		Anchor: r.Anchor, SkillVersionID: r.SkillVersionID, SkillDigest: r.SkillDigest,
		Policies: polJSON, SkillRules: rulesJSON, Replica: r.Replica, RequestID: r.RequestID,
	})
	if err != nil {
		return nil, fmt.Errorf("chron: encoding row content: %w", err)
	}
	return b, nil
}

// streamPrefix starts the hashed bytes of every row of a stream:
// {"v":1,"stream":"…","seq": — the seq and the content body follow.
func streamPrefix(stream string) []byte {
	s, _ := json.Marshal(stream) // a string always encodes
	return append(append([]byte(`{"v":1,"stream":`), s...), `,"seq":`...)
}

// chainHash is hex(sha256(prevHash || {"v":1,"stream":S,"seq":N,<body fields>})).
// buf is scratch space reused across calls.
func chainHash(buf []byte, prefix []byte, prevHash string, seq int64, body []byte) (string, []byte) {
	buf = append(buf[:0], prevHash...)
	buf = append(buf, prefix...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, ',')
	buf = append(buf, body[1:]...) // body is a JSON object: drop its '{'
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), buf
}

// canonJSON encodes v the way it reads back from jsonb: through a generic
// decode (numbers become float64, maps get sorted keys) and re-encode. jsonb
// keeps the value of every number Go writes (it is exact decimal), so the
// stored column decodes to the same tree and re-encodes to the same bytes.
func canonJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return canonFromJSON(b)
}

// canonFromJSON is canonJSON for JSON text, e.g. a jsonb column read back.
func canonFromJSON(b []byte) ([]byte, error) {
	var t any
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return json.Marshal(fixTree(t))
}

// fixTree removes what jsonb would change or refuse: -0 (jsonb stores 0) and
// NUL in strings (jsonb rejects \u0000).
func fixTree(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if !needsKeyFix(x) {
			for k, e := range x {
				x[k] = fixTree(e)
			}
			return x
		}
		// Sorted so that colliding keys resolve the same way every time.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := make(map[string]any, len(x))
		for _, k := range keys {
			nk := cleanText(k)
			if _, dup := m[nk]; !dup {
				m[nk] = fixTree(x[k])
			}
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = fixTree(e)
		}
		return x
	case string:
		return cleanText(x)
	case float64:
		if x == 0 && math.Signbit(x) {
			return float64(0)
		}
		return x
	default:
		return v
	}
}

func needsKeyFix(m map[string]any) bool {
	for k := range m {
		if strings.IndexByte(k, 0) >= 0 {
			return true
		}
	}
	return false
}

// boundContext masks secrets, caps depth and size, and returns the stored
// tree with its canonical JSON. An empty context is stored as {} and
// returned as nil.
func boundContext(c map[string]any) (map[string]any, []byte, error) {
	if len(c) == 0 {
		return nil, []byte("{}"), nil
	}
	// Work on a copy: the caller's map is not ours to mask.
	tree, ok := jsonCopy(c)
	t, _ := tree.(map[string]any)
	if !ok { // other Go types: a round trip converts them as encoding/json does
		b, err := json.Marshal(c)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: context is not JSON: %v", ErrInvalid, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, fmt.Errorf("%w: context is not a JSON object: %v", ErrInvalid, err)
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
		t = shrink(t)
		if out, err = json.Marshal(t); err != nil {
			return nil, nil, err
		}
	}
	return t, out, nil
}

// jsonCopy deep-copies a tree that is already what encoding/json decodes
// to, as a marshal round trip would but without encoding. It declines (ok
// false) anything else, including strings that are not valid UTF-8, which
// encoding/json repairs its own way.
func jsonCopy(v any) (any, bool) { return jsonCopyDepth(v, 0) }

func jsonCopyDepth(v any, depth int) (any, bool) {
	if depth > 64 { // deep or cyclic: encoding/json decides
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
			return nil, true // encodes as null, like a nil interface
		}
		m := make(map[string]any, len(x))
		for k, e := range x {
			c, ok := jsonCopyDepth(e, depth+1)
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
			c, ok := jsonCopyDepth(e, depth+1)
			if !ok {
				return nil, false
			}
			l[i] = c
		}
		return l, true
	}
	return nil, false
}

// bound masks sensitive keys at every depth and replaces containers nested
// deeper than maxContextDepth (the context object itself is depth 1).
func bound(v any, depth int) any {
	switch x := v.(type) {
	case map[string]any:
		if depth > maxContextDepth {
			return Truncated
		}
		for k, e := range x {
			if sensitiveKey(k) {
				x[k] = Masked
			} else {
				x[k] = bound(e, depth+1)
			}
		}
		return x
	case []any:
		if depth > maxContextDepth {
			return Truncated
		}
		for i, e := range x {
			x[i] = bound(e, depth+1)
		}
		return x
	default:
		return v
	}
}

// shrink keeps top-level entries in key order while they fit and replaces
// the values of the rest, so that the largest parts go first only when they
// come first; if even the markers do not fit, the whole context is replaced.
func shrink(t map[string]any) map[string]any {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	marker, _ := json.Marshal(Truncated)
	size := 2 // {}
	out := make(map[string]any, len(t))
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(t[k])
		n := len(kb) + 1 + len(vb) + 1 // "k":v,
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

// NewID returns a record ID: a version 7 UUID, which starts with the time.
// IDs arriving in time order keep inserts into the primary-key index at
// its right edge, where they touch few pages, instead of all over it.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }
