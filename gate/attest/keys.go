package attest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sort"
)

// SecretKeyActive names, in the key Secret, the id of the signing key;
// every other entry is a key id and its 32-byte Ed25519 seed. Entries
// besides the active one are retired keys, still published so what they
// signed verifies until re-signed.
const SecretKeyActive = "active"

// maxKeys bounds the keys a Secret or ConfigMap may hold.
const maxKeys = 8

// NewKey makes a fresh signing key.
func NewKey() ed25519.PrivateKey {
	// crypto/rand never fails (Go 1.24+).
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

// SecretData is the key Secret's data for a new signing key.
func SecretData(k ed25519.PrivateKey) map[string][]byte {
	id := KeyID(k.Public().(ed25519.PublicKey))
	return map[string][]byte{SecretKeyActive: []byte(id), id: k.Seed()}
}

// SignerFromSecret reads the key Secret's data.
func SignerFromSecret(data map[string][]byte) (*Signer, error) {
	if len(data) > maxKeys+1 {
		return nil, fmt.Errorf("the key Secret holds %d entries, more than %d keys", len(data)-1, maxKeys)
	}
	active := string(data[SecretKeyActive])
	var signing ed25519.PrivateKey
	var retired []ed25519.PublicKey
	ids := make([]string, 0, len(data))
	for id := range data {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if id == SecretKeyActive {
			continue
		}
		seed := data[id]
		if len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("key %s is not a %d-byte Ed25519 seed", id, ed25519.SeedSize)
		}
		k := ed25519.NewKeyFromSeed(seed)
		if got := KeyID(k.Public().(ed25519.PublicKey)); got != id {
			return nil, fmt.Errorf("key %s is stored under the wrong id (its id is %s)", id, got)
		}
		if id == active {
			signing = k
		} else {
			retired = append(retired, k.Public().(ed25519.PublicKey))
		}
	}
	if signing == nil {
		return nil, fmt.Errorf("the key Secret's %q entry names key %q, which it does not hold", SecretKeyActive, active)
	}
	return NewSigner(signing, retired...), nil
}

// ConfigMapData publishes the public keys: key id to base64 key.
func (k PublicKeys) ConfigMapData() map[string]string {
	out := make(map[string]string, len(k))
	for id, pub := range k {
		out[id] = base64.StdEncoding.EncodeToString(pub)
	}
	return out
}

// PublicKeysFromConfigMap reads published keys; an entry that is not a
// key under its own id is an error, so a bad edit is loud.
func PublicKeysFromConfigMap(data map[string]string) (PublicKeys, error) {
	if len(data) > maxKeys {
		return nil, fmt.Errorf("%d keys published, more than %d", len(data), maxKeys)
	}
	out := make(PublicKeys, len(data))
	for id, enc := range data {
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("published key %s is not a base64 Ed25519 public key", id)
		}
		if got := KeyID(b); got != id {
			return nil, fmt.Errorf("published key %s is stored under the wrong id (its id is %s)", id, got)
		}
		out[id] = b
	}
	return out, nil
}
