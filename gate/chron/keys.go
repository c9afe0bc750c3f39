package chron

// Key material of a Chron writer: the chain keys of format v2, the Ed25519
// keys that sign its checkpoints, and (the manager's) the key that makes
// event ids. A KeySet is what one Kubernetes Secret holds, one Secret per
// writing component, so that a gate's keys can neither chain nor sign for
// the manager's streams. Old keys stay in the set: rows and checkpoints
// name the key they were made with, and keep verifying after a rotation.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Secret data keys of a KeySet. Kubernetes mounts each as a file of the
// same name, so a Secret and a mounted directory read the same way.
const (
	keyChainPrefix    = "chain-"
	keyChainCurrent   = "chain-current"
	keySigningPrefix  = "signing-"
	keySigningCurrent = "signing-current"
	keyEventID        = "event-id"
)

// keyLen is the length of every secret: a chain key, an Ed25519 seed, the
// event-id key.
const keyLen = 32

// ChainKey is one key of the keyed chain. Scope is the component whose
// streams it may chain: "gate" keys chain gate/… streams only.
type ChainKey struct {
	ID     string
	Scope  string
	Secret []byte
}

// SigningKey signs one component's checkpoints.
type SigningKey struct {
	ID      string
	Scope   string
	Private ed25519.PrivateKey
}

// PublicKey checks one component's checkpoints.
type PublicKey struct {
	ID    string
	Scope string
	Key   ed25519.PublicKey
}

// KeyID names a key by a short digest: of the secret for a chain key, of
// the public key for a signing key (so anyone can check a published id).
func KeyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("claiim chron key id\x00"), secret...))
	return hex.EncodeToString(sum[:6])
}

// KeySet is one component's key material.
type KeySet struct {
	Scope          string // "gate" or "manager": the stream prefix it writes
	Chain          map[string]ChainKey
	CurrentChain   string
	Signing        map[string]SigningKey
	CurrentSigning string
	EventID        []byte // the manager's; nil for the gate
}

// NewKeySet makes fresh keys for scope; withEventID adds the event-id key.
func NewKeySet(scope string, withEventID bool) (KeySet, error) {
	if err := checkScope(scope); err != nil {
		return KeySet{}, err
	}
	k := KeySet{Scope: scope, Chain: map[string]ChainKey{}, Signing: map[string]SigningKey{}}
	if err := k.RotateChain(); err != nil {
		return KeySet{}, err
	}
	if err := k.RotateSigning(); err != nil {
		return KeySet{}, err
	}
	if withEventID {
		k.EventID = make([]byte, keyLen)
		if _, err := rand.Read(k.EventID); err != nil {
			return KeySet{}, err
		}
	}
	return k, nil
}

// RotateChain adds a new chain key and makes it current; the old ones stay
// so that the rows they chained keep verifying.
func (k *KeySet) RotateChain() error {
	s := make([]byte, keyLen)
	if _, err := rand.Read(s); err != nil {
		return err
	}
	id := KeyID(s)
	k.Chain[id] = ChainKey{ID: id, Scope: k.Scope, Secret: s}
	k.CurrentChain = id
	return nil
}

// RotateSigning adds a new signing key and makes it current.
func (k *KeySet) RotateSigning() error {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	id := KeyID(priv.Public().(ed25519.PublicKey))
	k.Signing[id] = SigningKey{ID: id, Scope: k.Scope, Private: priv}
	k.CurrentSigning = id
	return nil
}

// ChainKey is the key new rows are chained with.
func (k *KeySet) ChainKey() ChainKey { return k.Chain[k.CurrentChain] }

// SigningKey is the key new checkpoints are signed with.
func (k *KeySet) SigningKey() SigningKey { return k.Signing[k.CurrentSigning] }

// Publics are the public halves of every signing key, current and old.
func (k *KeySet) Publics() []PublicKey {
	out := make([]PublicKey, 0, len(k.Signing))
	for _, s := range k.Signing {
		out = append(out, PublicKey{ID: s.ID, Scope: s.Scope, Key: s.Private.Public().(ed25519.PublicKey)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Data is the KeySet as Secret data.
func (k *KeySet) Data() map[string][]byte {
	d := map[string][]byte{keyChainCurrent: []byte(k.CurrentChain), keySigningCurrent: []byte(k.CurrentSigning)}
	for id, c := range k.Chain {
		d[keyChainPrefix+id] = c.Secret
	}
	for id, s := range k.Signing {
		d[keySigningPrefix+id] = s.Private.Seed()
	}
	if k.EventID != nil {
		d[keyEventID] = k.EventID
	}
	return d
}

// maxKeys bounds the keys a set may hold (rotations are rare).
const maxKeys = 64

// ParseKeySet reads Secret data (or a mounted Secret's files). Every key is
// checked against its id, so a corrupted or swapped value is refused
// rather than chaining rows nobody can verify.
func ParseKeySet(scope string, data map[string][]byte) (KeySet, error) {
	if err := checkScope(scope); err != nil {
		return KeySet{}, err
	}
	if len(data) > 2*maxKeys+3 {
		return KeySet{}, fmt.Errorf("chron keys: %d entries, at most %d", len(data), 2*maxKeys+3)
	}
	k := KeySet{Scope: scope, Chain: map[string]ChainKey{}, Signing: map[string]SigningKey{}}
	for name, v := range data {
		switch {
		case name == keyChainCurrent:
			k.CurrentChain = strings.TrimSpace(string(v))
		case name == keySigningCurrent:
			k.CurrentSigning = strings.TrimSpace(string(v))
		case name == keyEventID:
			if len(v) != keyLen {
				return KeySet{}, fmt.Errorf("chron keys: %s is %d bytes, want %d", name, len(v), keyLen)
			}
			k.EventID = v
		case strings.HasPrefix(name, keyChainPrefix):
			id := strings.TrimPrefix(name, keyChainPrefix)
			if len(v) != keyLen || KeyID(v) != id {
				return KeySet{}, fmt.Errorf("chron keys: %s is not the key its name says (want %d bytes whose id is %s)", name, keyLen, id)
			}
			k.Chain[id] = ChainKey{ID: id, Scope: scope, Secret: v}
		case strings.HasPrefix(name, keySigningPrefix):
			id := strings.TrimPrefix(name, keySigningPrefix)
			if len(v) != ed25519.SeedSize {
				return KeySet{}, fmt.Errorf("chron keys: %s is %d bytes, want a %d-byte Ed25519 seed", name, len(v), ed25519.SeedSize)
			}
			priv := ed25519.NewKeyFromSeed(v)
			if KeyID(priv.Public().(ed25519.PublicKey)) != id {
				return KeySet{}, fmt.Errorf("chron keys: %s is not the key its name says (its public key's id is not %s)", name, id)
			}
			k.Signing[id] = SigningKey{ID: id, Scope: scope, Private: priv}
		}
	}
	if _, ok := k.Chain[k.CurrentChain]; !ok {
		return KeySet{}, fmt.Errorf("chron keys: %s names %q, which is not among the chain keys", keyChainCurrent, k.CurrentChain)
	}
	if _, ok := k.Signing[k.CurrentSigning]; !ok {
		return KeySet{}, fmt.Errorf("chron keys: %s names %q, which is not among the signing keys", keySigningCurrent, k.CurrentSigning)
	}
	return k, nil
}

func checkScope(scope string) error {
	if scope != ScopeGate && scope != ScopeManager {
		return fmt.Errorf("chron keys: scope %q is neither %q nor %q", scope, ScopeGate, ScopeManager)
	}
	return nil
}

// Scopes: the components that write Chron, and the prefixes of their
// streams ("gate/0", "manager/1").
const (
	ScopeGate    = "gate"
	ScopeManager = "manager"
)

// ScopeOf is the component a stream belongs to, "" if neither.
func ScopeOf(stream string) string {
	prefix, _, ok := strings.Cut(stream, "/")
	if !ok || (prefix != ScopeGate && prefix != ScopeManager) {
		return ""
	}
	return prefix
}

// Keyring is the chain keys a verifier holds, by id.
type Keyring map[string]ChainKey

// Add puts the chain keys of sets into the ring.
func (r Keyring) Add(sets ...KeySet) {
	for _, s := range sets {
		for id, k := range s.Chain {
			r[id] = k
		}
	}
}

// PublicKeys are the signing keys a verifier trusts, by id.
type PublicKeys map[string]PublicKey

// EncodePublic is a public key as published (ConfigMap data): its scope,
// a space, and the key in standard base64.
func EncodePublic(p PublicKey) string {
	return p.Scope + " " + base64.StdEncoding.EncodeToString(p.Key)
}

// ParsePublic reads EncodePublic's form; id must be the key's own.
func ParsePublic(id, s string) (PublicKey, error) {
	scope, b64, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || checkScope(scope) != nil {
		return PublicKey{}, fmt.Errorf("public key %s: want %q", id, "<gate|manager> <base64 Ed25519 key>")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return PublicKey{}, errors.New("public key " + id + ": not a base64 Ed25519 public key")
	}
	if KeyID(key) != id {
		return PublicKey{}, errors.New("public key " + id + ": its id is not the key's")
	}
	return PublicKey{ID: id, Scope: scope, Key: key}, nil
}
