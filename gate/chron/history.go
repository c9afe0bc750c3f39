package chron

// History (0005_history.sql): every stored generation of an AIOrg, Skill,
// Policy or Agent, recorded by the manager once it has seen the generation
// stored. Chron rows name a policy by name and generation (PolicyMatch);
// the history gives that generation's content back.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// HistoryKinds are the kinds whose generations are kept.
var HistoryKinds = []string{"AIOrg", "Skill", "Policy", "Agent"}

// Bounds of a history row's fields: Kubernetes' own (a name is at most 253
// characters) and an object's size in etcd (1.5 MiB).
const (
	maxHistoryName = 253
	maxHistorySpec = 3 << 20
	maxHistoryWho  = 1024
	// MaxHistoryRows bounds one listing of an object's generations.
	MaxHistoryRows = 1000
)

// Generation is one recorded generation of one object.
type Generation struct {
	UID        string
	Kind       string // one of HistoryKinds
	Namespace  string // Agents only
	Name       string
	Generation int64
	Spec       json.RawMessage // canonical JSON
	Digest     string          // "sha256:" + hex SHA-256 of Spec
	// ChangedBy and PIMSession come from admission's changed-by annotation,
	// only when admission's stamp covers it (Admitted); empty otherwise.
	ChangedBy  string
	PIMSession string
	Admitted   bool
	RecordedAt time.Time // the database's clock, when it was first recorded
}

// NewGeneration is generation gen of an object with the given spec: the
// spec in canonical JSON, and its digest.
func NewGeneration(kind, uid, namespace, name string, gen int64, spec any) (Generation, error) {
	b, err := canonJSON(spec)
	if err != nil {
		return Generation{}, fmt.Errorf("chron: history of %s %s: encoding its spec: %w", kind, name, err)
	}
	return Generation{UID: uid, Kind: kind, Namespace: namespace, Name: name, Generation: gen, Spec: b, Digest: SpecDigest(b)}, nil
}

// SpecDigest is the digest of a spec in canonical JSON.
func SpecDigest(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (g Generation) check() error {
	known := false
	for _, k := range HistoryKinds {
		known = known || g.Kind == k
	}
	switch {
	case !known:
		return fmt.Errorf("%w: history of kind %q is not kept (only %v)", ErrInvalid, g.Kind, HistoryKinds)
	case g.UID == "" || len(g.UID) > maxHistoryName || g.Name == "" || len(g.Name) > maxHistoryName || len(g.Namespace) > maxHistoryName:
		return fmt.Errorf("%w: history row needs a UID and a name of at most %d characters", ErrInvalid, maxHistoryName)
	case g.Generation <= 0:
		return fmt.Errorf("%w: %s %s: generation %d is not positive", ErrInvalid, g.Kind, g.Name, g.Generation)
	case len(g.Spec) == 0 || len(g.Spec) > maxHistorySpec:
		return fmt.Errorf("%w: %s %s: spec of %d bytes (at most %d)", ErrInvalid, g.Kind, g.Name, len(g.Spec), maxHistorySpec)
	case g.Digest != SpecDigest(g.Spec):
		return fmt.Errorf("%w: %s %s: digest does not match the spec", ErrInvalid, g.Kind, g.Name)
	case len(g.ChangedBy) > maxHistoryWho || len(g.PIMSession) > maxHistoryName:
		return fmt.Errorf("%w: %s %s: changed-by of %d characters (at most %d)", ErrInvalid, g.Kind, g.Name, len(g.ChangedBy), maxHistoryWho)
	}
	return nil
}

const historyColumns = "uid, generation, kind, namespace, name, spec_digest, spec, changed_by, pim_session, admitted, recorded_at"

func scanGeneration(row pgx.Row) (Generation, error) {
	var g Generation
	var spec []byte
	err := row.Scan(&g.UID, &g.Generation, &g.Kind, &g.Namespace, &g.Name, &g.Digest, &spec, &g.ChangedBy, &g.PIMSession,
		&g.Admitted, &g.RecordedAt)
	if err != nil {
		return Generation{}, err
	}
	// jsonb reorders keys and spaces: canonical again, as it was hashed.
	if g.Spec, err = canonFromJSON(spec); err != nil {
		return Generation{}, fmt.Errorf("chron: history of %s %s generation %d: %w", g.Kind, g.Name, g.Generation, err)
	}
	return g, nil
}

// RecordGeneration stores g unless its (UID, generation) is stored
// already, and returns what is stored and whether this call stored it.
// A retried reconcile, or another replica, stores nothing twice; the
// caller compares the stored digest with its own (a row of other content
// under the same key was not written by the manager that saw the object).
func RecordGeneration(ctx context.Context, pool *pgxpool.Pool, g Generation) (Generation, bool, error) {
	if err := g.check(); err != nil {
		return Generation{}, false, err
	}
	var at time.Time
	err := pool.QueryRow(ctx, `INSERT INTO chron_history (uid, generation, kind, namespace, name, spec_digest, spec, changed_by, pim_session, admitted)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (uid, generation) DO NOTHING RETURNING recorded_at`,
		g.UID, g.Generation, g.Kind, g.Namespace, g.Name, g.Digest, string(g.Spec), g.ChangedBy, g.PIMSession, g.Admitted).Scan(&at)
	if err == nil {
		g.RecordedAt = at
		return g, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Generation{}, false, fmt.Errorf("chron: recording %s %s generation %d: %w", g.Kind, g.Name, g.Generation, err)
	}
	stored, err := scanGeneration(pool.QueryRow(ctx, "SELECT "+historyColumns+" FROM chron_history WHERE uid = $1 AND generation = $2",
		g.UID, g.Generation))
	if err != nil {
		return Generation{}, false, fmt.Errorf("chron: reading %s %s generation %d: %w", g.Kind, g.Name, g.Generation, err)
	}
	return stored, false, nil
}

// RecordedBefore is the newest generation of the object uid recorded
// below gen, 0 when none is.
func RecordedBefore(ctx context.Context, pool *pgxpool.Pool, uid string, gen int64) (int64, error) {
	var prev int64
	err := pool.QueryRow(ctx, "SELECT coalesce(max(generation), 0) FROM chron_history WHERE uid = $1 AND generation < $2",
		uid, gen).Scan(&prev)
	if err != nil {
		return 0, fmt.Errorf("chron: reading the history of %s: %w", uid, err)
	}
	return prev, nil
}

// HistoryQuery selects the recorded generations of the objects of one
// kind and name (every object that had the name: a deleted and re-created
// object is another UID).
type HistoryQuery struct {
	Kind      string
	Namespace string // Agents only
	Name      string
	// Generation, when positive, selects that generation only.
	Generation int64
	// UID, when set, selects that object only.
	UID string
}

// ListHistory returns the selected generations, oldest first, at most
// MaxHistoryRows of them (the newest).
func ListHistory(ctx context.Context, pool *pgxpool.Pool, q HistoryQuery) ([]Generation, error) {
	if len(q.Name) > maxHistoryName || len(q.Namespace) > maxHistoryName || len(q.UID) > maxHistoryName {
		return nil, fmt.Errorf("%w: a name, namespace or UID has at most %d characters", ErrInvalid, maxHistoryName)
	}
	rows, err := pool.Query(ctx, `SELECT * FROM (
		SELECT `+historyColumns+` FROM chron_history
		WHERE kind = $1 AND namespace = $2 AND name = $3 AND ($4 <= 0 OR generation = $4) AND ($5 = '' OR uid = $5)
		ORDER BY recorded_at DESC, generation DESC LIMIT $6) newest
		ORDER BY recorded_at, generation`,
		q.Kind, q.Namespace, q.Name, q.Generation, q.UID, MaxHistoryRows)
	if err != nil {
		return nil, fmt.Errorf("chron: reading the history of %s %s: %w", q.Kind, q.Name, err)
	}
	defer rows.Close()
	var out []Generation
	for rows.Next() {
		g, err := scanGeneration(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chron: reading the history of %s %s: %w", q.Kind, q.Name, err)
	}
	return out, nil
}

// HistoryStore records and reads generations in one database: the
// manager's, under its writer role.
type HistoryStore struct{ Pool *pgxpool.Pool }

// RecordGeneration is RecordGeneration in s's database.
func (s HistoryStore) RecordGeneration(ctx context.Context, g Generation) (Generation, bool, error) {
	return RecordGeneration(ctx, s.Pool, g)
}

// RecordedBefore is RecordedBefore in s's database.
func (s HistoryStore) RecordedBefore(ctx context.Context, uid string, gen int64) (int64, error) {
	return RecordedBefore(ctx, s.Pool, uid, gen)
}
