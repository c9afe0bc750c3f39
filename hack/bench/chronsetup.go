package main

// Chron as production sets it up for a gate: migrated by the owner, a
// login role of its own in chron_gate_writer (row-level security binds it
// to gate/… streams), and a chain key (format v2) the gate reads from a
// directory as it reads its mounted Secret. After a gate run the owner
// verifies what it wrote with that key, as `claiim chron verify` does.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/claiim/claiim-operator/gate/chron"
)

// benchGateRole is the gate's login role. Roles are cluster-wide: every
// database of a run shares it (SetupLogins updates it and grants it the
// group role in each one).
const benchGateRole = "bench_gate"

// chronDB is one migrated database and what a gate needs to write to it.
type chronDB struct {
	owner   string // URL as the owner (migrates, counts, verifies)
	gate    string // URL as benchGateRole
	keysDir string // the gate's key set, one file per Secret key
	keys    chron.KeySet
}

// prepareChron migrates the database at ownerURL, creates the gate's login
// role and a fresh gate key set written to keysDir.
func prepareChron(ctx context.Context, ownerURL, keysDir string) (*chronDB, error) {
	pool, err := chron.OpenPool(ctx, ownerURL, chron.PoolOptions{Application: "claiim-bench"})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := chron.Migrate(ctx, pool); err != nil {
		return nil, fmt.Errorf("migrating Chron as the owner: %w", err)
	}
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	password := base64.RawURLEncoding.EncodeToString(pw[:])
	if err := chron.SetupLogins(ctx, pool, []chron.Login{{Group: chron.GateWriterRole, Name: benchGateRole, Password: password}}); err != nil {
		return nil, fmt.Errorf("creating the gate's login role: %w", err)
	}
	u, err := url.Parse(ownerURL)
	if err != nil {
		return nil, err
	}
	u.User = url.UserPassword(benchGateRole, password)
	keys, err := chron.NewKeySet(chron.ScopeGate, false)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return nil, err
	}
	for name, b := range keys.Data() {
		if err := os.WriteFile(filepath.Join(keysDir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return &chronDB{owner: ownerURL, gate: u.String(), keysDir: keysDir, keys: keys}, nil
}

// gateArgs are serve-gate's flags for this database.
func (d *chronDB) gateArgs() []string {
	return []string{"-database-url", d.gate, "-chron-keys", d.keysDir}
}

// verify checks every stream of the database with the gate's chain key,
// from where an earlier verify left off (nil: from the start): any break,
// or a row checked by its links only, fails the run.
func (d *chronDB) verify(ctx context.Context, from map[string]chron.Verified) (chron.VerifyReport, error) {
	pool, err := chron.OpenPool(ctx, d.owner, chron.PoolOptions{Application: "claiim-bench-verify"})
	if err != nil {
		return chron.VerifyReport{}, err
	}
	defer pool.Close()
	kr := chron.Keyring{}
	kr.Add(d.keys)
	rep, err := chron.VerifyWith(ctx, pool, chron.VerifyOptions{Keys: kr, From: from})
	if err != nil {
		return rep, fmt.Errorf("chron verify: %w", err)
	}
	var probs []string
	for _, p := range rep.Problems {
		probs = append(probs, p.String())
	}
	for s, h := range rep.Heads {
		if h.Format < 2 {
			probs = append(probs, fmt.Sprintf("stream %s ends in an unkeyed row (format v%d)", s, h.Format))
		}
	}
	if rep.Unkeyed > 0 {
		probs = append(probs, fmt.Sprintf("%d rows were not chained with the gate's key", rep.Unkeyed))
	}
	if len(probs) > 0 {
		return rep, errors.New("chron verify failed on what the gate wrote: " + strings.Join(probs, "; "))
	}
	fmt.Printf("  chron verify (gate key %s): %d streams, %d rows checked, no problem\n", d.keys.CurrentChain, rep.Streams, rep.Rows)
	return rep, nil
}
