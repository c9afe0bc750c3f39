package fault

// The Python client (gate/python) as a second load during the rollout: it
// must see no connection error either. It reads the gate's address from a
// file the harness rewrites on every route(), as a Service would move it.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claiim/claiim-operator/test/testenv"
)

const pythonLoad = `
import asyncio, json, os, time
from claiim import CLAIIMClient, Denied

async def main():
    while not os.path.exists(os.environ["STOP_FILE"]):
        with open(os.environ["ENDPOINT_FILE"]) as f:
            url = f.read().strip()
        c = CLAIIMClient(url + "/v", os.environ["AGENT_TOKEN"], os.environ["SKILL_VERSION_ID"], timeout=5.0)
        out = {"start": time.time()}
        try:
            r = await c.validate("deploy:staging", {"target": "eu-staging-1"})
            out.update(outcome="ALLOW", reason=r.reason, decision_id=r.decision_id, chron_id=r.chron_id or "", status=200)
        except Denied as d:
            out.update(outcome="DENY" if d.status else "ERROR", reason=d.reason, status=d.status or 0,
                       error="" if d.status else str(d))
        out["end"] = time.time()
        print(json.dumps(out), flush=True)
        await asyncio.sleep(0.02)

asyncio.run(main())
`

// pyLoad is the running Python load.
type pyLoad struct {
	cmd      *exec.Cmd
	out      testenv.Output
	stopFile string
	label    string
}

// answeredBy reports whether a call was answered by the gate with that
// Chron stream: the load has followed the rollout.
func (p *pyLoad) answeredBy(stream string) error {
	if !strings.Contains(p.out.String(), `"chron_id": "`+stream+"/") {
		return fmt.Errorf("no Python call answered by %s yet", stream)
	}
	return nil
}

func (s *system) endpointFile() string { return filepath.Join(s.dir, "endpoint") }

// writeEndpoint publishes the gate's address to the Python load
// (atomically: it reads the file before every call).
func (s *system) writeEndpoint(base string) {
	tmp := s.endpointFile() + ".tmp"
	if os.WriteFile(tmp, []byte(base), 0o600) == nil {
		_ = os.Rename(tmp, s.endpointFile())
	}
}

// startPythonLoad starts the Python client asking as agent a.
func (s *system) startPythonLoad(t *testing.T, a agent) *pyLoad {
	t.Helper()
	p := &pyLoad{stopFile: filepath.Join(s.dir, "python-stop"), label: a.label}
	_ = os.Remove(p.stopFile)
	s.writeEndpoint(*s.endpoint.Load())
	p.cmd = exec.Command("python3", "-c", pythonLoad)
	p.cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(testenv.RepoRoot(), "gate", "python"),
		"STOP_FILE="+p.stopFile, "ENDPOINT_FILE="+s.endpointFile(), "AGENT_TOKEN="+a.token, "SKILL_VERSION_ID="+a.svID)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the Python load: %v", err)
	}
	return p
}

// stop ends the Python load and returns its calls.
func (p *pyLoad) stop(t *testing.T) []call {
	t.Helper()
	if err := os.WriteFile(p.stopFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("the Python load failed: %v\n%s", err, p.out.String())
	}
	var calls []call
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		var r struct {
			Start, End      float64
			Outcome, Reason string
			DecisionID      string `json:"decision_id"`
			ChronID         string `json:"chron_id"`
			Error           string `json:"error"`
			Status          int
		}
		line := sc.Text()
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("the Python load printed %q: %v", line, err)
		}
		c := call{agent: p.label, start: unixFloat(r.Start), end: unixFloat(r.End), outcome: r.Outcome, reason: r.Reason,
			status: r.Status, decisionID: r.DecisionID, err: r.Error}
		if i := strings.LastIndex(r.ChronID, "/"); i > 0 {
			c.stream = r.ChronID[:i]
		}
		calls = append(calls, c)
	}
	return calls
}

func unixFloat(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}
