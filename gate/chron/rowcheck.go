package chron

// The check of one stream's rows in chain order, shared by Verify (rows
// read from PostgreSQL) and VerifyFile (rows read from an export file), so
// that both refuse exactly the same things with the same words.

import "fmt"

// rowChecker walks one stream's rows in seq order from head.
type rowChecker struct {
	stream string
	keys   Keyring
	// keyed says the caller holds keys of the stream's component, so a v2
	// row under an unknown key is a problem rather than one checked by its
	// links only.
	keyed  bool
	chains map[string]*chainer // by key id; "" is v1
	head   Verified
	// anchored says head is not the genesis but a row outside what is
	// read (a signed prune record, an export's anchor): the first row
	// links to it.
	anchored         bool
	buf              []byte
	checked, unkeyed int64
}

func newRowChecker(stream string, from Verified, keys Keyring, keyed bool) *rowChecker {
	c := &rowChecker{stream: stream, keys: keys, keyed: keyed, chains: map[string]*chainer{}, head: from}
	if c.head.Seq == 0 {
		c.head.Hash = GenesisHash
	}
	return c
}

// check checks the next row read and, if it is sound, makes it the head.
// It returns the problem, "" when there is none. nulls counts the row's
// NULL columns (Verify; 0 from a file).
func (c *rowChecker) check(raw *rawRow, nulls int) string {
	c.checked++
	what := c.linkProblem(raw, nulls)
	if what == "" {
		ch, keyProblem := c.chainFor(raw)
		what = keyProblem
		if what == "" {
			what = c.hashProblem(ch, raw)
		}
	}
	if what == "" {
		c.head = Verified{Seq: raw.Seq, Hash: raw.Hash, Format: raw.Format}
	}
	return what
}

// linkProblem is what is wrong with the row's place in the chain, before
// its hash is looked at.
func (c *rowChecker) linkProblem(raw *rawRow, nulls int) string {
	switch {
	case nulls > 0:
		return WhatRowChanged + ": a column is NULL"
	case raw.Seq != c.head.Seq+1 && c.head.Seq == 0:
		return fmt.Sprintf("%s: stream starts at seq %d, and no signed prune record covers seq 1 to %d (truncated, not pruned)",
			WhatRowMissing, raw.Seq, raw.Seq-1)
	case raw.Seq != c.head.Seq+1:
		return fmt.Sprintf("%s: sequence jumps from %d to %d", WhatRowMissing, c.head.Seq, raw.Seq)
	case raw.Format < c.head.Format:
		return fmt.Sprintf("%s: a format %d row after format %d rows (rechained without the key)", WhatDowngrade, raw.Format, c.head.Format)
	}
	return ""
}

// hashProblem recomputes the row's hash (with ch; nil: by its links only)
// and checks its link to the head.
func (c *rowChecker) hashProblem(ch *chainer, raw *rawRow) string {
	computed := raw.Hash
	if ch != nil {
		var err error
		if computed, c.buf, err = rowHash(c.buf, ch, raw); err != nil {
			return WhatRowChanged + ": " + err.Error()
		}
	} else {
		c.unkeyed++
	}
	switch {
	case computed != raw.Hash:
		return WhatRowChanged + ": hash does not match its contents"
	case raw.PrevHash != c.head.Hash && c.head.Seq == 0:
		return WhatOutOfOrder + ": the first row's prev_hash is not the genesis hash"
	case raw.PrevHash != c.head.Hash && c.anchored && raw.Seq == c.head.Seq+1:
		return fmt.Sprintf("%s: prev_hash is not the hash of row %d it is anchored on", WhatOutOfOrder, c.head.Seq)
	case raw.PrevHash != c.head.Hash:
		return fmt.Sprintf("%s: prev_hash does not match row %d", WhatOutOfOrder, c.head.Seq)
	}
	c.anchored = false
	return ""
}

// chainFor is the chainer of the row's format and key: nil (and no
// problem) for a v2 row whose key the caller does not hold.
func (c *rowChecker) chainFor(r *rawRow) (*chainer, string) {
	switch r.Format {
	case FormatV1:
		r.KeyID = ""
	case FormatV2:
		k, ok := c.keys[r.KeyID]
		switch {
		case !ok && c.keyed:
			return nil, fmt.Sprintf("%s: the row names chain key %q, which is not among this component's keys", WhatKey, r.KeyID)
		case !ok:
			return nil, ""
		case k.Scope != ScopeOf(c.stream):
			return nil, fmt.Sprintf("%s: the row names a %s key in a stream of another component", WhatKey, k.Scope)
		}
	default:
		return nil, fmt.Sprintf("%s: unknown hash format %d", WhatRowChanged, r.Format)
	}
	ch, ok := c.chains[r.KeyID]
	if !ok {
		var key *ChainKey
		if r.Format == FormatV2 {
			k := c.keys[r.KeyID]
			key = &k
		}
		nc := newChainer(c.stream, key)
		ch = &nc
		c.chains[r.KeyID] = ch
	}
	return ch, ""
}
