package chron

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TestHashFormat pins hash format v1: a change here breaks every stored chain.
func TestHashFormat(t *testing.T) {
	r := decision(1)
	r.ID = "00000000-0000-4000-8000-000000000001"
	p, err := prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := chainHash(nil, streamPrefix("gate-0"), GenesisHash, 1, p.body)
	const want = "cdc7aaa613d1f9d1fb467f4594c214599fe80b1832788573af0ae766e1d37aac"
	if h != want {
		t.Errorf("hash format changed: got %s, want %s\ncontent: %s", h, want, p.body)
	}
}

// goldenFile holds the golden vectors of hash format v1: stored rows, the
// exact bytes hashed for each and the hash. They are written down once and
// never regenerated; a new encoding is a new format with its own file.
const goldenFile = "testdata/hash-v1.json"

type goldenVector struct {
	Name     string  `json:"name"`
	Stream   string  `json:"stream"`
	Seq      int64   `json:"seq"`
	PrevHash string  `json:"prev_hash"`
	Row      content `json:"row"` // the format under test
	Preimage string  `json:"preimage"`
	Hash     string  `json:"hash"`
}

func (v *goldenVector) record(t *testing.T) Record {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, v.Row.Time)
	if err != nil {
		t.Fatal(err)
	}
	r := v.Row
	return Record{ID: r.ID, Time: at, Kind: Kind(r.Kind), Actor: r.Actor, AgentName: r.AgentName,
		AgentNamespace: r.AgentNamespace, AgentUID: r.AgentUID, Org: r.Org, Action: r.Action, Outcome: r.Outcome,
		Reason: r.Reason, Message: r.Message, Anchor: r.Anchor, SkillVersionID: r.SkillVersionID,
		SkillDigest: r.SkillDigest, Replica: r.Replica, RequestID: r.RequestID}
}

// TestGoldenVectors computes every vector's hash of both formats both
// ways a row is hashed: as Verify does, from the stored columns (JSON
// columns in any spelling), and as Write does, from a Record through
// prepare. Both must give the vector's bytes, and the hash must be the
// SHA-256 (v1) or the HMAC-SHA256 under the file's key (v2) of those bytes.
// Other changes must keep this passing: stored chains depend on it.
func TestGoldenVectors(t *testing.T) {
	// hash-v2-audit.json: v2 rows recording Audit policy matches.
	for _, file := range []string{goldenFile, "testdata/hash-v2.json", "testdata/hash-v2-audit.json"} {
		t.Run(file, func(t *testing.T) { checkGolden(t, file) })
	}
}

func checkGolden(t *testing.T, name string) {
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		KeyHex  string `json:"key_hex"`
		KeyID   string `json:"key_id"`
		Vectors []goldenVector
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	var key *ChainKey // v1 without, v2 with
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if file.KeyHex != "" {
		secret, err := hex.DecodeString(file.KeyHex)
		if err != nil || KeyID(secret) != file.KeyID {
			t.Fatalf("key %s: id %s, want %s (%v)", file.KeyHex, KeyID(secret), file.KeyID, err)
		}
		key = &ChainKey{ID: file.KeyID, Secret: secret}
		sum = func(b []byte) string {
			m := hmac.New(sha256.New, secret)
			m.Write(b)
			return hex.EncodeToString(m.Sum(nil))
		}
	}
	for i := range file.Vectors {
		v := &file.Vectors[i]
		if i > 0 && v.Stream == file.Vectors[i-1].Stream && v.Seq == file.Vectors[i-1].Seq+1 && v.PrevHash != file.Vectors[i-1].Hash {
			t.Errorf("%s: chained after the vector before it, but prev_hash is not its hash", v.Name)
		}

		// Verify's way: rowHash over the columns as read back.
		chain := newChainer(v.Stream, key)
		raw := rawRow{Row: Row{Record: v.record(t), Stream: v.Stream, Seq: v.Seq, PrevHash: v.PrevHash},
			ctxJSON: string(v.Row.Context), polJSON: string(v.Row.Policies), rulesJSON: string(v.Row.SkillRules)}
		fromColumns, preimage, err := rowHash(nil, &chain, &raw)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if string(preimage) != v.Preimage {
			t.Errorf("%s: hashed bytes changed\ngot  %s\nwant %s", v.Name, preimage, v.Preimage)
		}
		if want := sum([]byte(v.Preimage)); v.Hash != want {
			t.Errorf("%s: the vector's hash is not the hash of its preimage (%s)", v.Name, want)
		}
		if fromColumns != v.Hash {
			t.Errorf("%s: hash from the columns %s, want %s", v.Name, fromColumns, v.Hash)
		}

		// Write's way: the same row as a caller's Record.
		r := v.record(t)
		if err := json.Unmarshal(v.Row.Context, &r.Context); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(v.Row.Policies, &r.Policies); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(v.Row.SkillRules, &r.SkillRules); err != nil {
			t.Fatal(err)
		}
		p, err := prepare(&r)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		fromRecord, written := chain.hash(nil, v.PrevHash, v.Seq, p.body)
		if string(written) != v.Preimage || fromRecord != v.Hash {
			t.Errorf("%s: Write would hash\n%s\nto %s, want %s", v.Name, written, fromRecord, v.Hash)
		}
	}
}
