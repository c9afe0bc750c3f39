// Package config embeds the generated manifests the manager keeps in
// place (controllers/selfprotect.go): the CRDs and the admission webhook
// configurations, as `make manifests` writes them. The manager restores
// them from these bytes, never from what it finds in the cluster.
package config

import "embed"

// Manifests holds crd/bases/*.yaml and webhook/manifests.yaml.
//
//go:embed crd/bases/*.yaml webhook/manifests.yaml
var Manifests embed.FS
