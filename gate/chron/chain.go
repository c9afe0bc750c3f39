package chron

// The hash chain. Every row's hash covers its predecessor's hash in the
// same stream, its stream and seq, and its content (contentBody). Two
// formats, recorded per row (column format):
//
//   - v1: SHA-256, unkeyed. Anyone who knows the format can recompute it,
//     so a database superuser can edit a row and rechain the rest.
//   - v2: HMAC-SHA256 under a chain key that PostgreSQL never sees (a
//     Kubernetes Secret only the writers read); the key's id is a column
//     and part of the hashed bytes. Without the key a rechain cannot be
//     forged; with it, Verify recomputes every row.
//
// These bytes are the format: testdata/hash-v1.json and hash-v2.json pin
// them with golden vectors, and a change to them is a new format version,
// never an edit of an old one.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
)

// Hash formats of a row.
const (
	FormatV1 int16 = 1 // SHA-256, unkeyed
	FormatV2 int16 = 2 // HMAC-SHA256 under a chain key
)

// GenesisHash is the prev_hash of the first row of every stream.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// The hashed part of a row, in hash format v1, is its content fields in a
// fixed order (encoder.content in jsonappend.go writes them; the struct
// content in jsonoracle_test.go is their definition): never reorder, add
// only with a new version. The JSON columns are embedded as their
// canonical text, so the hash never depends on how jsonb spells them.

// contentBody encodes everything of a row but stream and seq: the content
// struct as json.Marshal writes it, appended by hand (encoder.content).
// The JSON arguments must already be canonical (canonJSON / canonFromJSON).
func contentBody(r *Record, ctxJSON, polJSON, rulesJSON []byte) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	if _, err := e.content(r, ctxJSON, polJSON, rulesJSON); err != nil {
		return nil, fmt.Errorf("chron: encoding row content: %w", err)
	}
	return slices.Clone(e.buf), nil
}

// streamPrefix starts the hashed bytes of every row of a stream:
// {"v":1,"stream":"…","seq": — the seq and the content body follow.
func streamPrefix(stream string) []byte {
	s, _ := json.Marshal(stream) // a string always encodes
	return append(append([]byte(`{"v":1,"stream":`), s...), `,"seq":`...)
}

// streamPrefixV2 starts the hashed bytes of a v2 row:
// {"v":2,"key":"…","stream":"…","seq": — the seq and the content body follow.
func streamPrefixV2(stream, keyID string) []byte {
	s, _ := json.Marshal(stream)
	k, _ := json.Marshal(keyID)
	b := append([]byte(`{"v":2,"key":`), k...)
	b = append(append(b, `,"stream":`...), s...)
	return append(b, `,"seq":`...)
}

// preimage is the hashed bytes of a row, built in buf:
// prevHash || prefix N "," <body fields> "}".
func preimage(buf, prefix []byte, prevHash string, seq int64, body []byte) []byte {
	buf = append(buf[:0], prevHash...)
	buf = append(buf, prefix...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, ',')
	return append(buf, body[1:]...) // body is a JSON object: drop its '{'
}

// chainHash is hex(sha256(prevHash || {"v":1,"stream":S,"seq":N,<body fields>})).
// buf is scratch space reused across calls.
func chainHash(buf []byte, prefix []byte, prevHash string, seq int64, body []byte) (string, []byte) {
	buf = preimage(buf, prefix, prevHash, seq, body)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), buf
}

// chainer hashes the rows of one stream in one format.
type chainer struct {
	format int16
	keyID  string
	prefix []byte
	mac    hash.Hash // v2; nil for v1
}

// newChainer hashes in format v2 under key, or in v1 when key is nil.
func newChainer(stream string, key *ChainKey) chainer {
	if key == nil {
		return chainer{format: FormatV1, prefix: streamPrefix(stream)}
	}
	return chainer{format: FormatV2, keyID: key.ID, prefix: streamPrefixV2(stream, key.ID), mac: hmac.New(sha256.New, key.Secret)}
}

// hash is the row's hash in c's format: for v2
// hex(HMAC-SHA256(key, prevHash || {"v":2,"key":K,"stream":S,"seq":N,<body fields>})).
func (c *chainer) hash(buf []byte, prevHash string, seq int64, body []byte) (string, []byte) {
	if c.mac == nil {
		return chainHash(buf, c.prefix, prevHash, seq, body)
	}
	buf = preimage(buf, c.prefix, prevHash, seq, body)
	c.mac.Reset()
	c.mac.Write(buf)
	var sum [sha256.Size]byte
	return hex.EncodeToString(c.mac.Sum(sum[:0])), buf
}
