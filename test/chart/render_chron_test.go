package chart

// Chron's database roles as the chart wires them: a migration Job that
// alone holds the owner's Secret, and a Secret per component's role.

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// secretsOf lists the Secrets a pod template reads: env, envFrom, volumes.
func secretsOf(pod corev1.PodSpec) []string {
	var out []string
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out = append(out, e.SecretRef.Name)
			}
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, p := range v.Projected.Sources {
				if p.Secret != nil {
					out = append(out, p.Secret.Name)
				}
			}
		}
	}
	return out
}

// podOf is the pod template of a workload, if it has one.
func podOf(t *testing.T, o *unstructured.Unstructured) (corev1.PodSpec, bool) {
	switch o.GetKind() {
	case "Deployment":
		return convert[appsv1.Deployment](t, o).Spec.Template.Spec, true
	case "StatefulSet":
		return convert[appsv1.StatefulSet](t, o).Spec.Template.Spec, true
	case "Job":
		return convert[batchv1.Job](t, o).Spec.Template.Spec, true
	}
	return corev1.PodSpec{}, false
}

// The owner's Secret reaches the migration Job alone: never the manager,
// nor the gate, whose Deployment the manager makes from --gate-database-secret.
func TestOwnerSecretOnlyInMigrationJob(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	for _, c := range []struct {
		set   []string
		owner string
	}{
		{nil, "claiim-database"},
		{[]string{"database.existingSecret=chron-owner"}, "chron-owner"},
		{[]string{"postgresql.bundled.enabled=true"}, "claiim-postgresql"},
		{[]string{"gate.databaseSecret=chron-gate", "database.manager.existingSecret=m", "database.reader.existingSecret=r"}, "claiim-database"},
		{[]string{"webhook.certManager.enabled=true"}, "claiim-database"},
		{[]string{"migration.enabled=false"}, "claiim-database"},
	} {
		objs := render(t, c.set...)
		holders := []string{}
		for _, o := range objs {
			pod, ok := podOf(t, o)
			if !ok || o.GetLabels()["claiim.io/evaluation-only"] == "true" { // the bundled PostgreSQL reads its own
				continue
			}
			for _, s := range secretsOf(pod) {
				if s == c.owner {
					holders = append(holders, o.GetKind()+"/"+o.GetName())
				}
			}
			for _, ctr := range pod.Containers {
				for _, a := range ctr.Args {
					g.Expect(a).NotTo(Equal("--gate-database-secret="+c.owner), "%v: the gate gets the owner's Secret", c.set)
				}
			}
		}
		want := []string{"Job/claiim-chron-migrate"}
		if len(c.set) == 1 && c.set[0] == "migration.enabled=false" { // you migrate, from outside the cluster
			want = []string{}
		}
		g.Expect(holders).To(Equal(want), "%v: who mounts the owner's Secret %s", c.set, c.owner)
	}
}

// The Job runs `claiim chron migrate` with the owner's URL and every
// role's, after the role Secrets exist and before the manager.
func TestMigrationJob(t *testing.T) {
	needsHelm(t)
	g := NewWithT(t)
	objs := render(t)
	u := find(t, objs, "Job", "claiim-chron-migrate")
	g.Expect(u.GetAnnotations()).To(And(
		HaveKeyWithValue("helm.sh/hook", "pre-install,pre-upgrade"),
		HaveKeyWithValue("helm.sh/hook-weight", "0"),
		HaveKeyWithValue("helm.sh/hook-delete-policy", "before-hook-creation,hook-succeeded")))
	job := convert[batchv1.Job](t, u)
	pod := job.Spec.Template.Spec
	g.Expect(pod.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
	g.Expect(pod.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
	g.Expect(pod.Containers).To(HaveLen(1))
	m := pod.Containers[0]
	g.Expect(m.Args).To(Equal([]string{"chron", "migrate"}))
	g.Expect(m.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	ref := func(name, secret string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: "DATABASE_URL"}}}
	}
	g.Expect(m.Env).To(ConsistOf(ref("DATABASE_URL", "claiim-database"), ref("CLAIIM_GATE_DATABASE_URL", "claiim-chron-gate"),
		ref("CLAIIM_MANAGER_DATABASE_URL", "claiim-chron-manager"), ref("CLAIIM_READER_DATABASE_URL", "claiim-chron-reader")))

	// The generated role Secrets: hooks made before the Job, each a role's
	// URL on database.host with its own random password.
	for what, role := range map[string]string{"gate": "claiim_gate", "manager": "claiim_manager", "reader": "claiim_reader"} {
		u := find(t, objs, "Secret", "claiim-chron-"+what)
		g.Expect(u.GetAnnotations()).To(And(HaveKeyWithValue("helm.sh/hook", "pre-install,pre-upgrade"), HaveKeyWithValue("helm.sh/hook-weight", "-10")))
		sec := convert[corev1.Secret](t, u)
		g.Expect(string(sec.Data["username"])).To(Equal(role))
		g.Expect(string(sec.Data["password"])).To(MatchRegexp(`^[A-Za-z0-9]{32}$`))
		g.Expect(string(sec.Data["DATABASE_URL"])).To(Equal("postgres://" + role + ":" + string(sec.Data["password"]) + "@" + testDBHost + ":5432/claiim?sslmode=require"))
	}

	// Given Secrets are used as they are: nothing generated, no host needed.
	objs = render(t, "database.host=", "database.gate.existingSecret=g", "database.manager.existingSecret=m", "database.reader.existingSecret=r")
	g.Expect(ofKind(objs, "Secret")).To(BeEmpty())
	job = convert[batchv1.Job](t, find(t, objs, "Job", "claiim-chron-migrate"))
	g.Expect(job.Spec.Template.Spec.Containers[0].Env).To(ContainElements(ref("CLAIIM_GATE_DATABASE_URL", "g"),
		ref("CLAIIM_MANAGER_DATABASE_URL", "m"), ref("CLAIIM_READER_DATABASE_URL", "r")))
	// A Secret to generate without a host to point it at: a clear refusal.
	out, err := helm(t, templateArgs("database.host=", "database.gate.existingSecret=g")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("database.host is needed to generate the manager's Chron Secret"))

	// The bundled PostgreSQL does not exist before install: the Job runs
	// after it then, and the roles point at it.
	objs = render(t, "postgresql.bundled.enabled=true")
	g.Expect(find(t, objs, "Job", "claiim-chron-migrate").GetAnnotations()).To(HaveKeyWithValue("helm.sh/hook", "post-install,pre-upgrade"))
	sec := convert[corev1.Secret](t, find(t, objs, "Secret", "claiim-chron-gate"))
	g.Expect(string(sec.Data["DATABASE_URL"])).To(HavePrefix("postgres://claiim_gate:"))
	g.Expect(string(sec.Data["DATABASE_URL"])).To(HaveSuffix("@claiim-postgresql." + releaseNS + ".svc:5432/claiim?sslmode=disable"))
	g.Expect(strings.Count(string(sec.Data["DATABASE_URL"]), string(sec.Data["password"]))).To(Equal(1))
}
