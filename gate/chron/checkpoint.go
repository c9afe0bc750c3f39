package chron

// Signed checkpoints: a stream's head (stream, seq, hash, time), signed
// with the writer's Ed25519 key and published outside PostgreSQL (on the
// stream's Kubernetes Lease). A database superuser can cut a stream's tail
// or rechain it, but cannot move a checkpoint, so Verify finds both for
// every row up to the last checkpoint. Encoding and signing live here; the
// Kubernetes side is gate/chronlease.

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Checkpoint is a stream's head at a time.
type Checkpoint struct {
	Stream string    `json:"stream"`
	Seq    int64     `json:"seq"`
	Hash   string    `json:"hash"`
	Time   time.Time `json:"time"`
}

// SignedCheckpoint is a Checkpoint with its signature. KeyID names the
// signing key (PublicKeys); Sig is standard base64.
type SignedCheckpoint struct {
	Checkpoint
	KeyID string `json:"key"`
	Sig   string `json:"sig"`
}

// checkpointDomain starts every signed message, so a checkpoint signature
// can never be taken for a signature of anything else.
const checkpointDomain = "claiim chron checkpoint v1\n"

// message is the signed bytes: the domain, then the checkpoint as JSON
// with the time in RFC 3339 UTC.
func (c Checkpoint) message() []byte {
	b, _ := json.Marshal(struct {
		Stream string `json:"stream"`
		Seq    int64  `json:"seq"`
		Hash   string `json:"hash"`
		Time   string `json:"time"`
	}{c.Stream, c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano)})
	return append([]byte(checkpointDomain), b...)
}

// Sign signs c with k, whose scope must be the stream's component.
func (c Checkpoint) Sign(k SigningKey) (SignedCheckpoint, error) {
	c.Time = c.Time.UTC()
	sig, err := signFor(k, c.Stream, "checkpoint", c.message())
	if err != nil {
		return SignedCheckpoint{}, err
	}
	return SignedCheckpoint{Checkpoint: c, KeyID: k.ID, Sig: sig}, nil
}

// Verify checks the signature with the published keys: the key must be
// known and of the stream's component (a gate key never vouches for a
// manager stream).
func (s SignedCheckpoint) Verify(keys PublicKeys) error {
	return verifyFor(keys, s.KeyID, s.Stream, s.Sig, s.message())
}

// signFor signs msg, about stream, with k, whose scope must be the
// stream's component.
func signFor(k SigningKey, stream, what string, msg []byte) (string, error) {
	if ScopeOf(stream) != k.Scope {
		return "", fmt.Errorf("chron: a %s key cannot sign a %s of stream %q", k.Scope, what, stream)
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(k.Private, msg)), nil
}

// verifyFor checks sig over msg, about stream, with the published key
// keyID, which must be of the stream's component.
func verifyFor(keys PublicKeys, keyID, stream, sig string, msg []byte) error {
	k, ok := keys[keyID]
	if !ok {
		return fmt.Errorf("signed with key %q, which is not published", keyID)
	}
	if ScopeOf(stream) != k.Scope {
		return fmt.Errorf("signed with a %s key but is of stream %q", k.Scope, stream)
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !ed25519.Verify(k.Key, msg, b) {
		return errors.New("its signature does not match the published key")
	}
	return nil
}

// maxCheckpointLen bounds an encoded checkpoint read back from the API.
const maxCheckpointLen = 2048

// Encode is the checkpoint as stored on its Lease.
func (s SignedCheckpoint) Encode() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ParseCheckpoint reads Encode's form.
func ParseCheckpoint(text string) (SignedCheckpoint, error) {
	var s SignedCheckpoint
	if len(text) > maxCheckpointLen {
		return s, fmt.Errorf("checkpoint is %d bytes, at most %d", len(text), maxCheckpointLen)
	}
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return s, fmt.Errorf("checkpoint is not JSON: %w", err)
	}
	if s.Stream == "" || s.Seq < 0 || len(s.Hash) != len(GenesisHash) {
		return s, errors.New("checkpoint lacks a stream, a seq or a hash")
	}
	return s, nil
}

// checkpointProblem compares a stream with its checkpoint: the row at the
// checkpoint's seq must exist with the checkpoint's hash. A checkpoint at
// seq 0 says nothing. The problem names the first row known bad.
func checkpointProblem(ctx context.Context, pool *pgxpool.Pool, c Checkpoint) (*Problem, error) {
	if c.Seq == 0 {
		return nil, nil
	}
	at := c.Time.UTC().Format(time.RFC3339)
	var id, hash string
	err := pool.QueryRow(ctx, "SELECT coalesce(id, ''), coalesce(hash, '') FROM chron_records WHERE stream = $1 AND seq = $2",
		c.Stream, c.Seq).Scan(&id, &hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		var head int64
		err := pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM chron_records WHERE stream = $1", c.Stream).Scan(&head)
		if err != nil {
			return nil, fmt.Errorf("chron: reading the head of stream %q: %w", c.Stream, err)
		}
		if head == 0 {
			return &Problem{Stream: c.Stream, Seq: 1, What: fmt.Sprintf(
				"%s: the stream has no rows, but its checkpoint signed at %s has seq %d", WhatStreamRemoved, at, c.Seq)}, nil
		}
		if head > c.Seq {
			return &Problem{Stream: c.Stream, Seq: c.Seq, What: fmt.Sprintf(
				"%s: seq %d, signed in the checkpoint of %s, is gone", WhatRowMissing, c.Seq, at)}, nil
		}
		return &Problem{Stream: c.Stream, Seq: head + 1, What: fmt.Sprintf(
			"%s: the stream ends at seq %d, but its checkpoint signed at %s has seq %d", WhatTailCut, head, at, c.Seq)}, nil
	case err != nil:
		return nil, fmt.Errorf("chron: reading stream %q at its checkpoint: %w", c.Stream, err)
	case hash != c.Hash:
		return &Problem{Stream: c.Stream, Seq: c.Seq, ID: id, What: fmt.Sprintf(
			"%s: the row's hash is not the one signed in the checkpoint of %s (rewritten and rechained)", WhatRechained, at)}, nil
	}
	return nil, nil
}

// How a Problem begins: stable, so that tools and runbooks can match them.
const (
	WhatRowChanged    = "row changed"
	WhatRowMissing    = "row missing"
	WhatOutOfOrder    = "rows out of order"
	WhatRechained     = "stream rewritten"
	WhatTailCut       = "tail cut"
	WhatStreamRemoved = "stream removed"
	WhatCheckpoint    = "checkpoint invalid"
	WhatKey           = "unknown key"
	WhatDowngrade     = "format downgraded"
)
