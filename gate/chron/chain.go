package chron

// The hash chain, format v1. Every row's hash covers its predecessor's hash
// in the same stream, its stream and seq, and its content (contentBody);
// Verify recomputes it from the stored columns alone. These bytes are the
// format: testdata/hash-v1.json pins them with golden vectors, and a change
// to them is a new format version, never an edit of v1.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// GenesisHash is the prev_hash of the first row of every stream.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

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
