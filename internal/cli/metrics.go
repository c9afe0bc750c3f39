package cli

import (
	"crypto/tls"
	"flag"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// metricsFlags are the metrics endpoint's flags, the same for the manager
// and the gate.
type metricsFlags struct {
	secure bool
}

func (m *metricsFlags) bind(fs *flag.FlagSet) {
	fs.BoolVar(&m.secure, "metrics-secure", true, "serve metrics over HTTPS to callers the apiserver authenticates (TokenReview) and authorizes "+
		"(SubjectAccessReview: get on the non-resource URL /metrics, ClusterRole claiim-metrics-reader); false serves plain HTTP to anyone who can connect")
}

// options serve /metrics on addr as kubebuilder scaffolds it: HTTPS with
// a self-signed certificate, every scrape authenticated and authorized by
// the apiserver (controller-runtime caches both answers), HTTP/2 off.
func (m *metricsFlags) options(addr string) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr}
	if m.secure {
		o.SecureServing = true
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
		// HTTP/2 stream resets (CVE-2023-44487) are not worth the exposure
		// for a scrape.
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}
