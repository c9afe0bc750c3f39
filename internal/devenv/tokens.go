package devenv

import (
	"fmt"
	"os"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/claiim/claiim-operator/test/testenv"
)

// Where the seed's people's bearer tokens are saved, in the dev dir.
var tokenFiles = map[string]string{devAdmin: "token-admin", devPeer: "token-peer"}

// peopleTokens gives the seed's two people a random bearer token each,
// besides their certificates (the apiserver's static token file, read when
// it starts: call this before), to log in to the console as themselves as
// with an OIDC id token, and saves each token to its file (0600).
func peopleTokens(env *envtest.Environment, f devFlags) error {
	tokens, err := testenv.TokenFile(env, f.dir, []testenv.User{{Name: devAdmin}, {Name: devPeer}})
	if err != nil {
		return fmt.Errorf("the people's tokens: %w", err)
	}
	for user, file := range tokenFiles {
		_ = os.Remove(f.path(file)) // a fresh file gets the mode below
		if err := os.WriteFile(f.path(file), []byte(tokens[user]+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}
