package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
)

// gen writes a fixture as files a person (or another tool) can load:
// the CRs as the gate reads them (status included, tokens only as
// hashes), OPA's policy and data (and, for the small fixture, the seed's
// rules as plain Rego with their data), and the request mix with its tokens.
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	seed := fs.Uint64("seed", 1, "fixture seed")
	sizeName := fs.String("size", "small", "fixture size: small, 1k or 10k")
	out := fs.String("out", "", "directory to write into (created)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("gen: -out DIR is required")
	}
	size, err := fixture.SizeNamed(*sizeName)
	if err != nil {
		return err
	}
	f := fixture.Generate(*seed, size)
	if err := writeFixture(f, *out); err != nil {
		return err
	}
	fmt.Printf("wrote %s fixture (seed %d) to %s: %d orgs, %d skills, %d policies, %d agents, %d grants, %d requests\n",
		size.Name, *seed, *out, len(f.Inputs.Orgs), len(f.Inputs.Skills), len(f.Inputs.Policies), len(f.Inputs.Agents), len(f.Inputs.Grants), len(f.Requests))
	return nil
}

func writeFixture(f *fixture.Fixture, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var crs bytes.Buffer
	add := func(kind string, o any) error {
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		fmt.Fprintf(&crs, "---\napiVersion: %s\nkind: %s\n%s", claiimv1.GroupVersion, kind, b)
		return nil
	}
	in := f.Inputs
	for i := range in.Orgs {
		if err := add("AIOrg", &in.Orgs[i]); err != nil {
			return err
		}
	}
	for i := range in.Skills {
		if err := add("Skill", &in.Skills[i]); err != nil {
			return err
		}
	}
	for i := range in.Policies {
		if err := add("Policy", &in.Policies[i]); err != nil {
			return err
		}
	}
	for i := range in.Agents {
		if err := add("Agent", &in.Agents[i]); err != nil {
			return err
		}
	}
	for i := range in.Grants {
		if err := add("CrossOrgGrant", &in.Grants[i]); err != nil {
			return err
		}
	}
	data, err := f.Data()
	if err != nil {
		return err
	}
	dataJSON, err := json.Marshal(data)
	if err != nil {
		return err
	}
	reqs, err := json.MarshalIndent(f.Requests, "", " ")
	if err != nil {
		return err
	}
	files := map[string][]byte{"crs.yaml": crs.Bytes(), "policy.rego": []byte(fixture.Rego),
		"data.json": dataJSON, "requests.json": reqs}
	// The seed's rules written plainly, for the fixture that has only them.
	if plain, err := f.PlainData(); err == nil {
		if files["plain-data.json"], err = json.Marshal(plain); err != nil {
			return err
		}
		files["plain.rego"] = []byte(fixture.PlainRego)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
