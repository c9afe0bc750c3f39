package decide

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
)

// Bounds on a request's context. The gate refuses larger requests, and the
// cost estimate of a condition assumes these sizes, so a condition that
// compiles can never exceed its budget at run time.
const (
	MaxContextEntries = 64   // keys of a map or items of a list, at any depth
	MaxContextDepth   = 4    // nesting of maps and lists
	MaxContextString  = 1024 // characters of a string value
	MaxConditionLen   = 4096 // characters of a condition's source
	// MaxConditionCost is the CEL cost budget, estimated at compile time
	// for the worst input and enforced again at run time.
	MaxConditionCost = 100_000
)

var celEnv = mustCELEnv()

func mustCELEnv() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("action", cel.StringType),
		cel.Variable("context", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("agent", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		panic(err)
	}
	return env
}

// Condition is a compiled CEL condition over a request.
type Condition struct {
	src  string
	prog cel.Program
}

// String returns the expression as written.
func (c *Condition) String() string { return c.src }

// CompileCondition compiles expr, checks that it yields a bool and that its
// worst-case cost fits MaxConditionCost. Errors carry the compiler's text.
func CompileCondition(expr string) (*Condition, error) {
	if len(expr) > MaxConditionLen {
		return nil, fmt.Errorf("condition is longer than %d characters", MaxConditionLen)
	}
	ast, iss := celEnv.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("condition does not compile: %w", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("condition must evaluate to a bool, not %s", ast.OutputType())
	}
	est, err := celEnv.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return nil, fmt.Errorf("condition cost cannot be estimated: %w", err)
	}
	if est.Max > MaxConditionCost {
		return nil, fmt.Errorf("condition is too expensive: worst-case cost %d exceeds the limit %d; simplify it (avoid nested loops over the context)", est.Max, MaxConditionCost)
	}
	prog, err := celEnv.Program(ast, cel.CostLimit(MaxConditionCost))
	if err != nil {
		return nil, fmt.Errorf("condition cannot be planned: %w", err)
	}
	return &Condition{src: expr, prog: prog}, nil
}

// Eval evaluates the condition. An error (missing key, wrong type, cost
// exceeded) is returned as is; callers decide what it means (a Deny rule
// treats it as a match).
func (c *Condition) Eval(vars map[string]any) (bool, error) {
	out, _, err := c.prog.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("condition returned %T, not bool", out.Value())
	}
	return b, nil
}

// sizeEstimator bounds every value of unknown size by the request limits.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: max(MaxContextEntries, MaxContextString)}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
