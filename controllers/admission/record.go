package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/claiim/claiim-operator/gate/chron"
)

// record writes an admission decision to Chron (not for dry runs, which
// promise no side effects).
func (h *handlers) record(ctx context.Context, req admission.Request, rec *chron.Record) error {
	if req.DryRun != nil && *req.DryRun {
		return nil
	}
	rec.Actor = req.UserInfo.Username
	rec.RequestID = string(req.UID)
	rec.Replica = "manager"
	if rec.Context == nil {
		rec.Context = map[string]any{}
	}
	rec.Context["operation"] = string(req.Operation)
	rec.Context["resource"] = req.Resource.Resource
	rec.Context["name"] = req.Name
	if req.Namespace != "" {
		rec.Context["namespace"] = req.Namespace
	}
	_, err := h.Log.Write(ctx, rec)
	return err
}

// refuse records a refusal and returns it: msg says what to do, and the
// typed webhook answers with it unchanged (admission.Denied). A refusal
// that can't be recorded is still a refusal.
func (h *handlers) refuse(ctx context.Context, req admission.Request, kind chron.Kind, reason, msg string) error {
	_ = h.record(ctx, req, &chron.Record{Kind: kind, Action: action(req), Outcome: chron.OutcomeDeny, Reason: reason, Message: msg})
	return errors.New(msg)
}

// admit records an admission; the change is admitted (nil) only once the
// record has committed: no record, no change.
func (h *handlers) admit(ctx context.Context, req admission.Request, rec *chron.Record) error {
	if rec.Action == "" {
		rec.Action = action(req)
	}
	rec.Outcome = chron.OutcomeAllow
	if err := h.record(ctx, req, rec); err != nil {
		return errored(http.StatusServiceUnavailable,
			fmt.Errorf("the change is refused because it could not be recorded in Chron (fail-closed): %w", err))
	}
	return nil
}

// errored is admission.Errored as an error a typed webhook returns: the
// answer carries exactly this code and message.
func errored(code int32, err error) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Code: code, Message: err.Error()}}
}

// requestFrom is the admission request a typed webhook is answering.
func requestFrom(ctx context.Context) (admission.Request, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return req, errored(http.StatusInternalServerError, err)
	}
	return req, nil
}

// action names an admission request in Chron: "create:aiorgs".
func action(req admission.Request) string {
	return fmt.Sprintf("%s:%s", strings.ToLower(string(req.Operation)), req.Resource.Resource)
}

// verbing turns an operation into words for messages.
func verbing(op string) string {
	switch op {
	case "CREATE":
		return "creating"
	case "UPDATE":
		return "changing"
	case "DELETE":
		return "deleting"
	}
	return strings.ToLower(op)
}
