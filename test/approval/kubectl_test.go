package approval

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/claiim/claiim-operator/internal/kubectlclaiim"
)

// kubectlClaiim runs the plugin as user, with a kubeconfig holding only
// that user's own client certificate.
func kubectlClaiim(t *testing.T, user string, args ...string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	cfg := env.ConfigOf(user)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: user, Namespace: "default"}
	kc.CurrentContext = user
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := kubectlclaiim.Execute(append([]string{"--kubeconfig", path, "--cache-dir", filepath.Join(dir, "cache")}, args...),
		genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	return out.String(), code
}

// TestKubectlClaiimApproval: an approver finds the held call with
// `kubectl claiim approval ls` and approves it; the agent's own identity
// is refused in the webhook's words.
func TestKubectlClaiimApproval(t *testing.T) {
	seed(t)
	g := NewWithT(t)
	id, _ := requested(t, map[string]any{"service": "cart", "replicas": 20.0})

	out, code := kubectlClaiim(t, opsUser, "approval", "ls", "--pending")
	g.Expect(code).To(Equal(0), out)
	g.Expect(out).To(MatchRegexp(`default\s+` + id + `\s+` + agentName + `\s+deploy:staging\s+Pending\s+0/1`))

	out, code = kubectlClaiim(t, agentSA, "approval", "approve", id, "--reason", "myself")
	g.Expect(code).NotTo(Equal(0))
	g.Expect(out).To(ContainSubstring("an agent never approves its own calls"))

	out, code = kubectlClaiim(t, opsUser, "approval", "approve", id, "--reason", "cart scale-up agreed")
	g.Expect(code).To(Equal(0), out)
	g.Expect(out).To(ContainSubstring("actionapproval.claiim.io/" + id + " approved: deploy:staging of agent default/" + agentName + " is Approved (1 of 1 approvals)"))
	waitApproved(t, id)
}
