package attest

import (
	"fmt"
	"slices"
	"strconv"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// PIMApprovalEntry covers one approval admission recorded in
// claiim.io/approvals: the request (who asked, for whom, for how long, how
// many approvers it needs), who approved and when. A separate kind from
// PIMApproval, so one never verifies as the other.
func PIMApprovalEntry(p *claiimv1.PIMRequest, by claiimv1.Username, at string) Message {
	return message("PIMApprovalEntry", p.Name, string(p.UID), string(p.Spec.Requester), string(p.Spec.Subject),
		string(by), at, pimDuration(p), strconv.Itoa(p.Required()))
}

func pimDuration(p *claiimv1.PIMRequest) string {
	if p.Spec.Duration != nil {
		return p.Spec.Duration.Duration.String()
	}
	return claiimv1.DefaultPIMDuration
}

// PIMApprovers are the approvals of p that count, in order: signed by the
// manager for this request, by someone other than its requester and its
// subject, each person once (the same person approving twice, under any
// spelling SamePerson equates, counts once).
func PIMApprovers(p *claiimv1.PIMRequest, v Verifier) []claiimv1.PIMApprovalRecord {
	recs, err := p.ApprovalRecords()
	if err != nil {
		return nil
	}
	var out []claiimv1.PIMApprovalRecord
	counted := func(by claiimv1.Username) bool {
		return slices.ContainsFunc(out, func(r claiimv1.PIMApprovalRecord) bool { return claiimv1.SamePerson(r.By, by) })
	}
	for _, r := range recs {
		// Spellings of one person (case, spaces) are that person.
		if r.By == "" || claiimv1.SamePerson(r.By, p.Spec.Requester) || claiimv1.SamePerson(r.By, p.Spec.Subject) || counted(r.By) {
			continue
		}
		if v.Verify(PIMApprovalEntry(p, r.By, r.At), r.Attestation) != nil {
			continue
		}
		out = append(out, r)
	}
	return out
}

// PIMApproved says why p's approval does not count, or nil when it does:
// admission's signature over the approval that started the session
// (PIMApproval) verifies and, when p needs more than one approver, as many
// distinct people signed approvals, the one who started it among them.
// A request made before approvals were counted (no claiim.io/approvals)
// needs one approver, and its signature verifies as it always did.
func PIMApproved(p *claiimv1.PIMRequest, v Verifier) error {
	if err := v.Verify(PIMApproval(p), p.Annotations[claiimv1.AnnotationApprovalAttestation]); err != nil {
		return err
	}
	need := p.Required()
	if need <= 1 {
		return nil
	}
	got := PIMApprovers(p, v)
	last := false
	for _, r := range got {
		last = last || string(r.By) == p.Annotations[claiimv1.AnnotationApprovedBy]
	}
	if len(got) < need || !last {
		return fmt.Errorf("%w: it needs %d distinct signed approvals and holds %d", ErrBad, need, len(got))
	}
	return nil
}
