package kubectlclaiim

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
)

// print writes v in the chosen format: a table drawn by table, or v as
// JSON or YAML through cli-runtime's printers. Kubernetes objects get
// their apiVersion and kind; any other value is printed as its JSON.
func (o *Options) print(v any, table func(w io.Writer)) error {
	p, err := o.printer()
	if err != nil {
		return err
	}
	if p == nil {
		tw := printers.GetNewTabWriter(o.Out)
		table(tw)
		return tw.Flush()
	}
	return o.printWith(p, v)
}

// printer is the JSON or YAML printer -o asks for, nil for a table. One
// printer used for several values separates YAML documents with "---".
func (o *Options) printer() (printers.ResourcePrinter, error) {
	switch strings.ToLower(o.Output) {
	case "", "table":
		return nil, nil
	case "json":
		return &printers.JSONPrinter{}, nil
	case "yaml":
		return &printers.YAMLPrinter{}, nil
	}
	return nil, fmt.Errorf("unknown output format %q: use table, json or yaml", o.Output)
}

func (o *Options) printWith(p printers.ResourcePrinter, v any) error {
	if obj, ok := v.(runtime.Object); ok {
		return printers.NewTypeSetter(o.scheme).ToPrinter(p).PrintObj(obj, o.Out)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return p.PrintObj(&runtime.Unknown{Raw: raw}, o.Out)
}

// rows writes tab-separated lines, one per row.
func rows(w io.Writer, lines ...[]string) {
	for _, l := range lines {
		fmt.Fprintln(w, strings.Join(l, "\t"))
	}
}

// orDash keeps an empty cell visible.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age is a time as kubectl's AGE column shows it.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

// until is the time left before t, or how long ago it passed.
func until(t, now time.Time) string {
	switch {
	case t.IsZero():
		return "-"
	case t.After(now):
		return "in " + duration.HumanDuration(t.Sub(now))
	}
	return duration.HumanDuration(now.Sub(t)) + " ago"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
