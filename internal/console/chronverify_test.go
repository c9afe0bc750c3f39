package console

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/chron"
)

func TestVerify(t *testing.T) {
	e := newEnv(t)
	written, _ := seedRows(t, e)
	verify := func(user string) (int, VerifyResponse, string) {
		t.Helper()
		status, body := e.get(t, user, "/api/v1/chron/verify")
		var v VerifyResponse
		if status == 200 {
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatal(err)
			}
		}
		return status, v, string(body)
	}
	if status, v, body := verify("admin"); status != 200 || !v.OK || !v.Offline || v.Rows != 30 || v.Streams != 1 ||
		v.Problems == nil || !strings.Contains(body, `"problems":[]`) {
		t.Errorf("an intact log: %d %s", status, body)
	}
	for user, want := range map[string]int{"eng": 403, "auditor": 403, "": 401, "broken": 503} {
		if status, _, body := verify(user); status != want {
			t.Errorf("verify as %q: %d %s, want %d", user, status, body, want)
		}
	}
	if status, body := e.get(t, "admin", "/api/v1/chron/verify?deep=1"); status != 400 {
		t.Errorf("verify with a parameter: %d %s", status, body)
	}

	// A superuser's edit, past the trigger: found, and the answer is still
	// 200 — the verification ran; the log is what failed it.
	if _, err := e.owner.Exec(e.ctx, `ALTER TABLE chron_records DISABLE TRIGGER ALL;
		UPDATE chron_records SET outcome = 'ALLOW' WHERE id = '`+written[4]+`';
		ALTER TABLE chron_records ENABLE TRIGGER ALL`); err != nil {
		t.Fatal(err)
	}
	status, v, body := verify("admin")
	if status != 200 || v.OK || len(v.Problems) != 1 || v.Problems[0].ID != written[4] || v.Problems[0].Seq != 5 {
		t.Errorf("a tampered log: %d %s", status, body)
	}

	// With keys and checkpoints from the hook; its own problems come first.
	e.api.VerifyOptions = func(context.Context) (chron.VerifyOptions, []chron.Problem, error) {
		return chron.VerifyOptions{}, []chron.Problem{{Stream: "gate/0", What: "its checkpoint is signed by an unknown key"}}, nil
	}
	status, v, body = verify("admin")
	if status != 200 || v.OK || v.Offline || len(v.Problems) != 1 || !strings.Contains(v.Problems[0].What, "unknown key") {
		t.Errorf("with the hook: %d %s", status, body)
	}
}
