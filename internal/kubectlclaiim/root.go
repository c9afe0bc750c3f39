// Package kubectlclaiim is the `kubectl claiim` plugin (binary
// cmd/kubectl-claiim): the people's commands for PIM, agents, explaining a
// decision and reading Chron. Every Kubernetes call is made with the
// user's own credentials from their kubeconfig (kubectl's flags), so RBAC
// and the admission webhooks see the real person: two-person approval
// stays two people, and a refusal is the webhook's own words.
package kubectlclaiim

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// Options are what every command shares: kubectl's connection flags, the
// output format and the streams.
type Options struct {
	Flags  *genericclioptions.ConfigFlags
	Output string
	genericiooptions.IOStreams
	// Now is the clock PIM sessions are judged by.
	Now func() time.Time

	scheme *runtime.Scheme
	client client.Client
}

// NewCommand builds `kubectl claiim` and its subcommands.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{Flags: genericclioptions.NewConfigFlags(true), IOStreams: streams, Now: time.Now, scheme: newScheme()}
	cmd := &cobra.Command{
		Use:   "kubectl-claiim",
		Short: "CLAIIM for people: PIM, agents, why the gate answers what it does, Chron",
		Long: `kubectl claiim works with your own kubeconfig credentials: RBAC and the
CLAIIM admission webhooks see you, never a privileged intermediary.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl claiim"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.Flags.AddFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
	cmd.AddCommand(newWhoamiCommand(o), newPIMCommand(o), newAgentCommand(o), newExplainCommand(o), newChronCommand(o), newHistoryCommand(o),
		newApprovalCommand(o))
	return cmd
}

// Execute runs the plugin with args and returns its exit status: 0, or 1
// with the error on ErrOut, an apiserver's refusal in its own words.
func Execute(args []string, streams genericiooptions.IOStreams) int {
	return ExecuteContext(context.Background(), args, streams)
}

// ExecuteContext is Execute until ctx ends: a command that runs until
// interrupted (chron tail) stops then.
func ExecuteContext(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(streams.ErrOut, errorText(err))
		return 1
	}
	return 0
}

// errorText writes an apiserver error as kubectl does, so an admission
// refusal reads exactly as the webhook gave it. A wrapped one keeps the
// context it was wrapped in.
func errorText(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok { // only an unwrapped status: a wrapped one keeps its context
		s := st.Status()
		if s.Reason != "" {
			return fmt.Sprintf("Error from server (%s): %s", s.Reason, s.Message)
		}
		return "Error from server: " + s.Message
	}
	return "error: " + err.Error()
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(claiimv1.AddToScheme(s))
	return s
}

// Client is a client acting as the user of the kubeconfig.
func (o *Options) Client() (client.Client, error) {
	if o.client != nil {
		return o.client, nil
	}
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	mapper, err := o.Flags.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: o.scheme, Mapper: mapper})
	if err != nil {
		return nil, err
	}
	o.client = c
	return c, nil
}

// Namespace is -n, else the kubeconfig context's namespace.
func (o *Options) Namespace() (string, error) {
	ns, _, err := o.Flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// Me is who the apiserver says the user is (SelfSubjectReview).
func (o *Options) Me(cmd *cobra.Command) (authenticationv1.UserInfo, error) {
	c, err := o.Client()
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	r := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(cmd.Context(), r); err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("asking the apiserver who you are (SelfSubjectReview): %w", err)
	}
	return r.Status.UserInfo, nil
}
