package charttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../usage-rollup"
	releaseName = "rel"
	namespace   = "usage"
	// fullname is the resource name the chart derives from releaseName.
	fullname = "rel-usage-rollup"
)

// rendered is one chart rendering, every object decoded strictly into its API type.
type rendered struct {
	Deployments     []*appsv1.Deployment
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	ServiceAccounts []*corev1.ServiceAccount
	Jobs            []*batchv1.Job
	CronJobs        []*batchv1.CronJob
	PDBs            []*policyv1.PodDisruptionBudget
	// Monitoring are the monitoring.coreos.com objects (no Go types here: CRDs).
	Monitoring []*unstructured.Unstructured
	// Hooks are the names ("Kind/name") of objects Helm treats as hooks.
	Hooks map[string]bool
	Notes string
	// Manifests is the raw YAML of every object, for text searches.
	Manifests []string
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// renderChart renders the chart as `helm install --dry-run` would without a cluster: values
// are validated against values.schema.json, hooks are separated from the release manifest.
func renderChart(vals map[string]any) (*rendered, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	rel, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	out := &rendered{Hooks: map[string]bool{}, Notes: rel.Info.Notes}
	docs := []string{rel.Manifest}
	for _, h := range rel.Hooks {
		docs = append(docs, h.Manifest)
		out.Hooks[h.Kind+"/"+h.Name] = true
	}
	for _, doc := range docs {
		manifests := releaseutil.SplitManifests(doc)
		keys := make([]string, 0, len(manifests))
		for k := range manifests {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := out.add(manifests[k]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// mustRender renders vals (a YAML document of values) and fails the test on any error.
func mustRender(t *testing.T, valuesYAML string) *rendered {
	t.Helper()
	r, err := renderChart(parseValues(t, valuesYAML))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func parseValues(t *testing.T, valuesYAML string) map[string]any {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	return vals.AsMap()
}

// add decodes one manifest into its Go type, rejecting any field the type does not have.
func (r *rendered) add(manifest string) error {
	if strings.TrimSpace(stripComments(manifest)) == "" {
		return nil
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	js, err := yaml.YAMLToJSON([]byte(manifest))
	if err != nil {
		return fmt.Errorf("manifest is not YAML: %w\n%s", err, manifest)
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return fmt.Errorf("manifest head: %w", err)
	}
	r.Manifests = append(r.Manifests, manifest)
	id := head.APIVersion + " " + head.Kind + "/" + head.Metadata.Name
	kind := head.APIVersion + " " + head.Kind
	if decode, ok := r.decoders()[kind]; ok {
		return decode(id, js)
	}
	if kind == "monitoring.coreos.com/v1 ServiceMonitor" || kind == "monitoring.coreos.com/v1 PrometheusRule" {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		r.Monitoring = append(r.Monitoring, u)
		return nil
	}
	return fmt.Errorf("%s: the chart renders a kind this test does not know; add it to rendered", id)
}

// decoders maps the "apiVersion Kind" of each typed kind to the strict
// decoding of a manifest into its list in r.
func (r *rendered) decoders() map[string]func(id string, js []byte) error {
	return map[string]func(string, []byte) error{
		"apps/v1 Deployment":            decoder(&r.Deployments),
		"v1 Service":                    decoder(&r.Services),
		"v1 ConfigMap":                  decoder(&r.ConfigMaps),
		"v1 Secret":                     decoder(&r.Secrets),
		"v1 ServiceAccount":             decoder(&r.ServiceAccounts),
		"batch/v1 Job":                  decoder(&r.Jobs),
		"batch/v1 CronJob":              decoder(&r.CronJobs),
		"policy/v1 PodDisruptionBudget": decoder(&r.PDBs),
	}
}

func decoder[T any](list *[]*T) func(id string, js []byte) error {
	return func(id string, js []byte) error { return decodeInto(id, js, list) }
}

// decodeInto decodes js strictly into a new T and appends it to list.
func decodeInto[T any](id string, js []byte, list *[]*T) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	obj := new(T)
	if err := dec.Decode(obj); err != nil {
		return fmt.Errorf("%s: strict decode: %w", id, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s: trailing data after the object", id)
	}
	*list = append(*list, obj)
	return nil
}

func stripComments(manifest string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(manifest, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// readFile returns the contents of path, failing the test if it cannot.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// one returns the only element of list, failing the test otherwise.
func one[T any](t *testing.T, what string, list []*T) *T {
	t.Helper()
	if len(list) != 1 {
		t.Fatalf("want exactly one %s, got %d", what, len(list))
	}
	return list[0]
}

func (r *rendered) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	return one(t, "Deployment", r.Deployments)
}

func (r *rendered) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range r.ConfigMaps {
		if cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %q", name)
	return nil
}

func (r *rendered) monitoring(t *testing.T, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range r.Monitoring {
		if u.GetKind() == kind {
			found = append(found, u)
		}
	}
	return one(t, kind, found)
}

// kinds lists "Kind/name" of every rendered object but the CronJobs, sorted.
func (r *rendered) kinds() []string {
	out := slices.Concat(objectIDs(r.Deployments), objectIDs(r.Services), objectIDs(r.ConfigMaps),
		objectIDs(r.Secrets), objectIDs(r.ServiceAccounts), objectIDs(r.Jobs), objectIDs(r.PDBs),
		objectIDs(r.Monitoring))
	sort.Strings(out)
	return out
}

// objectIDs returns "Kind/name" of each object, the kind as the manifest
// spelled it.
func objectIDs[T interface {
	GetName() string
	GetObjectKind() schema.ObjectKind
}](objs []T) []string {
	ids := make([]string, 0, len(objs))
	for _, o := range objs {
		ids = append(ids, o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName())
	}
	return ids
}

// envMap resolves a container's environment as the kubelet would: envFrom ConfigMaps first,
// then env entries (which win). Values from secrets are returned as "secret:<name>/<key>",
// from resource fields as "resource:<resource>/<divisor>".
func (r *rendered) envMap(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("container %s: envFrom other than a ConfigMap: %+v", c.Name, from)
		}
		maps.Copy(env, r.configMap(t, from.ConfigMapRef.Name).Data)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "resource:" + e.ValueFrom.ResourceFieldRef.Resource + "/" + e.ValueFrom.ResourceFieldRef.Divisor.String()
		default:
			t.Fatalf("container %s: env %s has an unexpected source", c.Name, e.Name)
		}
	}
	return env
}

func repoPath(elem ...string) string {
	return filepath.Join(append([]string{"..", "..", ".."}, elem...)...)
}
