package charttest

import (
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
)

// TestCompactionCronJob checks the CronJob running `consumer compact`: every
// 10 minutes by default, never two at once, with the consumer's configuration,
// and absent when compaction.enabled is false.
func TestCompactionCronJob(t *testing.T) {
	r, err := renderChart(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.CronJobs) != 1 {
		t.Fatalf("%d CronJobs rendered, want 1", len(r.CronJobs))
	}
	cj := r.CronJobs[0]
	if cj.Spec.Schedule != "*/10 * * * *" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("schedule %q, concurrencyPolicy %q; want every 10 minutes, Forbid", cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
	}
	c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"compact"}) || len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil {
		t.Errorf("container args %q, envFrom %+v; want compact with the chart's ConfigMap", c.Args, c.EnvFrom)
	}
	off, err := renderChart(map[string]any{"compaction": map[string]any{"enabled": false, "schedule": "*/10 * * * *"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(off.CronJobs) != 0 {
		t.Errorf("compaction.enabled=false still renders %d CronJobs", len(off.CronJobs))
	}
}
