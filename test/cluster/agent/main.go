// Command agent is the agent of make e2e-cluster, run as a pod: the seed's
// two actions through the gate Service, once with the agent token from its
// Secret (envFrom) and once with the pod's projected ServiceAccount token,
// both over the gate's TLS checked against CLAIIM_GATE_CA. It prints one
// JSON line per call; the test reads them from the pod's log.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/client"
)

// saTokenPath is where the pod spec projects a token with audience claiim-gate.
const saTokenPath = "/var/run/secrets/claiim/token"

type line struct {
	Credential string `json:"credential"`
	Action     string `json:"action"`
	Outcome    string `json:"outcome,omitempty"`
	Reason     string `json:"reason,omitempty"`
	ChronID    string `json:"chron_id,omitempty"`
	DecisionID string `json:"decision_id,omitempty"`
	Error      string `json:"error,omitempty"`
}

func main() {
	byToken, err := client.NewFromEnv()
	if err != nil {
		fail(err)
	}
	sa, err := os.ReadFile(saTokenPath)
	if err != nil {
		fail(fmt.Errorf("no projected ServiceAccount token: %w", err))
	}
	bySA := client.New(os.Getenv("CLAIIM_GATE_URL"), strings.TrimSpace(string(sa)), os.Getenv("SKILL_VERSION_ID"))
	if bySA, err = bySA.WithCA([]byte(os.Getenv("CLAIIM_GATE_CA"))); err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, c := range []struct {
		name string
		c    *client.Client
	}{{"agent-token", byToken}, {"serviceaccount", bySA}} {
		for _, a := range []struct{ action, target string }{
			{"deploy:staging", "staging-eu-1"},
			{"deploy:production", "prod-eu-1"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			r, err := c.c.Validate(ctx, a.action, map[string]any{"target": a.target})
			cancel()
			l := line{Credential: c.name, Action: a.action}
			var d *client.Denied
			switch {
			case errors.As(err, &d) && d.Err == nil:
				l.Outcome, l.Reason, l.ChronID = api.Deny, d.Reason, d.ChronID
			case err != nil:
				l.Error = err.Error()
			default:
				l.Outcome, l.Reason, l.ChronID, l.DecisionID = r.Outcome, r.Reason, r.ChronID, r.DecisionID
			}
			_ = enc.Encode(l)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "agent:", err)
	os.Exit(1)
}
