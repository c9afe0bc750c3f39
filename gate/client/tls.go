package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
)

// WithCA makes the client trust only the gate CAs in pemBundle (the
// CLAIIM_GATE_CA of the agent's token Secret): in a cluster the gate
// serves TLS under a CA the manager keeps, and a client that trusted the
// system roots instead would hand its token to anyone holding a public
// certificate for the gate's name.
func (c *Client) WithCA(pemBundle []byte) (*Client, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBundle) {
		return nil, errors.New("claiim: the gate CA bundle holds no PEM certificate (expected CLAIIM_GATE_CA from the agent's token Secret)")
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	h := *c.http
	h.Transport = t
	c.http = &h
	return c, nil
}

// NewFromEnv makes a client from the keys of the agent's token Secret
// mounted as environment variables (envFrom): CLAIIM_GATE_URL,
// AGENT_TOKEN, SKILL_VERSION_ID and, when the gate serves TLS,
// CLAIIM_GATE_CA.
func NewFromEnv() (*Client, error) {
	// The Secret's keys (api/v1alpha1 SecretKey*), spelled out so that the
	// client needs nothing of Kubernetes.
	url, tok, sv := os.Getenv("CLAIIM_GATE_URL"), os.Getenv("AGENT_TOKEN"), os.Getenv("SKILL_VERSION_ID")
	if url == "" || tok == "" || sv == "" {
		return nil, errors.New("claiim: set CLAIIM_GATE_URL, AGENT_TOKEN and SKILL_VERSION_ID (envFrom the agent's token Secret)")
	}
	c := New(url, tok, sv)
	if ca := os.Getenv("CLAIIM_GATE_CA"); ca != "" {
		return c.WithCA([]byte(ca))
	}
	return c, nil
}
