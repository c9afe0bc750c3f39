// Package token makes and reads agent tokens. A token is
// "clm_<id>_<secret>": the id (16 hex digits) is public and names the token
// in logs and status; the secret is 256 random bits. Only the token's
// SHA-256 hash is ever stored outside the agent's Secret.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

const (
	hashPrefix = "sha256:"
	prefix     = "clm_"
	idLen      = 16 // hex digits
	secretLen  = 43 // base64url of 32 bytes, unpadded
	// Len is the length of every token.
	Len = len(prefix) + idLen + 1 + secretLen
)

// New returns a fresh token, its id and its hash.
func New() (tok, id, hash string) {
	var idb [8]byte
	var sec [32]byte
	// crypto/rand.Read never returns an error (Go 1.24+): it crashes the
	// program rather than hand out a weak token.
	_, _ = rand.Read(idb[:])
	_, _ = rand.Read(sec[:])
	id = hex.EncodeToString(idb[:])
	tok = prefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec[:])
	return tok, id, Hash(tok)
}

// Hash returns "sha256:<hex>" of the token.
func Hash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// ID returns the id part of a well-formed token.
func ID(tok string) (string, bool) {
	if len(tok) != Len || !strings.HasPrefix(tok, prefix) || tok[len(prefix)+idLen] != '_' {
		return "", false
	}
	id := tok[len(prefix) : len(prefix)+idLen]
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return id, true
}

// Matches reports, in constant time, whether tok hashes to hash. It is on
// every request's path, so it encodes into a stack buffer.
func Matches(tok, hash string) bool {
	var enc [len(hashPrefix) + 2*sha256.Size]byte
	sum := sha256.Sum256([]byte(tok))
	copy(enc[:], hashPrefix)
	hex.Encode(enc[len(hashPrefix):], sum[:])
	return subtle.ConstantTimeCompare(enc[:], []byte(hash)) == 1
}
