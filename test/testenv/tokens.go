package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TokenFile gives each user a random bearer token through the apiserver's
// static token authenticator (--token-auth-file), so people can present
// their own token, as with an OIDC id token, besides their certificate.
// It writes the file into dir and returns the tokens by user name; the
// file is read once, at the apiserver's start.
func TokenFile(env *envtest.Environment, dir string, users []User) (map[string]string, error) {
	tokens := make(map[string]string, len(users))
	var b strings.Builder
	for i, u := range users {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		tok := base64.RawURLEncoding.EncodeToString(raw)
		tokens[u.Name] = tok
		groups := u.Groups
		if len(groups) == 0 {
			groups = []string{"system:authenticated"}
		}
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&b, "%s,%s,token-user-%d,%q\n", tok, u.Name, i, strings.Join(groups, ","))
	}
	path := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	env.ControlPlane.GetAPIServer().Configure().Set("token-auth-file", path)
	return tokens, nil
}
