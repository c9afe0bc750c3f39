package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/gate/attest"
	"github.com/claiim/claiim-operator/gate/chron"
	"github.com/claiim/claiim-operator/gate/whatif"
)

const whatifUsage = `Usage:
  claiim whatif -f change.yaml [--delete KIND/NAME ...] [--since 24h|TIME] [--limit N] [-o text|json]
                [--kubeconfig FILE] [--database-url URL] [--attestation-keys NS/NAME]
Replays the newest decision requests in Chron (default: the last 24h, at most
10,000) through the gate's decision function twice, over the objects in the
cluster now and with the change, and prints the requests whose answer would
change, by agent and action, and those it cannot decide.
-f takes AIOrgs, Skills, Policies, Agents and CrossOrgGrants (YAML or JSON,
several documents, "-" for stdin); each is created or, when it exists, applied
over the live object. --delete Policy/NAME, Agent/NAMESPACE/NAME, ... deletes.
The objects are read with your kubeconfig; Chron with DATABASE_URL (or
--database-url), the reader role is enough.
`

// Bounds of a change file.
const (
	maxChangeBytes = 4 << 20
	maxChangeDocs  = 100
)

// RunWhatIf runs `claiim whatif`, printing to out.
func RunWhatIf(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("whatif", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), whatifUsage); fs.PrintDefaults() }
	var files, deletes multiFlag
	fs.Var(&files, "f", "file of the changed objects (repeatable; - for stdin)")
	fs.Var(&deletes, "delete", "an object the change deletes: KIND/NAME, or Agent/NAMESPACE/NAME (repeatable)")
	since := fs.String("since", "24h", "replay requests from this long ago (e.g. 24h) or this time (RFC 3339)")
	limit := fs.Int("limit", whatif.DefaultLimit, fmt.Sprintf("replay at most the newest N requests (at most %d)", whatif.MaxLimit))
	output := fs.String("o", "text", "output: text or json")
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL of Chron (default $DATABASE_URL)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	keysRef := fs.String("attestation-keys", "claiim-system/claiim-attestation-keys", "the ConfigMap where the manager publishes its attestation keys")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case len(files) == 0 && len(deletes) == 0:
		return errors.New("no change: give -f FILE and/or --delete KIND/NAME")
	case *output != "text" && *output != "json":
		return fmt.Errorf("-o must be text or json, not %q", *output)
	case *limit <= 0 || *limit > whatif.MaxLimit:
		return fmt.Errorf("--limit must be between 1 and %d", whatif.MaxLimit)
	case *dbURL == "":
		return errors.New("no Chron database: set DATABASE_URL or --database-url")
	}
	from, err := parseTime(*since, true)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	window := "since " + from.UTC().Format(time.RFC3339)
	if _, err := time.ParseDuration(*since); err == nil {
		window = "the last " + *since
	}

	loader := clientcmd.NewDefaultClientConfigLoadingRules()
	loader.ExplicitPath = *kubeconfig
	kc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loader, &clientcmd.ConfigOverrides{})
	cfg, err := kc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := kc.Namespace()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := newScheme()
	change, err := readChange(files, deletes, ns, scheme)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	w, err := whatif.ListWorld(ctx, c)
	if err != nil {
		return fmt.Errorf("reading the cluster's objects with your kubeconfig: %w", err)
	}
	var keysNote string
	w.Keys, keysNote = attestationKeys(ctx, c, *keysRef)
	pool, err := chron.OpenPool(ctx, *dbURL, chron.PoolOptions{Application: "claiim-whatif"})
	if err != nil {
		return err
	}
	defer pool.Close()
	reqs, more, err := whatif.ReadRequests(ctx, pool, whatif.Source{Since: from, Limit: *limit, Orgs: whatif.Scope(w, change)})
	if err != nil {
		return err
	}
	stopped := ""
	if more {
		stopped = fmt.Sprintf("the cap of %d rows (--limit)", *limit)
	}
	rep, err := whatif.Replay(ctx, w, change, reqs, whatif.Options{Stopped: stopped, Window: window})
	if err != nil {
		return err
	}
	if keysNote != "" {
		rep.Notes = append(rep.Notes, keysNote)
	}
	if *output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(out)
	return nil
}

// attestationKeys reads the manager's published keys; without them the
// what-if takes statuses as they are, and says why.
func attestationKeys(ctx context.Context, c client.Reader, ref string) (attest.Verifier, string) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		return nil, "--attestation-keys is not NAMESPACE/NAME"
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cm); err != nil {
		return nil, "cannot read ConfigMap " + ref + ": " + err.Error()
	}
	keys, err := attest.PublicKeysFromConfigMap(cm.Data)
	if err != nil {
		return nil, "the keys in ConfigMap " + ref + " are unusable: " + err.Error()
	}
	return keys, ""
}

// readChange decodes the change files and the deletions.
func readChange(files, deletes []string, ns string, scheme *runtime.Scheme) (whatif.Change, error) {
	var change whatif.Change
	dec := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	for _, f := range files {
		var r io.Reader = os.Stdin
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			defer func() { _ = fh.Close() }()
			r = fh
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(io.LimitReader(r, maxChangeBytes+1)))
		for n := 0; ; n++ {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			if n >= maxChangeDocs {
				return nil, fmt.Errorf("%s: more than %d documents", f, maxChangeDocs)
			}
			obj, gvk, err := dec.Decode(doc, nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w (a what-if takes AIOrgs, Skills, Policies, Agents and CrossOrgGrants)", f, n+1, err)
			}
			mo, ok := obj.(metav1.Object)
			if !ok || gvk.Group != claiimv1.GroupVersion.Group {
				return nil, fmt.Errorf("%s: document %d is a %s; a what-if takes AIOrgs, Skills, Policies, Agents and CrossOrgGrants", f, n+1, gvk.Kind)
			}
			if _, isAgent := obj.(*claiimv1.Agent); isAgent && mo.GetNamespace() == "" {
				mo.SetNamespace(ns)
			}
			change = append(change, whatif.Edit{Object: mo, Apply: true})
		}
	}
	for _, d := range deletes {
		o, err := deletion(d)
		if err != nil {
			return nil, err
		}
		change = append(change, whatif.Edit{Object: o, Delete: true})
	}
	return change, nil
}

// deletion is the object --delete names.
func deletion(ref string) (metav1.Object, error) {
	parts := strings.Split(ref, "/")
	kind, meta := parts[0], metav1.ObjectMeta{Name: parts[len(parts)-1]}
	var o metav1.Object
	switch strings.ToLower(kind) {
	case "aiorg":
		o = &claiimv1.AIOrg{ObjectMeta: meta}
	case "skill":
		o = &claiimv1.Skill{ObjectMeta: meta}
	case "policy":
		o = &claiimv1.Policy{ObjectMeta: meta}
	case "crossorggrant":
		o = &claiimv1.CrossOrgGrant{ObjectMeta: meta}
	case "agent":
		if len(parts) != 3 {
			return nil, fmt.Errorf("--delete %s: name an agent as Agent/NAMESPACE/NAME", ref)
		}
		meta.Namespace = parts[1]
		return &claiimv1.Agent{ObjectMeta: meta}, nil
	default:
		return nil, fmt.Errorf("--delete %s: KIND is one of AIOrg, Skill, Policy, Agent, CrossOrgGrant", ref)
	}
	if len(parts) != 2 || parts[1] == "" {
		return nil, fmt.Errorf("--delete %s: name it as KIND/NAME", ref)
	}
	return o, nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
