package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/claiim/claiim-operator/gate/api"
	"github.com/claiim/claiim-operator/gate/decide"
)

// decodeValidate reads and bounds a /v/validate body. On error it returns
// the offending field and a message that says how to fix it.
func decodeValidate(w http.ResponseWriter, r *http.Request, out *api.ValidateRequest) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if field, err := decodeBody(r, out); err != nil { // request_fast.go
		return field, err
	}
	return checkValidate(out)
}

// checkValidate bounds a decoded /v/validate body.
func checkValidate(out *api.ValidateRequest) (string, error) {
	if err := decide.ValidateAction(out.Action); err != nil {
		return "action", err
	}
	if out.SkillVersionID == "" {
		return "skill_version_id", fmt.Errorf("skill_version_id is required: the SKILL_VERSION_ID from the agent's token Secret")
	}
	if len(out.SkillVersionID) > 128 {
		return "skill_version_id", fmt.Errorf("skill_version_id is longer than 128 characters")
	}
	if err := checkContext(out.Context, 1); err != nil {
		return "context", err
	}
	if !validApprovalID(out.ApprovalID) {
		return "approval_id", fmt.Errorf("approval_id is the approval_id of an APPROVAL_REQUIRED answer: up to %d lowercase letters, digits and dashes", api.MaxApprovalIDLen)
	}
	return "", nil
}

// decodeJSON decodes a /v/validate body as encoding/json streams it from
// src: the decoder's own checks and errors, unknown fields refused, and
// nothing but the end of the body after the object.
func decodeJSON(src io.Reader, out *api.ValidateRequest) (string, error) {
	dec := json.NewDecoder(src)
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return "body", errBodyTooLarge
		case errors.As(err, &ute):
			return typeError(ute)
		case errors.Is(err, io.EOF):
			return "body", fmt.Errorf(`request body is empty; send %s`, bodyShape)
		case strings.HasPrefix(err.Error(), unknownField):
			name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), unknownField))
			return "body", fmt.Errorf("request body has an unknown field %.64q; it holds only action, context, skill_version_id and approval_id", name)
		default:
			return "body", fmt.Errorf("request body is not valid JSON: %w", err)
		}
	}
	// Only the end of the body may follow the object (More() misses a stray
	// ']' or '}'); reading on also finds a body over the limit.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if errors.As(err, new(*http.MaxBytesError)) {
			return "body", errBodyTooLarge
		}
		return "body", fmt.Errorf("request body holds something after its JSON object")
	}
	return "", nil
}

var errBodyTooLarge = fmt.Errorf("request body is larger than %d bytes", MaxBodyBytes)

const bodyShape = `{"action": "...", "context": {...}, "skill_version_id": "..."}`

// unknownField starts encoding/json's error for a key DisallowUnknownFields
// refuses; it has no error type of its own.
const unknownField = "json: unknown field "

// typeError names the field whose JSON value has the wrong type, in JSON's
// words, not Go's.
func typeError(ute *json.UnmarshalTypeError) (string, error) {
	if ute.Field == "" {
		return "body", fmt.Errorf("request body must be a JSON object, not %s: send %s", ute.Value, bodyShape)
	}
	if num, ok := strings.CutPrefix(ute.Value, "number "); ok { // a number past float64
		return ute.Field, fmt.Errorf("field %q holds the number %.32s, which is out of range: numbers must fit a 64-bit float (up to about ±1.8e308)", ute.Field, num)
	}
	want := "an object"
	if ute.Type.Kind() == reflect.String {
		want = "a string"
	}
	return ute.Field, fmt.Errorf("field %q must be %s, not %s", ute.Field, want, ute.Value)
}

// checkContext enforces the bounds the policy engine's cost estimates
// assume: depth, entries per map or list, string length.
func checkContext(v any, depth int) error {
	switch t := v.(type) {
	case map[string]any:
		if depth > decide.MaxContextDepth {
			return fmt.Errorf("context is nested deeper than %d levels", decide.MaxContextDepth)
		}
		if len(t) > decide.MaxContextEntries {
			return fmt.Errorf("context has a map with more than %d keys", decide.MaxContextEntries)
		}
		for k, e := range t {
			if len(k) > 256 {
				return fmt.Errorf("context key %.32q... is longer than 256 characters", k)
			}
			if err := checkContext(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if depth > decide.MaxContextDepth {
			return fmt.Errorf("context is nested deeper than %d levels", decide.MaxContextDepth)
		}
		if len(t) > decide.MaxContextEntries {
			return fmt.Errorf("context has a list with more than %d items", decide.MaxContextEntries)
		}
		for _, e := range t {
			if err := checkContext(e, depth+1); err != nil {
				return err
			}
		}
	case string:
		if len(t) > decide.MaxContextString {
			return fmt.Errorf("context has a string longer than %d characters", decide.MaxContextString)
		}
	}
	return nil
}
