package policytest

// The DecisionTest kind. It is never applied to a cluster: it lives
// beside the objects in a repository and only `claiim test` reads it.
const (
	APIVersion = "test.claiim.io/v1alpha1"
	Kind       = "DecisionTest"
)

// Bounds on what a test file may hold.
const (
	MaxCases    = 1000
	MaxFileSize = 4 << 20
	maxNameLen  = 256
)

// DecisionTest is a named set of cases.
type DecisionTest struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Metadata   Metadata         `json:"metadata"`
	Spec       DecisionTestSpec `json:"spec"`
}

// Metadata names a DecisionTest.
type Metadata struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DecisionTestSpec holds the cases.
type DecisionTestSpec struct {
	// Now is when the cases are decided (RFC 3339), for grants that
	// start and end; default: when the test runs.
	Now string `json:"now,omitempty"`
	// Cases are decided in order.
	Cases []Case `json:"cases"`
}

// Case is one request and what the gate must answer.
type Case struct {
	Name string `json:"name"`
	// Agent is "namespace/name"; a bare name is in namespace default.
	Agent string `json:"agent"`
	// SkillVersion is what the agent presents: a skill version id
	// ("deploy-bot-v1-3f2a9c1e"), the id without its digest
	// ("deploy-bot-v1"), or omitted for the version the agent is pinned
	// to. Anything else is presented as written (SKILL_VERSION_MISMATCH).
	SkillVersion string         `json:"skillVersion,omitempty"`
	Action       string         `json:"action"`
	Context      map[string]any `json:"context,omitempty"`
	Expect       Expect         `json:"expect"`
}

// Expect is the answer a case wants. Policies and Audit are compared only
// when given; an empty list wants none.
type Expect struct {
	Outcome string `json:"outcome"` // ALLOW or DENY
	Reason  string `json:"reason"`  // a reason code, e.g. OWN_AIORG
	// Policies are the enforced rules that must match, "policy/rule",
	// in any order, and no others.
	Policies *[]string `json:"policies,omitempty"`
	// Audit are the rules of Audit policies that must record a
	// would-deny, "policy/rule", and no others.
	Audit *[]string `json:"audit,omitempty"`
}
