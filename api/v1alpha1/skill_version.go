package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Digest returns "sha256:<hex>" of the version's canonical body: its JSON
// encoding, whose field order is fixed by the Go type. A published
// version's digest never changes because the version never changes.
func (v *SkillVersion) Digest() string {
	b, err := json.Marshal(v)
	if err != nil { // a struct of strings and ints cannot fail to encode
		panic(fmt.Sprintf("encoding skill version: %v", err))
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SkillVersionID is the stable id of a published version that agents
// present to the gate: "<skill>-v<version>-<first 8 hex digits of the
// digest>". It is readable, and it changes if a skill is deleted and
// re-created with other content under the same name, so an agent never
// silently runs a rulebook other than the one it was pinned to.
func SkillVersionID(skill string, version int32, digest string) string {
	const prefix = "sha256:"
	short := digest
	if len(short) >= len(prefix)+8 {
		short = short[len(prefix) : len(prefix)+8]
	}
	return fmt.Sprintf("%s-v%d-%s", skill, version, short)
}

// VersionID is the id and digest of published version n, as the manager
// records them on agents pinned to it; ok is false when n is not published.
func (s *Skill) VersionID(n int32) (id, digest string, ok bool) {
	v := s.Version(n)
	if v == nil {
		return "", "", false
	}
	digest = v.Digest()
	return SkillVersionID(s.Name, v.Version, digest), digest, true
}

// ParseSkillVersionID splits an id made by SkillVersionID into the skill's
// name and the version number; ok is false for anything else. Skill names
// are DNS names, so the id is read from its end.
func ParseSkillVersionID(id string) (skill string, version int32, ok bool) {
	dash := strings.LastIndexByte(id, '-')
	if dash < 0 {
		return "", 0, false
	}
	rest := id[:dash]
	v := strings.LastIndex(rest, "-v")
	if v <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(rest[v+2:], 10, 32)
	if err != nil || n < 1 {
		return "", 0, false
	}
	return rest[:v], int32(n), true
}
