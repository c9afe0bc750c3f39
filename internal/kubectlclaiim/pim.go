package kubectlclaiim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/pimview"
)

func newPIMCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pim",
		Short: "Request, list and decide PIM sessions (two-person control)",
	}
	cmd.AddCommand(newPIMRequestCommand(o), newPIMListCommand(o),
		newPIMDecisionCommand(o, "approve", claiimv1.AnnotationApprove, "approved",
			"Approve another person's PIM request (needs the RBAC verb approve on pimrequests)"),
		newPIMDecisionCommand(o, "deny", claiimv1.AnnotationDeny, "denied",
			"Deny another person's PIM request (needs the RBAC verb approve on pimrequests)"),
		newPIMDecisionCommand(o, "revoke", claiimv1.AnnotationRevoke, "revoked",
			"End a pending or active session: your own, or anyone's as an approver"))
	return cmd
}

func newPIMRequestCommand(o *Options) *cobra.Command {
	var reason, duration, subject, name string
	var approvals int32
	cmd := &cobra.Command{
		Use:   "request --reason REASON [--duration 1h] [--subject USER] [--approvals N]",
		Short: "Ask for an elevated control-plane session; another person approves it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := &claiimv1.PIMRequest{Spec: claiimv1.PIMRequestSpec{Reason: reason, Subject: claiimv1.Username(subject), ApprovalsRequired: approvals}}
			p.Name, p.GenerateName = name, "pim-"
			if duration != "" {
				d, err := time.ParseDuration(duration)
				if err != nil {
					return fmt.Errorf("--duration: %w", err)
				}
				p.Spec.Duration = &metav1.Duration{Duration: d}
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			if err := c.Create(cmd.Context(), p); err != nil {
				return err
			}
			return o.print(p, func(w io.Writer) {
				fmt.Fprintf(w, "pimrequest.claiim.io/%s created: %s for %s, pending approval by %d other person(s)\n", p.Name, p.Spec.Subject, durationOf(p), p.Required())
				fmt.Fprintf(w, "Another approver runs: kubectl claiim pim approve %s --reason \"<comment>\"\n", p.Name)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why you need the elevation (10 to 1024 characters; recorded in Chron)")
	cmd.Flags().StringVar(&duration, "duration", "", "how long the session lasts once approved (default 1h, at most 8h)")
	cmd.Flags().StringVar(&subject, "subject", "", "the user the session elevates (default: you), e.g. a GitOps controller's ServiceAccount")
	cmd.Flags().StringVar(&name, "name", "", "the request's name (default: generated, pim-xxxxx)")
	cmd.Flags().Int32Var(&approvals, "approvals", 0, "how many distinct approvers besides you must approve (default 1, at most 5)")
	_ = cmd.MarkFlagRequired("reason")
	return cmd
}

func newPIMListCommand(o *Options) *cobra.Command {
	var mine, pending bool
	cmd := &cobra.Command{
		Use:     "ls [--mine] [--pending]",
		Aliases: []string{"list"},
		Short:   "List PIM requests, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := o.pimRequests(cmd)
			if err != nil {
				return err
			}
			me := ""
			if mine {
				u, err := o.Me(cmd)
				if err != nil {
					return err
				}
				me = u.Username
			}
			now := o.Now()
			var shown []sessionView
			out := &claiimv1.PIMRequestList{}
			for _, v := range views(list, now) {
				if (mine && string(v.Requester) != me) || (pending && v.Phase != claiimv1.PIMPending) {
					continue
				}
				shown = append(shown, v)
				out.Items = append(out.Items, *v.request)
			}
			return o.print(out, func(w io.Writer) {
				rows(w, []string{"NAME", "REQUESTER", "SUBJECT", "PHASE", "APPROVED BY", "EXPIRES", "AGE", "REASON"})
				for _, v := range shown {
					rows(w, []string{v.Name, orDash(string(v.Requester)), orDash(string(v.Subject)), string(v.Phase),
						approvedBy(v), until(v.session.ExpiresAt, now), age(v.request.CreationTimestamp.Time, now), oneLine(v.Reason)})
				}
			})
		},
	}
	cmd.Flags().BoolVar(&mine, "mine", false, "only the requests you made")
	cmd.Flags().BoolVar(&pending, "pending", false, "only requests waiting for a decision")
	return cmd
}

// newPIMDecisionCommand sets one of the decision annotations; admission
// stamps who decided and refuses what two-person control forbids.
func newPIMDecisionCommand(o *Options, verb, annotation, done, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   verb + " NAME --reason REASON",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return errors.New("--reason is required: it is recorded with the decision")
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			p := &claiimv1.PIMRequest{}
			p.Name = args[0]
			if err := c.Patch(cmd.Context(), p, annotationPatch(annotation, reason)); err != nil {
				return err
			}
			return o.print(p, func(w io.Writer) {
				fmt.Fprintf(w, "pimrequest.claiim.io/%s %s%s\n", p.Name, done, approvalsSoFar(p, annotation))
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "your comment, recorded with the decision")
	return cmd
}

// approvalsSoFar says, after an approval that admission recorded without
// starting the session, how many of the approvals it needs are in.
func approvalsSoFar(p *claiimv1.PIMRequest, annotation string) string {
	if s := pimview.SoFar(p); annotation == claiimv1.AnnotationApprove && s != "" {
		return " (" + s + ")"
	}
	return ""
}

// approvedBy is the APPROVED BY cell: who started the session, or, while
// a request that needs several approvers waits, who approved so far.
func approvedBy(v sessionView) string {
	p := v.request
	if v.ApprovedBy != "" || p.Required() <= 1 || v.Phase != claiimv1.PIMPending {
		return orDash(string(v.ApprovedBy))
	}
	names := make([]string, 0, len(p.Status.Approvals))
	for _, a := range p.Status.Approvals {
		names = append(names, string(a.By))
	}
	return fmt.Sprintf("%s (%d/%d)", orDash(strings.Join(names, ",")), len(names), p.Required())
}

// annotationPatch sets one annotation (a merge patch).
func annotationPatch(key, value string) client.Patch {
	return mergePatch(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
}

// mergePatch is a JSON merge patch of v, a map of strings.
func mergePatch(v map[string]any) client.Patch {
	b, _ := json.Marshal(v) // maps of strings always marshal
	return client.RawPatch(types.MergePatchType, b)
}

func (o *Options) pimRequests(cmd *cobra.Command) (*claiimv1.PIMRequestList, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	list := &claiimv1.PIMRequestList{}
	return list, c.List(cmd.Context(), list)
}

// views are the requests as sessions, newest first (pimview).
func views(list *claiimv1.PIMRequestList, now time.Time) []sessionView {
	all := pimview.List(list.Items, now)
	out := make([]sessionView, 0, len(all))
	for _, r := range all {
		v := sessionView{Name: r.Name, Phase: r.Phase, Requester: r.Spec.Requester, Subject: r.Session.Subject,
			ApprovedBy: r.Session.ApprovedBy, Reason: r.Spec.Reason, request: r.PIMRequest, session: r.Session}
		if !r.Session.ExpiresAt.IsZero() {
			v.ExpiresAt = r.Session.ExpiresAt.UTC().Format(time.RFC3339)
		}
		out = append(out, v)
	}
	return out
}

func durationOf(p *claiimv1.PIMRequest) string {
	if p.Spec.Duration == nil {
		return claiimv1.DefaultPIMDuration
	}
	return p.Spec.Duration.Duration.String()
}

// oneLine keeps a free-text cell on its line, and short.
func oneLine(s string) string {
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return oneLineFull(s)
}
