package kubectlclaiim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

func newAgentCommand(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "List agents, change their lifecycle, accept one as its anchor, rotate its token",
	}
	token := &cobra.Command{Use: "token", Short: "The agent's token"}
	token.AddCommand(newAgentRotateCommand(o))
	cmd.AddCommand(newAgentListCommand(o),
		newLifecycleCommand(o, "suspend", claiimv1.LifecycleSuspended, "suspended",
			"Stop an agent, reversibly; a safety action, so it needs no PIM session"),
		newLifecycleCommand(o, "activate", claiimv1.LifecycleActive, "activated",
			"Resume a suspended agent (needs an active PIM session)"),
		newLifecycleCommand(o, "decommission", claiimv1.LifecycleDecommissioned, "decommissioned",
			"Stop an agent for good and revoke its token (permanent; needs --yes and an active PIM session)"),
		newAgentAcceptCommand(o), token)
	return cmd
}

// list reads list with the user's credentials, in the kubeconfig's (or
// -n) namespace, or in every namespace with -A.
func (o *Options) list(ctx context.Context, list client.ObjectList, all bool) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	var opts []client.ListOption
	if !all {
		ns, err := o.Namespace()
		if err != nil {
			return err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	return c.List(ctx, list, opts...)
}

func newAgentListCommand(o *Options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "ls [-A]",
		Aliases: []string{"list"},
		Short:   "List agents with their phase, anchor and pinned skill version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list := &claiimv1.AgentList{}
			if err := o.list(cmd.Context(), list, all); err != nil {
				return err
			}
			now := o.Now()
			return o.print(list, func(w io.Writer) {
				rows(w, []string{"NAMESPACE", "NAME", "ORG", "ANCHOR", "ACCEPTED", "SKILL VERSION", "LIFECYCLE", "PHASE", "TOKEN ID", "AGE"})
				for i := range list.Items {
					a := &list.Items[i]
					token := ""
					if t := a.Status.Token; t != nil && t.RevokedAt == nil {
						token = t.ID
					}
					rows(w, []string{a.Namespace, a.Name, string(a.Spec.Org), string(a.Spec.AccountabilityAnchor), yesNo(a.AnchorAccepted()),
						fmt.Sprintf("%s v%d", a.Spec.SkillRef.Name, a.Spec.SkillRef.Version), orDash(string(a.Spec.Lifecycle)),
						orDash(string(a.Status.Phase)), orDash(token), age(a.CreationTimestamp.Time, now)})
				}
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "agents of every namespace")
	return cmd
}

// newLifecycleCommand patches spec.lifecycle; admission decides whether
// the change needs a PIM session.
func newLifecycleCommand(o *Options, verb string, to claiimv1.AgentLifecycle, done, short string) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == claiimv1.LifecycleDecommissioned && !yes {
				return fmt.Errorf("decommissioning is permanent: agent %s can never act again and its token is revoked. Run again with --yes to proceed", args[0])
			}
			return o.patchAgent(cmd, args[0], mergePatch(map[string]any{"spec": map[string]any{"lifecycle": to}}), done)
		},
	}
	if to == claiimv1.LifecycleDecommissioned {
		cmd.Flags().BoolVar(&yes, "yes", false, "confirm: decommissioning cannot be undone")
	}
	return cmd
}

func newAgentAcceptCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "accept NAME",
		Short: "Accept an agent as its accountability anchor (you, as yourself; no PIM session needed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			me, err := o.Me(cmd)
			if err != nil {
				return err
			}
			// The annotation names the anchor who accepted; admission lets
			// only that person set it, to their own name.
			return o.annotateAgent(cmd, args[0], claiimv1.AnnotationAnchorAccepted, me.Username, "accepted by "+me.Username)
		},
	}
}

func newAgentRotateCommand(o *Options) *cobra.Command {
	var value string
	cmd := &cobra.Command{
		Use:   "rotate NAME [--value V]",
		Short: "Replace the agent's token; the old one stops working at once (needs an active PIM session)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := value
			if v == "" {
				// Any value it has not had asks for a new token.
				v = o.Now().UTC().Format(time.RFC3339Nano)
			}
			return o.annotateAgent(cmd, args[0], claiimv1.AnnotationRotateToken, v, "token rotation requested ("+claiimv1.AnnotationRotateToken+"="+v+")")
		},
	}
	cmd.Flags().StringVar(&value, "value", "", "the rotation request's value, e.g. a ticket (default: the current time); it must differ from the last one")
	return cmd
}

func (o *Options) annotateAgent(cmd *cobra.Command, name, key, value, done string) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns, err := o.Namespace()
	if err != nil {
		return err
	}
	a := &claiimv1.Agent{}
	if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: name}, a); err != nil {
		return err
	}
	if a.Annotations[key] == value {
		if key == claiimv1.AnnotationRotateToken {
			return errors.New("the agent's last rotation request already has this value; give a new one (--value)")
		}
		return o.print(a, func(w io.Writer) { fmt.Fprintf(w, "agent.claiim.io/%s already %s\n", name, done) })
	}
	return o.patchAgent(cmd, name, annotationPatch(key, value), done)
}

func (o *Options) patchAgent(cmd *cobra.Command, name string, patch client.Patch, done string) error {
	c, err := o.Client()
	if err != nil {
		return err
	}
	ns, err := o.Namespace()
	if err != nil {
		return err
	}
	a := &claiimv1.Agent{}
	a.Namespace, a.Name = ns, name
	if err := c.Patch(cmd.Context(), a, patch); err != nil {
		return err
	}
	return o.print(a, func(w io.Writer) { fmt.Fprintf(w, "agent.claiim.io/%s %s\n", name, done) })
}
