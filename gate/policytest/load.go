package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Suite is what the files declare.
type Suite struct {
	World World
	Tests []*Test
	// Skipped are documents of kinds claiim test does not read
	// ("file:line apiVersion kind"): a repository holds more than CLAIIM.
	Skipped []string
	// where each object was declared, for messages
	where map[string]Pos
}

// Test is a DecisionTest and where it and its cases are written.
type Test struct {
	DecisionTest
	Pos   Pos
	Cases []Pos // of each case, in order
}

// Pos is a place in a file.
type Pos struct {
	File string
	Line int // 0 when unknown
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Problem is one thing wrong with the input, where, and what to fix.
type Problem struct {
	Pos  Pos
	What string
}

// InvalidError is every problem found; nothing was run.
type InvalidError struct{ Problems []Problem }

func (e *InvalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem(s) in the input; no case was run:", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Pos, p.What)
	}
	return b.String()
}

// Stdin is the path that reads standard input: the output of
// `kustomize build` or `helm template`.
const Stdin = "-"

// Load reads every .yaml and .yml file under paths (directories
// recursively, skipping hidden ones such as .git; Stdin reads stdin),
// then checks what it read. The error is an *InvalidError listing every
// problem.
func Load(paths ...string) (*Suite, error) { return LoadFrom(os.Stdin, paths...) }

// LoadFrom is Load reading Stdin from stdin.
func LoadFrom(stdin io.Reader, paths ...string) (*Suite, error) {
	s := &Suite{where: map[string]Pos{}}
	var probs []Problem
	for _, p := range paths {
		if p == Stdin {
			probs = append(probs, s.loadReader("(stdin)", stdin)...)
			continue
		}
		files, err := yamlFiles(p)
		if err != nil {
			probs = append(probs, Problem{Pos{File: p}, err.Error()})
			continue
		}
		for _, f := range files {
			probs = append(probs, s.loadFile(f)...)
		}
	}
	if len(probs) == 0 {
		probs = s.check()
	}
	if len(probs) > 0 {
		return nil, &InvalidError{Problems: probs}
	}
	return s, nil
}

func yamlFiles(root string) ([]string, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	if !fi.IsDir() {
		return []string{root}, nil
	}
	var out []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

func (s *Suite) loadFile(file string) []Problem {
	f, err := os.Open(file)
	if err != nil {
		return []Problem{{Pos{File: file}, err.Error()}}
	}
	defer f.Close()
	return s.loadReader(file, f)
}

func (s *Suite) loadReader(file string, r io.Reader) []Problem {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return []Problem{{Pos{File: file}, err.Error()}}
	}
	if len(b) > MaxFileSize {
		return []Problem{{Pos{File: file}, fmt.Sprintf("larger than %d bytes; split it", MaxFileSize)}}
	}
	var probs []Problem
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return probs
			}
			pos := Pos{File: file}
			msg := err.Error()
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				pos.Line, _ = strconv.Atoi(m[1])
				msg = strings.TrimPrefix(msg, m[0])
			}
			return append(probs, Problem{pos, "not valid YAML: " + msg})
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			continue // an empty document, or a comment
		}
		if p := s.loadDoc(file, doc.Content[0]); p != nil {
			probs = append(probs, *p)
		}
	}
}

func (s *Suite) loadDoc(file string, n *yaml.Node) *Problem {
	pos := Pos{File: file, Line: n.Line}
	apiVersion, kind := scalar(n, "apiVersion"), scalar(n, "kind")
	group, _, _ := strings.Cut(apiVersion, "/")
	fail := func(format string, a ...any) *Problem { return &Problem{pos, fmt.Sprintf(format, a...)} }
	var err error
	switch {
	case apiVersion == APIVersion && kind == Kind:
		t := &Test{Pos: pos}
		if err = decodeStrict(n, &t.DecisionTest); err == nil {
			for _, c := range path(n, "spec", "cases").content() {
				t.Cases = append(t.Cases, Pos{File: file, Line: c.Line})
			}
			s.Tests = append(s.Tests, t)
		}
	case group == "test.claiim.io":
		return fail("%s %s is not a kind claiim test knows: write apiVersion: %s, kind: %s", apiVersion, kind, APIVersion, Kind)
	case group == claiimv1.GroupVersion.Group && apiVersion != claiimv1.GroupVersion.String():
		return fail("%s is not a version claiim test reads: write %s", apiVersion, claiimv1.GroupVersion)
	case apiVersion == claiimv1.GroupVersion.String():
		err = s.loadObject(kind, n, pos)
	default:
		s.Skipped = append(s.Skipped, fmt.Sprintf("%s %s %s", pos, apiVersion, kind))
		return nil
	}
	if err != nil {
		what := kind
		if name := path(n, "metadata", "name"); name.Node != nil && name.Value != "" {
			what += " " + name.Value
		}
		return &Problem{Pos{File: file, Line: locate(n, err)}, fmt.Sprintf("%s: %v", what, err)}
	}
	return nil
}

// loadObject decodes one of the kinds decisions read; others of the
// group (PIMRequest, ...) are skipped.
func (s *Suite) loadObject(kind string, n *yaml.Node, pos Pos) error {
	w := &s.World
	var name, ns string
	switch kind {
	case "AIOrg":
		var o claiimv1.AIOrg
		err := decodeStrict(n, &o)
		w.Orgs, name = append(w.Orgs, o), o.Name
		return s.declared(kind, "", name, pos, err)
	case "Skill":
		var o claiimv1.Skill
		err := decodeStrict(n, &o)
		w.Skills, name = append(w.Skills, o), o.Name
		return s.declared(kind, "", name, pos, err)
	case "Policy":
		var o claiimv1.Policy
		err := decodeStrict(n, &o)
		w.Policies, name = append(w.Policies, o), o.Name
		return s.declared(kind, "", name, pos, err)
	case "Agent":
		var o claiimv1.Agent
		err := decodeStrict(n, &o)
		if o.Namespace == "" {
			o.Namespace = "default" // as kubectl applies it without -n
		}
		w.Agents, name, ns = append(w.Agents, o), o.Name, o.Namespace
		return s.declared(kind, ns, name, pos, err)
	case "CrossOrgGrant":
		var o claiimv1.CrossOrgGrant
		err := decodeStrict(n, &o)
		w.Grants, name = append(w.Grants, o), o.Name
		return s.declared(kind, "", name, pos, err)
	}
	s.Skipped = append(s.Skipped, fmt.Sprintf("%s %s %s", pos, claiimv1.GroupVersion, kind))
	return nil
}

func (s *Suite) declared(kind, ns, name string, pos Pos, err error) error {
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("metadata.name is empty: name the object")
	}
	key := kind + "/" + ns + "/" + name
	if at, dup := s.where[key]; dup {
		return fmt.Errorf("%s is declared twice, here and at %s: keep one", refOf(kind, ns, name), at)
	}
	s.where[key] = pos
	return nil
}

func refOf(kind, ns, name string) string {
	if ns != "" {
		return kind + " " + ns + "/" + name
	}
	return kind + " " + name
}

// decodeStrict decodes n into out as the apiserver reads a manifest:
// through JSON, refusing fields the type does not have (a typo in a
// field name must not pass as an omitted field).
func decodeStrict(n *yaml.Node, out any) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot be read as JSON (mapping keys must be strings): %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &fieldError{path: strings.Split(te.Field, "."), msg: fmt.Sprintf("%s must be a %s, not a %s", te.Field, te.Type, te.Value)}
		}
		if f, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
			f = strings.TrimSuffix(f, `"`)
			return &fieldError{key: f, msg: fmt.Sprintf("unknown field %q: check its spelling and indentation against the kind's schema (kubectl explain)", f)}
		}
		return err
	}
	return nil
}

// fieldError names the field it is about, so locate can find its line.
type fieldError struct {
	path []string // a dotted path, or
	key  string   // a key somewhere in the document
	msg  string
}

func (e *fieldError) Error() string { return e.msg }

// locate is the line err is about: its field's, or the document's.
func locate(doc *yaml.Node, err error) int {
	var fe *fieldError
	if errors.As(err, &fe) {
		if fe.key != "" {
			if k := findKey(doc, fe.key); k != nil {
				return k.Line
			}
		} else if n := path(doc, fe.path...); n.Node != nil {
			return n.Line
		}
	}
	return doc.Line
}

// node wraps a possibly nil *yaml.Node.
type node struct{ *yaml.Node }

func (n node) content() []*yaml.Node {
	if n.Node == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// path follows mapping keys from n; through a sequence it takes the
// first element that has the next key.
func path(n *yaml.Node, keys ...string) node {
	cur := n
	for _, k := range keys {
		for cur != nil && cur.Kind == yaml.SequenceNode {
			var next *yaml.Node
			for _, e := range cur.Content {
				if value(e, k) != nil {
					next = e
					break
				}
			}
			cur = next
		}
		if cur == nil {
			return node{}
		}
		cur = value(cur, k)
	}
	return node{cur}
}

func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	if v := value(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// findKey finds a mapping key anywhere under n, depth first.
func findKey(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i]
			}
		}
	}
	for _, c := range n.Content {
		if k := findKey(c, key); k != nil {
			return k
		}
	}
	return nil
}
