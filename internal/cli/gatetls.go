package cli

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// gateTLS prepares api to serve TLS with the pair in certDir (tls.crt,
// tls.key: the gate's Secret as the kubelet mounts it) and returns the
// watcher that reloads the pair when the manager renews it; run it beside
// the server. The pair is read once here, so a missing or broken one stops
// the gate at start instead of failing every handshake.
func gateTLS(api *http.Server, certDir string) (*certwatcher.CertWatcher, error) {
	return servingTLS(api, certDir, "the gate's TLS certificate in %s (the Secret the manager issues, claiim-gate-tls)")
}

// servingTLS is gateTLS for any server; what names the pair in an error,
// with a %s for certDir.
func servingTLS(api *http.Server, certDir, what string) (*certwatcher.CertWatcher, error) {
	w, err := certwatcher.New(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf(what+": %w", certDir, err)
	}
	api.TLSConfig = &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12}
	return w, nil
}

// serveGate serves api on ln over TLS when it has a TLS configuration
// (servingTLS), plain HTTP otherwise (the local control plane: loopback
// only). The console serves the same way.
func serveGate(api *http.Server, ln net.Listener) error {
	if api.TLSConfig != nil {
		return api.ServeTLS(ln, "", "")
	}
	return api.Serve(ln)
}
