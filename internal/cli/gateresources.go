package cli

import (
	"flag"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// gateResourceFlags are the gate container's requests and limits. The
// defaults give it a scheduling guarantee (not BestEffort: the gate is the
// last pod a node should evict) and a memory limit, from which the
// operator sets GOMEMLIMIT. No CPU limit by default: a CFS quota stalls
// every decision in flight once the quota is spent (docs/scale.md,
// "Sizing a gate replica").
type gateResourceFlags struct {
	cpuRequest, memoryRequest, cpuLimit, memoryLimit *string
}

func bindGateResources(fs *flag.FlagSet) gateResourceFlags {
	return gateResourceFlags{
		cpuRequest:    fs.String("gate-cpu-request", "250m", "the gate container's CPU request; empty for none"),
		memoryRequest: fs.String("gate-memory-request", "128Mi", "the gate container's memory request; empty for none"),
		cpuLimit:      fs.String("gate-cpu-limit", "", "the gate container's CPU limit; empty (the default) for none"),
		memoryLimit:   fs.String("gate-memory-limit", "512Mi", "the gate container's memory limit (GOMEMLIMIT is set to 90% of it); empty for none"),
	}
}

// requirements parses the flags; an error names the flag and what to write.
func (f gateResourceFlags) requirements() (corev1.ResourceRequirements, error) {
	r := corev1.ResourceRequirements{}
	for _, q := range []struct {
		flag, value string
		name        corev1.ResourceName
		list        *corev1.ResourceList
	}{
		{"gate-cpu-request", *f.cpuRequest, corev1.ResourceCPU, &r.Requests},
		{"gate-memory-request", *f.memoryRequest, corev1.ResourceMemory, &r.Requests},
		{"gate-cpu-limit", *f.cpuLimit, corev1.ResourceCPU, &r.Limits},
		{"gate-memory-limit", *f.memoryLimit, corev1.ResourceMemory, &r.Limits},
	} {
		if q.value == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.value)
		if err != nil || v.Sign() <= 0 {
			return r, fmt.Errorf("--%s=%q: want a positive Kubernetes quantity such as 500m or 2 (CPU) or 256Mi (memory), or empty for none", q.flag, q.value)
		}
		if *q.list == nil {
			*q.list = corev1.ResourceList{}
		}
		(*q.list)[q.name] = v
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := r.Requests[name]
		lim, hasLim := r.Limits[name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			return r, fmt.Errorf("the gate's %s request %s is above its limit %s: Kubernetes would refuse every gate pod; lower --gate-%s-request or raise --gate-%s-limit",
				name, req.String(), lim.String(), name, name)
		}
	}
	return r, nil
}
