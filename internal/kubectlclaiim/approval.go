package kubectlclaiim

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
	"github.com/claiim/claiim-operator/internal/approvalview"
)

// newApprovalCommand lists and decides ActionApprovals: agents' calls a
// RequireApproval policy rule holds until people approve them.
func newApprovalCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "approval",
		Aliases: []string{"approvals"},
		Short:   "List and decide agents' calls held for approval (RequireApproval policy rules)",
	}
	cmd.AddCommand(newApprovalListCommand(o),
		newApprovalDecisionCommand(o, approvalview.Approve,
			"Approve one agent call (needs the RBAC verb approve on actionapprovals; never your agent's own call)"),
		newApprovalDecisionCommand(o, approvalview.Deny, "Deny one agent call; final"))
	return cmd
}

func newApprovalListCommand(o *Options) *cobra.Command {
	var all, pending bool
	cmd := &cobra.Command{
		Use:     "ls [-A] [--pending]",
		Aliases: []string{"list"},
		Short:   "List approval requests: the call, who approved, what is still needed",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := &claiimv1.ActionApprovalList{}
			if err := o.list(cmd.Context(), list, all); err != nil {
				return err
			}
			now := o.Now()
			out := &claiimv1.ActionApprovalList{}
			for _, r := range approvalview.List(list.Items, now) { // pending first, as in the console
				if !pending || r.Pending() {
					out.Items = append(out.Items, *r.ActionApproval)
				}
			}
			return o.print(out, func(w io.Writer) {
				rows(w, []string{"NAMESPACE", "NAME", "AGENT", "ACTION", "PHASE", "APPROVALS", "DECIDED BY", "RULE", "EXPIRES", "CONTEXT"})
				for i := range out.Items {
					ap := &out.Items[i]
					st := ap.State(now)
					by := strings.Join(st.Approvers, ",")
					if st.DeniedBy != "" {
						by = st.DeniedBy
					}
					rows(w, []string{ap.Namespace, ap.Name, ap.Spec.Agent, ap.Spec.Action, string(st.Phase),
						strconv.Itoa(len(st.Approvers)) + "/" + strconv.Itoa(int(ap.Spec.ApprovalsRequired)), orDash(by),
						ap.Spec.Policy + "/" + ap.Spec.Rule, until(ap.Spec.ExpiresAt.Time, now), oneLine(ap.Spec.Context)})
				}
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "approvals of every namespace")
	cmd.Flags().BoolVar(&pending, "pending", false, "only the calls still waiting for a decision")
	return cmd
}

// newApprovalDecisionCommand sets claiim.io/approve or claiim.io/deny;
// admission stamps who from your identity and refuses what the rules
// forbid (your agent's own ServiceAccount, the requester, the same person
// twice, no verb approve).
func newApprovalDecisionCommand(o *Options, d approvalview.Decision, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   d.Verb + " NAME --reason REASON [-n NAMESPACE]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return errors.New("--reason is required: it is recorded in Chron with your decision")
			}
			c, err := o.Client()
			if err != nil {
				return err
			}
			ns, err := o.Namespace()
			if err != nil {
				return err
			}
			ap := &claiimv1.ActionApproval{}
			ap.Namespace, ap.Name = ns, args[0]
			if err := c.Patch(cmd.Context(), ap, d.Patch(reason)); err != nil {
				return err
			}
			st := ap.State(o.Now())
			return o.print(ap, func(w io.Writer) {
				fmt.Fprintf(w, "actionapproval.claiim.io/%s %s: %s of agent %s/%s is %s (%d of %d approvals)\n", ap.Name, d.Did,
					ap.Spec.Action, ap.Namespace, ap.Spec.Agent, st.Phase, len(st.Approvers), ap.Spec.ApprovalsRequired)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in Chron with your decision)")
	return cmd
}
