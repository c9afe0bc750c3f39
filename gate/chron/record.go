// Package chron is CLAIIM's audit log: an append-only, hash-chained table in
// PostgreSQL. Every gate decision and every control-plane event is one row.
//
// Four layers keep it honest. A trigger refuses UPDATE, DELETE and TRUNCATE
// for everyone; the writer roles hold only SELECT and INSERT, each on its own
// streams (roles.go);
// every row carries an HMAC of its predecessor's hash and its content under
// a chain key the database never sees (format v2; v1 rows, from before,
// are unkeyed SHA-256), so Verify finds rows edited, deleted, reordered or
// rechained by someone who switched the trigger off; and each stream's
// head is signed and published outside the database (checkpoint.go), so a
// cut tail or a removed stream is found too (VerifyWith says what remains).
//
// Writer batches concurrent records into one transaction (group commit) and
// answers each caller only once its row has committed.
package chron

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// PolicyMatch is one policy rule that matched a decision.
type PolicyMatch struct {
	Name    string `json:"name"`
	Version int64  `json:"version"` // the Policy's metadata.generation
	Rule    string `json:"rule"`
	Effect  string `json:"effect"` // "Allow" | "Deny"
	// Enforcement is "Audit" for a rule of an Audit policy that would have
	// denied but decided nothing; empty (and absent from the row) for a
	// rule that decides, so rows without audit matches hash as before.
	Enforcement string `json:"enforcement,omitempty"`
}

// Record is one Chron row as the caller fills it. ID is client-generated (a
// UUID string) so that a retried Write is idempotent: a second Write with a
// known ID and the same identity (sameIdentity) stores nothing and returns
// the row already stored; with other content it fails with ErrConflict,
// and the writer records a chron.conflict row.
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

	// Correction, when set, builds the row that tells Chron this record's
	// caller was not told it was stored: its wait ended first, or the
	// commit's outcome was unknown. The writer stores it only if the record
	// is stored (Writer.Write says how). It is not part of the row: Write
	// neither hashes nor returns it, and JSON leaves it out.
	Correction func(stored Record) Record `json:"-"`

	// Claim, when set, uses up a one-use approval with this record, in
	// the same transaction (approval.go). Not part of the row either.
	Claim *Claim `json:"-"`
}

// Row is a stored Record plus its chain fields. Hash covers the Record,
// Stream and Seq (and in format v2 KeyID), chained through PrevHash;
// CommittedAt is the database's clock and is not hashed. Rows read back (List) carry it; the Row a Write
// returns doesn't: the batch's one statement doesn't read it back.
type Row struct {
	Record
	Stream      string
	Seq         int64
	PrevHash    string
	Hash        string
	CommittedAt time.Time
	Format      int16  // FormatV1 or FormatV2
	KeyID       string // the chain key of a v2 row
}

// Outcomes of every row.
const (
	OutcomeAllow = "ALLOW"
	OutcomeDeny  = "DENY"
)

// ErrInvalid wraps a Record that cannot be stored as given.
var ErrInvalid = errors.New("chron: invalid record")

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
	rec.Correction, rec.Claim = nil, nil
	if rec.ID == "" {
		rec.ID = NewID()
	}
	// Zero means unset once truncated, so a stored row prepares again to
	// itself (a time within the zero time's first microsecond is unset).
	if rec.Time = normTime(rec.Time); rec.Time.IsZero() {
		rec.Time = normTime(time.Now())
	}
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
			ps[i] = PolicyMatch{Name: cleanText(p.Name), Version: p.Version, Rule: cleanText(p.Rule), Effect: cleanText(p.Effect),
				Enforcement: cleanText(p.Enforcement)}
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
	e := getEncoder()
	defer putEncoder(e)
	ctxAt := len(e.buf)
	ctx, err := e.boundContext(rec.Context)
	if err != nil {
		return prepared{}, err
	}
	rec.Context = ctx
	// The JSON columns, then the body that embeds them, all in e.buf; the
	// body is copied out once and the columns are slices of that copy.
	pol := len(e.buf)
	e.policies(rec.Policies)
	rules := len(e.buf)
	e.strings(rec.SkillRules) // clean strings: already canonical
	start := len(e.buf)
	at, err := e.content(&rec, e.buf[ctxAt:pol], e.buf[pol:rules], e.buf[rules:start])
	if err != nil {
		return prepared{}, fmt.Errorf("chron: encoding row content: %w", err)
	}
	body := slices.Clone(e.buf[start:])
	col := func(s [2]int) []byte { return body[s[0]-start : s[1]-start : s[1]-start] }
	return prepared{rec: rec, ctxJSON: col(at.ctx), polJSON: col(at.pol), rulesJSON: col(at.rules), body: body}, nil
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

// NewID returns a record ID: a version 7 UUID, which starts with the time.
// IDs arriving in time order keep inserts into the primary-key index at
// its right edge, where they touch few pages, instead of all over it.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }
