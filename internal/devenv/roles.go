package devenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
)

// Chron's login roles in the local control plane, as the chart names them.
var devRoles = map[string]string{"gate": "claiim_gate", "manager": "claiim_manager", "reader": "claiim_reader"}

// migrateChron runs `claiim chron migrate` as the owner, as the Helm hook
// Job does: the schema, and a login role for the gate, the manager and the
// reader with fresh passwords (an existing role's is rotated). It returns
// each one's database URL; the owner's is never given to the manager or
// the gate. URLs travel in the environment, never on a command line.
func migrateChron(ctx context.Context, claiim, ownerURL string) (map[string]string, string, error) {
	u, err := url.Parse(ownerURL)
	if err != nil {
		return nil, "", fmt.Errorf("the database URL: %w", err)
	}
	urls := map[string]string{}
	env := append(os.Environ(), "DATABASE_URL="+ownerURL)
	for what, role := range devRoles {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, "", err
		}
		ru := *u
		ru.User = url.UserPassword(role, base64.RawURLEncoding.EncodeToString(b))
		urls[what] = ru.String()
		env = append(env, "CLAIIM_"+strings.ToUpper(what)+"_DATABASE_URL="+urls[what])
	}
	cmd := exec.CommandContext(ctx, claiim, "chron", "migrate")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("claiim chron migrate: %w\n%s", err, out)
	}
	return urls, string(out), nil
}
