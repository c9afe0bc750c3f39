package attest

import (
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Verifier checks attestations: PublicKeys (the gate, admission) and
// *Signer (the manager) both are one.
type Verifier interface {
	Verify(m Message, att string) error
}

// Agent covers what the gate trusts in an Agent's status: the phase the
// manager recorded for a generation and the token it issued. The token
// epoch comes from the agent's annotation, which only the manager may
// change (admission refuses anyone else, even under PIM) and which it
// bumps on every token change: a status copied back from before a
// rotation or a revocation no longer verifies. It also covers the
// previous skill version a re-pin leaves accepted for a while.
func Agent(a *claiimv1.Agent) Message {
	var id, hash, revoked string
	if t := a.Status.Token; t != nil {
		id, hash = t.ID, t.Hash
		if t.RevokedAt != nil {
			revoked = "revoked"
		}
	}
	fields := []string{a.Namespace, a.Name, string(a.UID), a.Annotations[claiimv1.AnnotationTokenEpoch],
		strconv.FormatInt(a.Status.ObservedGeneration, 10), string(a.Status.Phase), id, hash, revoked}
	// The previous skill version the gate accepts after a re-pin: only
	// present after one, so every status without it signs as it always did.
	if p := a.Status.PreviousSkillVersion; p != nil {
		fields = append(fields, "previous-skill-version", p.Name, strconv.FormatInt(int64(p.Version), 10), p.ID, p.Digest, unix(&p.Until))
	}
	return message("Agent", fields...)
}

// Grant covers what makes a CrossOrgGrant count: the phase the manager
// recorded (both sides approved), when it began and when it ends. Revocation is in the spec,
// which only a person under PIM changes.
func Grant(g *claiimv1.CrossOrgGrant) Message {
	return message("CrossOrgGrant", g.Name, string(g.UID), string(g.Status.Phase), unix(g.Status.ActivatedAt), unix(g.Status.ExpiresAt))
}

func unix(t *metav1.Time) string {
	if t == nil {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// PIMApproval covers an approval as admission stamped it after checking
// it (another person, with the verb approve): who asked, for whom, who
// approved, when, for how long.
func PIMApproval(p *claiimv1.PIMRequest) Message {
	a := p.Annotations
	return message("PIMApproval", p.Name, string(p.UID), string(p.Spec.Requester), string(p.Spec.Subject),
		a[claiimv1.AnnotationApprovedBy], a[claiimv1.AnnotationApprovedAt], pimDuration(p))
}

// TokenSecret is what the manager writes into an agent's token Secret.
type TokenSecret struct {
	AgentUID, Namespace, Name string // the agent's UID, the Secret's namespace and name
	Epoch                     string // the token epoch it was issued at
	Rotation                  string // the rotation request it answers ("" for the first token)
	Hash                      string // the token's hash
	IssuedAt                  string // RFC 3339
}

// Message covers the whole record: a Secret the manager did not write
// (or wrote for another agent, or at another epoch) does not verify, so
// it is never adopted.
func (t TokenSecret) Message() Message {
	return message("TokenSecret", t.AgentUID, t.Namespace, t.Name, t.Epoch, t.Rotation, t.Hash, t.IssuedAt)
}
