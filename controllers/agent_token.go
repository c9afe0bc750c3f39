package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/token"
)

// The token's truth is the Secret the manager signed, never the status:
// status is a projection of it that the manager signs for the gate. A
// Secret the manager did not sign for this agent, at its current token
// epoch, is never adopted and never written into.

// TokenSecretName is the Secret that holds an agent's token.
func TokenSecretName(agent string) string {
	const suffix = "-claiim-token"
	if len(agent)+len(suffix) <= 253 {
		return agent + suffix
	}
	sum := sha256.Sum256([]byte(agent))
	return agent[:200] + "-" + hex.EncodeToString(sum[:4]) + suffix
}

// tokenOutcome is what the token step decided, for the TokenIssued
// condition and Chron.
type tokenOutcome struct {
	ok          bool
	reason, msg string
	// refused names the Secret version that was refused ("uid/rv"), so
	// the refusal is recorded once per version.
	refused string
	// upgraded says the token replaced one an earlier, non-signing
	// manager issued (legacyToken); msg then says so.
	upgraded bool
}

// reasonTokenRotatedOnUpgrade is the Warning event of an upgrade's rotation.
const reasonTokenRotatedOnUpgrade = "TokenRotatedOnUpgrade"

// secretRecord is a token Secret the manager signed, read back.
type secretRecord struct {
	tok, id  string
	epoch    int64
	rotation string
	issuedAt metav1.Time
}

// ensureToken keeps the agent's token: issued once, replaced only on a
// rotation request, revoked when its Secret is deleted. trusted says the
// status verified, so its token id may be quoted.
func (r *AgentReconciler) ensureToken(ctx context.Context, a *claiimv1.Agent, trusted bool, now metav1.Time) (tokenOutcome, error) {
	name := TokenSecretName(a.Name)
	ref := fmt.Sprintf("%s/%s", a.Namespace, name)
	sec, err := r.tokenSecret(ctx, a.Namespace, name)
	if err != nil {
		return tokenOutcome{}, err
	}
	epoch, err := strconv.ParseInt(orZero(a.Annotations[claiimv1.AnnotationTokenEpoch]), 10, 64)
	if err != nil || epoch < 0 {
		a.Status.Token = revokedToken(a, trusted, name, now)
		return tokenOutcome{reason: claiimv1.ReasonTokenSecretConflict, msg: fmt.Sprintf(
			"annotation %s is not a count; only the manager writes it, so the token is refused. Restore it or re-provision the agent", claiimv1.AnnotationTokenEpoch)}, nil
	}
	want := a.Annotations[claiimv1.AnnotationRotateToken]
	rotate := want != "" && want != a.Annotations[claiimv1.AnnotationTokenRotated]
	rotateHint := fmt.Sprintf("kubectl annotate agent -n %s %s --overwrite %s=<a new value> (under PIM)", a.Namespace, a.Name, claiimv1.AnnotationRotateToken)

	var rec *secretRecord
	if sec != nil {
		if old := legacyToken(a, sec, epoch); old != "" {
			return r.replaceLegacy(ctx, a, sec, old, now)
		}
		var problem string
		if rec, problem = r.readSecret(a, sec); problem != "" {
			// Never adopted, never written into: the manager writes only
			// Secrets it created.
			if epoch == 0 {
				a.Status.Token = nil
			} else {
				a.Status.Token = revokedToken(a, trusted, name, now)
				problem += "; then request a new token: " + rotateHint
			}
			return tokenOutcome{reason: claiimv1.ReasonTokenSecretConflict, msg: problem, refused: string(sec.UID) + "/" + sec.ResourceVersion}, nil
		}
		switch {
		case rec.epoch == epoch+1:
			// The Secret was written but the epoch's bump was lost: finish it.
			if err := r.setEpoch(ctx, a, rec.epoch, rec.rotation); err != nil {
				return tokenOutcome{}, err
			}
			epoch, rotate = rec.epoch, want != "" && want != rec.rotation
		case rec.epoch == epoch, rec.epoch < epoch && rotate:
		default:
			a.Status.Token = revokedToken(a, trusted, name, now)
			return tokenOutcome{reason: claiimv1.ReasonTokenSecretConflict, refused: string(sec.UID) + "/" + sec.ResourceVersion, msg: fmt.Sprintf(
				"Secret %s holds a token of epoch %d but the agent is at epoch %d: it was put back from a copy, so its token is refused. Request a new token: %s",
				ref, rec.epoch, epoch, rotateHint)}, nil
		}
	}
	switch {
	case rotate || (sec == nil && epoch == 0):
		rotation := ""
		if rotate {
			rotation = want
		}
		return r.issue(ctx, a, sec, epoch+1, rotation, now)
	case sec == nil:
		a.Status.Token = revokedToken(a, trusted, name, now)
		return tokenOutcome{reason: claiimv1.ReasonTokenSecretMissing, msg: fmt.Sprintf(
			"Secret %s was deleted, so %s is revoked and no longer authenticates. To issue a new token: %s", ref, tokenName(a.Status.Token.ID), rotateHint)}, nil
	}
	issued := rec.issuedAt
	a.Status.Token = &claiimv1.AgentToken{ID: rec.id, Hash: token.Hash(rec.tok), SecretName: name, IssuedAt: &issued}
	if err := r.syncSecretKeys(ctx, a, sec); err != nil {
		return tokenOutcome{}, err
	}
	return tokenOutcome{ok: true, reason: claiimv1.ReasonTokenIssued, msg: fmt.Sprintf("token %s is in Secret %s", rec.id, ref)}, nil
}

// readSecret returns the Secret's record if the manager wrote it for this
// agent, or why it can't be used.
func (r *AgentReconciler) readSecret(a *claiimv1.Agent, sec *corev1.Secret) (*secretRecord, string) {
	ref := fmt.Sprintf("%s/%s", sec.Namespace, sec.Name)
	if !metav1.IsControlledBy(sec, a) {
		return nil, fmt.Sprintf("Secret %s exists and does not belong to this agent; delete or rename it so the token can be issued", ref)
	}
	ann := sec.Annotations
	if ann[claiimv1.AnnotationSecretAttestation] == "" {
		return nil, fmt.Sprintf("Secret %s carries no signature of the manager: the manager did not write it (or wrote it before it signed token Secrets), so its token is refused. Delete the Secret", ref)
	}
	tok := string(sec.Data[claiimv1.SecretKeyAgentToken])
	id, okID := token.ID(tok)
	m := attest.TokenSecret{AgentUID: string(a.UID), Namespace: sec.Namespace, Name: sec.Name, Epoch: ann[claiimv1.AnnotationSecretTokenEpoch],
		Rotation: ann[claiimv1.AnnotationSecretTokenRotation], Hash: token.Hash(tok), IssuedAt: ann[claiimv1.AnnotationSecretIssuedAt]}
	epoch, errEpoch := strconv.ParseInt(m.Epoch, 10, 64)
	issued, errTime := time.Parse(time.RFC3339, m.IssuedAt)
	if err := r.Signer.Verify(m.Message(), ann[claiimv1.AnnotationSecretAttestation]); err != nil || !okID || errEpoch != nil || errTime != nil {
		return nil, fmt.Sprintf("the token in Secret %s is not the one the manager wrote for this agent (it was changed, or the Secret was copied from elsewhere), so it is refused. Delete the Secret", ref)
	}
	return &secretRecord{tok: tok, id: id, epoch: epoch, rotation: m.Rotation, issuedAt: metav1.NewTime(issued)}, ""
}

// legacyToken returns the id of the token in sec when sec is a token
// Secret that a manager from before token Secrets were signed wrote for
// this agent, "" otherwise. Such a Secret is controlled by the agent,
// labelled as that manager labelled it, carries no signature, and holds
// the token whose id and hash that manager put in the status, which is
// unsigned; and this manager never issued a token for the agent (epoch
// 0). Anyone able to plant all of that gains nothing: the token is
// replaced, never adopted (replaceLegacy).
func legacyToken(a *claiimv1.Agent, sec *corev1.Secret, epoch int64) string {
	t := a.Status.Token
	if epoch != 0 || a.Status.Attestation != "" || t == nil || t.Hash == "" || t.RevokedAt != nil ||
		!metav1.IsControlledBy(sec, a) || sec.DeletionTimestamp != nil || len(sec.Finalizers) > 0 ||
		sec.Labels[claiimv1.LabelAgentToken] != "true" || sec.Labels[claiimv1.LabelAgentName] != a.Name ||
		sec.Annotations[claiimv1.AnnotationSecretAttestation] != "" {
		return ""
	}
	tok := string(sec.Data[claiimv1.SecretKeyAgentToken])
	if id, ok := token.ID(tok); ok && id == t.ID && token.Matches(tok, t.Hash) {
		return id
	}
	return ""
}

// replaceLegacy rotates a legacy token on upgrade: the unsigned Secret is
// deleted (that version only: a Secret changed since it was read is
// looked at again) and a signed one with a new token is created in its
// place. The old token stops working at once; the agent's workloads must
// restart to read the new one, which the Warning event, the condition
// and the token.rotated row in Chron say.
func (r *AgentReconciler) replaceLegacy(ctx context.Context, a *claiimv1.Agent, sec *corev1.Secret, old string, now metav1.Time) (tokenOutcome, error) {
	ref := fmt.Sprintf("%s/%s", sec.Namespace, sec.Name)
	ctrl.LoggerFrom(ctx).Info("replacing an unsigned token Secret from an earlier version", "secret", ref, "tokenID", old)
	if err := r.Delete(ctx, sec, client.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion}); client.IgnoreNotFound(err) != nil {
		return tokenOutcome{}, fmt.Errorf("deleting the unsigned token Secret %s: %w", ref, err)
	}
	out, err := r.issue(ctx, a, nil, 1, "", now)
	if err != nil || !out.ok {
		return out, err
	}
	out.upgraded = true
	out.msg = fmt.Sprintf("token %s replaced token %s in Secret %s on upgrade: the earlier version of the manager did not sign its token Secrets, "+
		"so the old token no longer authenticates. Restart the agent's workloads so they read the new token", a.Status.Token.ID, old, ref)
	r.Recorder.Eventf(a, nil, corev1.EventTypeWarning, reasonTokenRotatedOnUpgrade, "RotateToken", out.msg)
	return out, nil
}

// issue writes a new token into the agent's Secret (creating it, or
// replacing a token the manager wrote there), then bumps the agent's
// token epoch: the old token's status no longer verifies from then on.
// The Secret is written first, so a lost epoch bump is found and finished
// from the Secret (ensureToken).
func (r *AgentReconciler) issue(ctx context.Context, a *claiimv1.Agent, sec *corev1.Secret, epoch int64, rotation string, now metav1.Time) (tokenOutcome, error) {
	name := TokenSecretName(a.Name)
	ref := fmt.Sprintf("%s/%s", a.Namespace, name)
	tok, id, hash, err := r.newToken(ctx)
	if err != nil {
		return tokenOutcome{}, err
	}
	m := attest.TokenSecret{AgentUID: string(a.UID), Namespace: a.Namespace, Name: name, Epoch: strconv.FormatInt(epoch, 10),
		Rotation: rotation, Hash: hash, IssuedAt: now.UTC().Format(time.RFC3339)}
	ann := map[string]string{
		claiimv1.AnnotationSecretTokenEpoch: m.Epoch, claiimv1.AnnotationSecretTokenRotation: m.Rotation,
		claiimv1.AnnotationSecretIssuedAt: m.IssuedAt, claiimv1.AnnotationSecretAttestation: r.Signer.Sign(m.Message()),
	}
	keys, err := r.gateKeys(ctx)
	if err != nil {
		return tokenOutcome{}, err
	}
	data := map[string][]byte{
		claiimv1.SecretKeyAgentToken:     []byte(tok),
		claiimv1.SecretKeySkillVersionID: []byte(a.Status.SkillVersionID),
	}
	for k, v := range keys {
		data[k] = []byte(v)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("secret", ref, "tokenID", id, "epoch", epoch)
	if sec == nil {
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: a.Namespace, Annotations: ann,
				Labels: map[string]string{claiimv1.LabelAgentToken: "true", claiimv1.LabelAgentName: a.Name}},
			Type: corev1.SecretTypeOpaque,
			Data: data,
		}
		if err := controllerutil.SetControllerReference(a, sec, r.Scheme()); err != nil {
			return tokenOutcome{}, fmt.Errorf("owning token Secret: %w", err)
		}
		log.Info("issuing agent token")
		if err := r.Create(ctx, sec); err != nil {
			return tokenOutcome{}, fmt.Errorf("creating token Secret %s: %w", ref, err)
		}
	} else {
		patch := client.MergeFromWithOptions(sec.DeepCopy(), client.MergeFromWithOptimisticLock{})
		for k, v := range ann {
			metav1.SetMetaDataAnnotation(&sec.ObjectMeta, k, v)
		}
		for k, v := range data {
			sec.Data[k] = v
		}
		log.Info("rotating agent token", "rotation", rotation)
		if err := r.Patch(ctx, sec, patch); err != nil {
			return tokenOutcome{}, fmt.Errorf("writing the new token into Secret %s: %w", ref, err)
		}
	}
	if err := r.setEpoch(ctx, a, epoch, rotation); err != nil {
		return tokenOutcome{}, err
	}
	a.Status.Token = &claiimv1.AgentToken{ID: id, Hash: hash, SecretName: name, IssuedAt: &now}
	r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, claiimv1.ReasonTokenIssued, "IssueToken", "token %s issued into Secret %s", id, ref)
	return tokenOutcome{ok: true, reason: claiimv1.ReasonTokenIssued, msg: fmt.Sprintf("token %s is in Secret %s", id, ref)}, nil
}

// newToken makes a token whose id no agent holds: ids are 64 random
// bits, so this refuses a collision rather than expects one.
func (r *AgentReconciler) newToken(ctx context.Context) (tok, id, hash string, err error) {
	for range 3 {
		tok, id, hash = token.New()
		taken := &claiimv1.AgentList{}
		if err := r.List(ctx, taken, client.MatchingFields{indexTokenID: id}); err != nil {
			return "", "", "", fmt.Errorf("checking that token id %s is unique: %w", id, err)
		}
		if len(taken.Items) == 0 {
			return tok, id, hash, nil
		}
	}
	return "", "", "", fmt.Errorf("three fresh token ids in a row were already taken; refusing to issue a token")
}

// setEpoch records the token epoch and the rotation carried out on the
// agent itself. Only the manager may write these annotations.
func (r *AgentReconciler) setEpoch(ctx context.Context, a *claiimv1.Agent, epoch int64, rotation string) error {
	var rot any = rotation
	if rotation == "" {
		rot = nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		claiimv1.AnnotationTokenEpoch: strconv.FormatInt(epoch, 10), claiimv1.AnnotationTokenRotated: rot}}})
	if err != nil {
		return err
	}
	target := &claiimv1.Agent{ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Name}}
	if err := r.Patch(ctx, target, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("recording token epoch %d on the agent: %w", epoch, err)
	}
	// The stored agent carries the stamp admission made for this write:
	// without it the rest of this reconcile would check the new epoch
	// against the old stamp and find a change past admission that never
	// happened. Only while the spec is the one this reconcile read.
	if target.Generation == a.Generation {
		a.Annotations = target.Annotations
		return nil
	}
	ann := make(map[string]string, len(a.Annotations)+2)
	for k, v := range a.Annotations {
		ann[k] = v
	}
	ann[claiimv1.AnnotationTokenEpoch] = strconv.FormatInt(epoch, 10)
	delete(ann, claiimv1.AnnotationTokenRotated)
	if rotation != "" {
		ann[claiimv1.AnnotationTokenRotated] = rotation
	}
	a.Annotations = ann
	return nil
}

// syncSecretKeys keeps the non-secret keys following the agent (a
// re-pinned skill version, a moved gate, a new gate CA); the token is
// never rewritten.
func (r *AgentReconciler) syncSecretKeys(ctx context.Context, a *claiimv1.Agent, sec *corev1.Secret) error {
	want, err := r.gateKeys(ctx)
	if err != nil {
		return err
	}
	if a.Status.SkillVersionID != "" {
		want[claiimv1.SecretKeySkillVersionID] = a.Status.SkillVersionID
	}
	patch := client.MergeFrom(sec.DeepCopy())
	changed := false
	for k, v := range want {
		if string(sec.Data[k]) != v {
			sec.Data[k] = []byte(v)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := r.Patch(ctx, sec, patch); err != nil {
		return fmt.Errorf("updating token Secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	return nil
}

// revokedToken is the status of a token that no longer works. Its id is
// kept for the audit trail when the status it comes from is the
// manager's own.
func revokedToken(a *claiimv1.Agent, trusted bool, secret string, now metav1.Time) *claiimv1.AgentToken {
	t := &claiimv1.AgentToken{SecretName: secret, RevokedAt: &now}
	if old := a.Status.Token; trusted && old != nil {
		t.ID = old.ID
		if old.RevokedAt != nil {
			t.RevokedAt = old.RevokedAt
		}
	}
	return t
}

// revokeToken revokes the token for good (decommissioning): the hash is
// dropped from status (the gate can no longer match it) and the Secret is
// deleted.
func (r *AgentReconciler) revokeToken(ctx context.Context, a *claiimv1.Agent, trusted bool, now metav1.Time) (tokenOutcome, error) {
	name := TokenSecretName(a.Name)
	sec, err := r.tokenSecret(ctx, a.Namespace, name)
	if err != nil {
		return tokenOutcome{}, err
	}
	if sec != nil && metav1.IsControlledBy(sec, a) {
		if err := r.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
			return tokenOutcome{}, fmt.Errorf("deleting token Secret %s/%s: %w", a.Namespace, name, err)
		}
	}
	if a.Status.Token == nil && orZero(a.Annotations[claiimv1.AnnotationTokenEpoch]) == "0" {
		return tokenOutcome{reason: claiimv1.ReasonTokenRevoked, msg: "no token was ever issued; the agent is decommissioned"}, nil
	}
	wasLive := a.Status.Token != nil && a.Status.Token.RevokedAt == nil
	a.Status.Token = revokedToken(a, trusted, name, now)
	if wasLive {
		r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, claiimv1.ReasonTokenRevoked, "RevokeToken", "%s revoked for good", tokenName(a.Status.Token.ID))
	}
	return tokenOutcome{reason: claiimv1.ReasonTokenRevoked, msg: tokenName(a.Status.Token.ID) + " is revoked for good"}, nil
}

// tokenSecret reads the agent's token Secret, or nil if there is none.
func (r *AgentReconciler) tokenSecret(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: ns, Name: name}
	sec := &corev1.Secret{}
	err := r.Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		// The cache sees only labelled Secrets; ask the apiserver before
		// concluding the name is free.
		err = r.APIReader.Get(ctx, key, sec)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading token Secret %s/%s: %w", ns, name, err)
	}
	return sec, nil
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// tokenName names a token in messages; its id is unknown when the status
// that held it was not the manager's.
func tokenName(id string) string {
	if id == "" {
		return "the token"
	}
	return "token " + id
}
