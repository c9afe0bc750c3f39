// Package attest signs and verifies what the gate and admission trust in
// status and annotations. Anyone who may write a `*/status` subresource
// can set any value there; only the manager holds the private key, so a
// value counts only under the manager's signature. Signing is Ed25519 over
// a canonical encoding of the object's identity (kind, UID) and the trusted
// fields; every message names its kind, so one kind's signature never
// verifies as another's. No I/O here: the manager loads the key from a
// Secret, the gate and admission the public keys from a ConfigMap.
package attest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// version prefixes every attestation and every signed message, so a
// future encoding is a new version and never confused with this one.
const version = "v1"

// MaxLen bounds an attestation string (the API's MaxLength says the same).
const MaxLen = 128

// Errors a verification fails with; each says what a person can do.
var (
	ErrMissing   = errors.New("it carries no manager attestation")
	ErrMalformed = errors.New("its attestation is malformed")
	ErrNoKeys    = errors.New("no attestation keys are loaded: the manager publishes them in its ConfigMap claiim-attestation-keys; check that the manager runs and that this component may read that ConfigMap")
	ErrBad       = errors.New("its attestation does not match its content: someone other than the manager wrote it")
)

// UnknownKeyError is an attestation by a key this verifier does not hold.
type UnknownKeyError struct{ ID string }

func (e UnknownKeyError) Error() string {
	return fmt.Sprintf("it is signed with key %s, which is not among the published keys (rotated out, or not the manager's)", e.ID)
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// PublicKeys are the keys a verifier accepts, by key id.
type PublicKeys map[string]ed25519.PublicKey

// Signer signs with the active key. It holds the private key: only the
// manager has one.
type Signer struct {
	id   string
	key  ed25519.PrivateKey
	keys PublicKeys
}

// NewSigner signs with active and verifies with it and the retired keys
// (kept so objects signed before a rotation verify until re-signed).
func NewSigner(active ed25519.PrivateKey, retired ...ed25519.PublicKey) *Signer {
	pub := active.Public().(ed25519.PublicKey)
	s := &Signer{id: KeyID(pub), key: active, keys: PublicKeys{KeyID(pub): pub}}
	for _, r := range retired {
		s.keys[KeyID(r)] = r
	}
	return s
}

// KeyID is the id of the signing key.
func (s *Signer) KeyID() string { return s.id }

// Public is every key the signer's attestations may carry.
func (s *Signer) Public() PublicKeys { return s.keys }

// Sign attests m: "v1.<key id>.<signature, base64url>".
func (s *Signer) Sign(m Message) string {
	sig := ed25519.Sign(s.key, m.b)
	return version + "." + s.id + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Verify checks that att attests m. The error says why not.
func (s *Signer) Verify(m Message, att string) error { return s.keys.Verify(m, att) }

// Verify checks that att attests m under one of k.
func (k PublicKeys) Verify(m Message, att string) error {
	if att == "" {
		return ErrMissing
	}
	if len(k) == 0 {
		return ErrNoKeys
	}
	if len(att) > MaxLen {
		return ErrMalformed
	}
	v, rest, ok := strings.Cut(att, ".")
	id, enc, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || v != version {
		return ErrMalformed
	}
	pub, ok := k[id]
	if !ok {
		return UnknownKeyError{ID: id}
	}
	sig, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return ErrMalformed
	}
	if !ed25519.Verify(pub, m.b, sig) {
		return ErrBad
	}
	return nil
}

// IDs lists the key ids, sorted (for messages and logs).
func (k PublicKeys) IDs() []string {
	ids := make([]string, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Message is the canonical encoding of what an attestation covers.
type Message struct{ b []byte }

// message encodes kind and fields, each length-prefixed, so no two field
// lists encode alike.
func message(kind string, fields ...string) Message {
	n := len(version) + len(kind) + 2*binary.MaxVarintLen64
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 0, n)
	for _, f := range append([]string{"claiim-attest/" + version, kind}, fields...) {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return Message{b: b}
}

// Bytes is the encoded message (tests and golden vectors).
func (m Message) Bytes() []byte { return m.b }
