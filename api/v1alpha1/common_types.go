package v1alpha1

// Condition types shared by every kind. Ready is the summary that kstatus,
// Argo CD and `kubectl wait --for=condition=Ready` read.
const (
	ConditionReady = "Ready"
	// ConditionAdmitted says whether the object's current generation and
	// content are what admission stamped (AnnotationAdmitted): False means
	// it was changed past the webhooks, and the gate does not use it.
	ConditionAdmitted = "Admitted"
)

// Reasons shared by several kinds. Reasons are CamelCase, stable API.
const (
	ReasonReconciled  = "Reconciled"
	ReasonOrgNotFound = "OrgNotFound"
	ReasonOrgNotReady = "OrgNotReady"
	ReasonPending     = "Pending"

	// Reasons of the Admitted condition.
	ReasonAdmitted             = "Admitted"
	ReasonChangedPastAdmission = "ChangedPastAdmission"
	// ReasonAwaitingAdmission: an object from before admission stamps
	// existed, not yet stamped by the manager's one-time upgrade step.
	ReasonAwaitingAdmission = "AwaitingAdmission"
)

// Well-known annotations and labels.
const (
	// AnnotationAnchorAccepted is set on an Agent by its accountability
	// anchor to accept the assignment; its value is the anchor's username.
	AnnotationAnchorAccepted = "claiim.io/anchor-accepted"

	// AnnotationRotateToken asks for a new agent token: set it to a value
	// it has not had (a date, a ticket). Changing it needs a PIM session,
	// as any change to an agent; the old token stops working at once.
	AnnotationRotateToken = "claiim.io/rotate-token"
	// AnnotationTokenEpoch counts the agent's token changes; the
	// AnnotationTokenRotated is the last rotation request the manager
	// carried out. Only the manager writes them (admission refuses anyone
	// else, even under PIM): the gate checks the status attestation against
	// the epoch, so a status copied back from an earlier token is refused.
	AnnotationTokenEpoch   = "claiim.io/token-epoch"
	AnnotationTokenRotated = "claiim.io/token-rotated"

	// On a token Secret, the manager's signed record of what it wrote:
	// the epoch and rotation it was issued for, when, and the signature
	// over them, the agent's UID and the token's hash. A Secret without a
	// valid one was not written by the manager and is never adopted.
	AnnotationSecretTokenEpoch    = "claiim.io/token-epoch"
	AnnotationSecretTokenRotation = "claiim.io/token-rotation"
	AnnotationSecretIssuedAt      = "claiim.io/token-issued-at"
	AnnotationSecretAttestation   = "claiim.io/token-attestation"

	// AnnotationAdmitted is admission's stamp on AIOrgs, Skills, Policies,
	// Agents and CrossOrgGrants: the manager's signature over the object's
	// identity, generation and content as a webhook admitted it. Only the
	// mutating webhook writes it; the gate uses an object only while its
	// stamp matches it (package gate/attest, docs/security.md).
	AnnotationAdmitted = "claiim.io/admitted"
	// AdmitExisting is the value the manager writes into AnnotationAdmitted
	// of an object that has no stamp yet, once, at upgrade: the mutating
	// webhook replaces it with a stamp only for the manager, only then.
	AdmitExisting = "admit-existing"
	// AnnotationChangedBy says who made the spec change that gave an
	// AIOrg, Skill, Policy or Agent its current generation, and under
	// which PIM session (ChangedBy, as JSON). The mutating webhook writes
	// it from the authenticated request, whatever the body says, and its
	// stamp covers it; the manager keeps it in Chron's history.
	AnnotationChangedBy = "claiim.io/changed-by"

	// LabelAgentToken marks the Secrets that hold agent tokens, so the
	// manager caches only those and no other Secret.
	LabelAgentToken = "claiim.io/agent-token"
	// LabelAgentName names the Agent a token Secret belongs to.
	LabelAgentName = "claiim.io/agent"
)

// Keys of an Agent's token Secret; a pod's envFrom yields the environment
// the seed's client reads.
const (
	SecretKeyAgentToken     = "AGENT_TOKEN"
	SecretKeySkillVersionID = "SKILL_VERSION_ID"
	SecretKeyGateURL        = "CLAIIM_GATE_URL"
	// SecretKeyGateCA is the PEM bundle of the CAs the gate's TLS
	// certificate is issued under, present when the gate serves TLS.
	SecretKeyGateCA = "CLAIIM_GATE_CA"
)

// OrgName is the name of an AIOrg object.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
type OrgName string

// ActionPattern names actions an agent may take, as colon-separated
// segments (`resource:verb`, e.g. `deploy:staging`). A whole segment `*`
// matches exactly one segment; a `*` at the very end matches any rest
// (`deploy:*`, `deploy:stag*`, or `*` alone for every action). Patterns
// are matched segment by segment, never compiled as regular expressions.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^((\*|[a-z0-9][a-z0-9._/-]*):)*(\*|[a-z0-9][a-z0-9._/-]*\*?)$`
type ActionPattern string

// Username is a Kubernetes username as the apiserver authenticates it
// (a human's, e.g. admin@claiim.io, or a ServiceAccount's).
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
type Username string
