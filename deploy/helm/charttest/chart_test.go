package charttest

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Value sets rendered by several tests.
const (
	defaultValues = ``

	tlsSASLValues = `
config:
  KAFKA_SASL_MECHANISM: SCRAM-SHA-512
  KAFKA_SASL_USERNAME: usage-rollup
secrets:
  clickhousePassword: {existingSecret: clickhouse-credentials, key: password}
  kafkaSaslPassword: {existingSecret: kafka-credentials, key: sasl-password}
tls:
  kafka:
    enabled: true
    ca: {existingSecret: kafka-ca, key: ca.crt}
    client: {existingSecret: kafka-client-tls, certKey: tls.crt, keyKey: tls.key}
  clickhouse:
    enabled: true
    ca: {existingSecret: clickhouse-ca, key: ca.pem}
`

	// chartSecretValues puts recognisable passwords in values: they must reach only Secrets.
	chartSecretValues = `
config:
  KAFKA_SASL_MECHANISM: PLAIN
  KAFKA_SASL_USERNAME: usage-rollup
secrets:
  create: true
  clickhousePassword: {value: ch-pw-7f3a9c1e}
  kafkaSaslPassword: {value: kafka-pw-b2d4e6f8}
`

	monitoringValues = `
monitoring:
  serviceMonitor: {enabled: true, labels: {release: prometheus}}
  prometheusRule: {enabled: true}
  dashboard: {enabled: true}
`

	migrationsOffValues = `
migrations: {enabled: false}
`
)

var valueSets = map[string]string{
	"defaults":      defaultValues,
	"tls+sasl":      tlsSASLValues,
	"chart-secret":  chartSecretValues,
	"monitoring":    monitoringValues,
	"migration-off": migrationsOffValues,
	"migration-in-pod": `
migrations: {enabled: false, inPod: true}
`,
	"scheduling": `
replicaCount: 6
podAnnotations: {example.com/team: billing}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: usage, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app.kubernetes.io/name: usage-rollup}}
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway,
     labelSelector: {matchLabels: {app.kubernetes.io/name: usage-rollup}}}
extraEnv: [{name: DEAD_LETTER_TOPIC, value: usage-events-dlq}]
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
`,
}

// knownEnv are the variables the binary reads (README's configuration table and the ones being
// added with it), plus GOMEMLIMIT for the Go runtime. The chart sets nothing else.
var knownEnv = []string{
	"KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_GROUP_ID", "KAFKA_SESSION_TIMEOUT", "KAFKA_REBALANCE_TIMEOUT",
	"KAFKA_HEARTBEAT_INTERVAL", "KAFKA_FETCH_MAX_BYTES", "KAFKA_FETCH_BUFFER_BYTES", "CLICKHOUSE_ADDR", "CLICKHOUSE_DATABASE",
	"CLICKHOUSE_USERNAME", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DIAL_TIMEOUT", "CLICKHOUSE_INSERT_TIMEOUT",
	"CLICKHOUSE_MIGRATE", "ROLLUP_WINDOWS", "CHUNK_SIZE", "MAX_BATCH_ROWS", "FLUSH_INTERVAL", "SHUTDOWN_TIMEOUT",
	"WRITE_RETRY_MAX_BACKOFF", "MAX_MESSAGE_BYTES", "MAX_FUTURE_SKEW", "METRICS_ADDR", "LOG_LEVEL", "DEBUG_PPROF",
	"DEAD_LETTER_TOPIC", "ALLOWED_LATENESS", "IDLE_PARTITION_TIMEOUT", "SEAL_IDLE_AFTER", "MAX_GROUPS_PER_PARTITION", "LIVENESS_STALL_TIMEOUT",
	"COMPACT_BATCH_WINDOWS", "COMPACT_MAX_WINDOWS", "COMPACT_SETTLE", "COMPACT_MAX_RUN", "COMPACT_DELETE", "COMPACT_WAIT_DELETES",
	"KAFKA_TLS_ENABLED", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE",
	"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
	"CLICKHOUSE_TLS_ENABLED", "CLICKHOUSE_TLS_CA_FILE", "CLICKHOUSE_TLS_CERT_FILE", "CLICKHOUSE_TLS_KEY_FILE",
	"GOMEMLIMIT",
}

// podSpecs returns every pod template of r (Deployment and Jobs), by owner.
func podSpecs(r *rendered) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, d := range r.Deployments {
		out["Deployment/"+d.Name] = d.Spec.Template
	}
	for _, j := range r.Jobs {
		out["Job/"+j.Name] = j.Spec.Template
	}
	return out
}

func TestDefaultObjects(t *testing.T) {
	r := mustRender(t, defaultValues)
	want := []string{
		"ConfigMap/" + fullname,
		"Deployment/" + fullname,
		"Job/" + fullname + "-migrations",
		"PodDisruptionBudget/" + fullname,
		"Service/" + fullname,
		"ServiceAccount/" + fullname,
	}
	if got := r.kinds(); !slices.Equal(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
	if !r.Hooks["Job/"+fullname+"-migrations"] {
		t.Errorf("the migration Job is not a Helm hook: %v", r.Hooks)
	}
	d := r.deployment(t)
	if d.Namespace != namespace || *d.Spec.Replicas != 3 {
		t.Errorf("deployment namespace %q replicas %d", d.Namespace, *d.Spec.Replicas)
	}
	if s := d.Spec.Strategy; s.RollingUpdate == nil || s.RollingUpdate.MaxSurge.IntValue() != 0 || s.RollingUpdate.MaxUnavailable.IntValue() != 1 {
		t.Errorf("strategy %+v: want maxSurge 0, maxUnavailable 1 (a surge pod can find no free partition and never become Ready)", s)
	}
	pdb := one(t, "PodDisruptionBudget", r.PDBs)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB: want maxUnavailable 1 only, got %+v", pdb.Spec)
	}
	svc := one(t, "Service", r.Services)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 ||
		svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("Service spec %+v", svc.Spec)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("the metrics Service must publish not-ready pods: they are the ones to look at")
	}
	sa := one(t, "ServiceAccount", r.ServiceAccounts)
	if d.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("pods use ServiceAccount %q, chart creates %q", d.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
	if !strings.Contains(r.Notes, "placeholder") {
		t.Errorf("NOTES should warn about the placeholder broker and ClickHouse addresses:\n%s", r.Notes)
	}
}

func TestEveryValueSetRenders(t *testing.T) {
	for name, vals := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			if len(r.Deployments) != 1 || len(r.ConfigMaps) == 0 {
				t.Fatalf("objects: %v", r.kinds())
			}
		})
	}
}

func TestSecurityContext(t *testing.T) {
	for name, vals := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			for owner, tpl := range podSpecs(r) {
				pod := tpl.Spec
				psc := pod.SecurityContext
				if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
					psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: pod securityContext %+v", owner, psc)
				}
				if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
					t.Errorf("%s: the service account token must not be mounted", owner)
				}
				if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
					t.Fatalf("%s: want one container, got %d (+%d init)", owner, len(pod.Containers), len(pod.InitContainers))
				}
				c := pod.Containers[0]
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Fatalf("%s: container has no securityContext", owner)
				case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot, sc.RunAsUser == nil || *sc.RunAsUser != 65532:
					t.Errorf("%s: container must run as non-root 65532: %+v", owner, sc)
				case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
					t.Errorf("%s: root filesystem must be read-only", owner)
				case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
					t.Errorf("%s: allowPrivilegeEscalation must be false", owner)
				case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
					t.Errorf("%s: capabilities must drop ALL and add none: %+v", owner, sc.Capabilities)
				case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
					t.Errorf("%s: container seccompProfile must be RuntimeDefault", owner)
				case sc.Privileged != nil && *sc.Privileged:
					t.Errorf("%s: privileged", owner)
				}
				mountedTmp := false
				for _, m := range c.VolumeMounts {
					if m.MountPath == "/tmp" {
						mountedTmp = volume(t, pod, m.Name).EmptyDir != nil
					}
				}
				if !mountedTmp {
					t.Errorf("%s: /tmp must be an emptyDir (the root filesystem is read-only)", owner)
				}
			}
		})
	}
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

func TestProbesAndMetricsPort(t *testing.T) {
	cases := []struct {
		name   string
		values string
		port   int32
	}{
		{"default port", defaultValues, 9464},
		{"custom port", "metrics: {port: 9100}", 9100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.values)
			d := r.deployment(t)
			c := d.Spec.Template.Spec.Containers[0]
			if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != tc.port {
				t.Fatalf("container ports %+v: want metrics:%d", c.Ports, tc.port)
			}
			if got := r.envMap(t, c)["METRICS_ADDR"]; got != ":"+itoa(tc.port) {
				t.Errorf("METRICS_ADDR %q, want :%d", got, tc.port)
			}
			probes := []struct {
				what  string
				probe *corev1.Probe
				path  string
			}{
				{"startupProbe", c.StartupProbe, "/livez"},
				{"livenessProbe", c.LivenessProbe, "/livez"},
				{"readinessProbe", c.ReadinessProbe, "/readyz"},
			}
			for _, p := range probes {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s: want an httpGet probe, got %+v", p.what, p.probe)
					continue
				}
				if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "metrics" {
					t.Errorf("%s: GET %s on port %s, want %s on metrics", p.what, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
				}
			}
			// Liveness must tolerate a slow ClickHouse for longer than one write timeout.
			if budget := c.LivenessProbe.PeriodSeconds * c.LivenessProbe.FailureThreshold; budget < 30 {
				t.Errorf("liveness budget %ds is shorter than CLICKHOUSE_INSERT_TIMEOUT's default 30s", budget)
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// equalJSON reports whether a and b marshal to the same JSON.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func TestGracePeriodExceedsShutdownTimeout(t *testing.T) {
	for name, vals := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			d := r.deployment(t)
			env := r.envMap(t, d.Spec.Template.Spec.Containers[0])
			shutdown, err := time.ParseDuration(cmp(env["SHUTDOWN_TIMEOUT"], "20s"))
			if err != nil {
				t.Fatal(err)
			}
			grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
			if grace != 45*time.Second {
				t.Errorf("terminationGracePeriodSeconds %v, want the default 45s", grace)
			}
			if grace <= shutdown {
				t.Errorf("grace period %v <= SHUTDOWN_TIMEOUT %v", grace, shutdown)
			}
		})
	}
}

func cmp(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

func TestGracePeriodCheck(t *testing.T) {
	cases := []struct {
		grace    int
		shutdown string
		ok       bool
	}{
		{45, "20s", true},
		{21, "20s", true},
		{20, "20s", false},
		{10, "20s", false},
		{30, "29.5s", true},
		{60, "1m", false},
		{91, "1m30s", true},
		{90, "1m30s", false},
		{5, "4500ms", true},
		{3600, "1h", false},
	}
	for _, tc := range cases {
		t.Run(itoa(int32(tc.grace))+"s-"+tc.shutdown, func(t *testing.T) {
			vals := "terminationGracePeriodSeconds: " + itoa(int32(tc.grace)) + "\nconfig: {SHUTDOWN_TIMEOUT: \"" + tc.shutdown + "\", KAFKA_REBALANCE_TIMEOUT: 2h}\n"
			_, err := renderChart(parseValues(t, vals))
			switch {
			case tc.ok && err != nil:
				t.Errorf("want success, got %v", err)
			case !tc.ok && err == nil:
				t.Errorf("grace %ds with SHUTDOWN_TIMEOUT %s rendered; want a failure", tc.grace, tc.shutdown)
			case !tc.ok && !strings.Contains(err.Error(), "terminationGracePeriodSeconds"):
				t.Errorf("error does not name terminationGracePeriodSeconds: %v", err)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	cases := []struct {
		name    string
		values  string
		job     bool
		migrate string
	}{
		{"job (default)", defaultValues, true, "false"},
		{"off", migrationsOffValues, false, "false"},
		{"in pod", "migrations: {enabled: false, inPod: true}", false, "true"},
		{"job with chart secret", chartSecretValues, true, "false"},
		{"job with tls", tlsSASLValues, true, "false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.values)
			d := r.deployment(t)
			dc := d.Spec.Template.Spec.Containers[0]
			denv := r.envMap(t, dc)
			if got := denv["CLICKHOUSE_MIGRATE"]; got != tc.migrate {
				t.Errorf("Deployment CLICKHOUSE_MIGRATE=%q, want %q", got, tc.migrate)
			}
			if !tc.job {
				if len(r.Jobs) != 0 {
					t.Errorf("want no Job, got %d", len(r.Jobs))
				}
				return
			}
			job := one(t, "Job", r.Jobs)
			wantAnn := map[string]string{
				"helm.sh/hook":               "pre-install,pre-upgrade",
				"helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
			}
			for k, v := range wantAnn {
				if job.Annotations[k] != v {
					t.Errorf("Job annotation %s=%q, want %q", k, job.Annotations[k], v)
				}
			}
			if !r.Hooks["Job/"+job.Name] {
				t.Errorf("Helm does not treat the Job as a hook")
			}
			pod := job.Spec.Template.Spec
			if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
				t.Errorf("Job restartPolicy %q", pod.RestartPolicy)
			}
			jc := pod.Containers[0]
			if !slices.Equal(jc.Args, []string{"migrate"}) || len(jc.Command) != 0 {
				t.Errorf("Job command %v args %v, want the image's entrypoint with args [migrate]", jc.Command, jc.Args)
			}
			if jc.Image != dc.Image {
				t.Errorf("Job image %q, Deployment image %q", jc.Image, dc.Image)
			}
			if !equalJSON(t, jc.SecurityContext, dc.SecurityContext) || !equalJSON(t, pod.SecurityContext, d.Spec.Template.Spec.SecurityContext) {
				t.Errorf("the Job's security contexts differ from the Deployment's")
			}
			// The Job runs before the release's ConfigMap, Secret and ServiceAccount exist.
			if len(jc.EnvFrom) != 0 {
				t.Errorf("Job uses envFrom %v: the ConfigMap does not exist yet at pre-install", jc.EnvFrom)
			}
			if sa := one(t, "ServiceAccount", r.ServiceAccounts); pod.ServiceAccountName == sa.Name {
				t.Errorf("Job uses the chart's ServiceAccount %q, which is created after pre-install hooks", sa.Name)
			}
			jenv := r.envMap(t, jc)
			for name, v := range denv {
				if strings.HasPrefix(name, "CLICKHOUSE_") && name != "CLICKHOUSE_MIGRATE" || strings.HasPrefix(name, "KAFKA_BROKERS") {
					if name == "CLICKHOUSE_PASSWORD" && strings.HasPrefix(v, "secret:"+fullname+"/") {
						// The Job reads the hook copy of the chart's Secret.
						if !strings.HasPrefix(jenv[name], "secret:"+fullname+"-migrations/") {
							t.Errorf("Job %s=%q, want the hook Secret", name, jenv[name])
						}
						continue
					}
					if jenv[name] != v {
						t.Errorf("Job %s=%q, Deployment has %q", name, jenv[name], v)
					}
				}
			}
			for _, s := range secretRefs(pod) {
				if strings.HasPrefix(s, fullname+"-migrations") && !r.Hooks["Secret/"+s] {
					t.Errorf("Job reads Secret %s, which is not a hook rendered before it", s)
				}
			}
			// Volumes the Job mounts must exist in its pod.
			for _, m := range jc.VolumeMounts {
				volume(t, pod, m.Name)
			}
		})
	}
	t.Run("job and in-pod", func(t *testing.T) {
		_, err := renderChart(parseValues(t, "migrations: {enabled: true, inPod: true}"))
		if err == nil || !strings.Contains(err.Error(), "migrations.inPod") {
			t.Errorf("want an error naming migrations.inPod, got %v", err)
		}
	})
}

func secretRefs(pod corev1.PodSpec) []string {
	var out []string
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return out
}

func TestSelectors(t *testing.T) {
	r := mustRender(t, defaultValues)
	d := r.deployment(t)
	podLabels := labels.Set(d.Spec.Template.Labels)
	jobLabels := labels.Set(one(t, "Job", r.Jobs).Spec.Template.Labels)
	selectors := map[string]map[string]string{
		"Deployment": d.Spec.Selector.MatchLabels,
		"Service":    one(t, "Service", r.Services).Spec.Selector,
		"PDB":        one(t, "PDB", r.PDBs).Spec.Selector.MatchLabels,
	}
	for what, sel := range selectors {
		s := labels.SelectorFromSet(sel)
		if !s.Matches(podLabels) {
			t.Errorf("%s selector %v does not select the consumer pods %v", what, sel, podLabels)
		}
		if s.Matches(jobLabels) {
			t.Errorf("%s selector %v also selects the migration Job's pod %v", what, sel, jobLabels)
		}
	}
}

func TestEnvNames(t *testing.T) {
	for name, vals := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			for owner, tpl := range podSpecs(r) {
				for env := range r.envMap(t, tpl.Spec.Containers[0]) {
					if !slices.Contains(knownEnv, env) {
						t.Errorf("%s sets %s, which the binary does not read", owner, env)
					}
				}
			}
			// ConfigMap data are env for envFrom: check those names too.
			for _, cm := range r.ConfigMaps {
				if cm.Name != fullname {
					continue
				}
				for k := range cm.Data {
					if !slices.Contains(knownEnv, k) {
						t.Errorf("ConfigMap sets %s, which the binary does not read", k)
					}
				}
			}
		})
	}
}

func TestNoSecretInConfigMaps(t *testing.T) {
	secretValues := []string{"ch-pw-7f3a9c1e", "kafka-pw-b2d4e6f8"}
	for name, vals := range map[string]string{"chart-secret": chartSecretValues, "chart-secret+job-off": chartSecretValues + "\nmigrations: {enabled: false}\n"} {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			for _, cm := range r.ConfigMaps {
				for k, v := range cm.Data {
					if strings.Contains(strings.ToUpper(k), "PASSWORD") {
						t.Errorf("ConfigMap %s has key %s", cm.Name, k)
					}
					for _, s := range secretValues {
						if strings.Contains(v, s) {
							t.Errorf("ConfigMap %s key %s contains a password", cm.Name, k)
						}
					}
				}
			}
			for owner, tpl := range podSpecs(r) {
				for _, e := range tpl.Spec.Containers[0].Env {
					for _, s := range secretValues {
						if strings.Contains(e.Value, s) {
							t.Errorf("%s: env %s has a password as a plain value", owner, e.Name)
						}
					}
				}
			}
			// The only manifests holding the passwords (base64) are Secrets.
			var secretNames []string
			for _, s := range r.Secrets {
				secretNames = append(secretNames, s.Name)
				for _, pw := range secretValues {
					found := false
					for _, v := range s.Data {
						found = found || string(v) == pw
					}
					if !found {
						t.Errorf("Secret %s lacks a password", s.Name)
					}
				}
			}
			for _, m := range r.Manifests {
				for _, pw := range secretValues {
					if strings.Contains(m, pw) {
						t.Errorf("a manifest holds a password in clear text:\n%s", m)
					}
				}
			}
			d := r.deployment(t)
			env := r.envMap(t, d.Spec.Template.Spec.Containers[0])
			if env["CLICKHOUSE_PASSWORD"] != "secret:"+fullname+"/CLICKHOUSE_PASSWORD" ||
				env["KAFKA_SASL_PASSWORD"] != "secret:"+fullname+"/KAFKA_SASL_PASSWORD" {
				t.Errorf("Deployment password env: %q %q", env["CLICKHOUSE_PASSWORD"], env["KAFKA_SASL_PASSWORD"])
			}
			if !slices.Contains(secretNames, fullname) {
				t.Errorf("no chart Secret %s among %v", fullname, secretNames)
			}
			sum := d.Spec.Template.Annotations["checksum/secret"]
			if sum == "" || sum == emptySHA256 {
				t.Errorf("pods do not carry a checksum of the Secret, so a password change would not roll them")
			}
		})
	}
}

// emptySHA256 is the sha256 of the empty string.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestTLSAndSASL(t *testing.T) {
	r := mustRender(t, tlsSASLValues)
	if len(r.Secrets) != 0 {
		t.Errorf("with existing Secrets the chart must create none, got %d", len(r.Secrets))
	}
	want := map[string]string{
		"KAFKA_SASL_MECHANISM":   "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":    "usage-rollup",
		"KAFKA_SASL_PASSWORD":    "secret:kafka-credentials/sasl-password",
		"CLICKHOUSE_PASSWORD":    "secret:clickhouse-credentials/password",
		"KAFKA_TLS_ENABLED":      "true",
		"CLICKHOUSE_TLS_ENABLED": "true",
	}
	// Each file variable must point at a mounted file projected from this Secret and key.
	files := map[string][2]string{
		"KAFKA_TLS_CA_FILE":      {"kafka-ca", "ca.crt"},
		"KAFKA_TLS_CERT_FILE":    {"kafka-client-tls", "tls.crt"},
		"KAFKA_TLS_KEY_FILE":     {"kafka-client-tls", "tls.key"},
		"CLICKHOUSE_TLS_CA_FILE": {"clickhouse-ca", "ca.pem"},
	}
	for owner, tpl := range podSpecs(r) {
		c := tpl.Spec.Containers[0]
		env := r.envMap(t, c)
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s=%q, want %q", owner, k, env[k], v)
			}
		}
		for _, k := range []string{"CLICKHOUSE_TLS_CERT_FILE", "CLICKHOUSE_TLS_KEY_FILE"} {
			if _, ok := env[k]; ok {
				t.Errorf("%s: %s set without a client certificate", owner, k)
			}
		}
		for k, src := range files {
			secret, key := mountedSecret(t, tpl.Spec, c, env[k])
			if secret != src[0] || key != src[1] {
				t.Errorf("%s: %s=%s is Secret %s key %s, want %s key %s", owner, k, env[k], secret, key, src[0], src[1])
			}
		}
	}
}

// mountedSecret finds which Secret and key the file at path comes from in the pod.
func mountedSecret(t *testing.T, pod corev1.PodSpec, c corev1.Container, path string) (secret, key string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, m.MountPath+"/")
		if !ok {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("TLS mount %s is writable", m.MountPath)
		}
		v := volume(t, pod, m.Name)
		if v.Projected == nil {
			t.Fatalf("volume %s is not a projected volume", v.Name)
		}
		for _, src := range v.Projected.Sources {
			if src.Secret == nil {
				continue
			}
			for _, item := range src.Secret.Items {
				if item.Path == rel {
					return src.Secret.Name, item.Key
				}
			}
		}
	}
	t.Errorf("%s is not a mounted file", path)
	return "", ""
}

func TestGoMemLimit(t *testing.T) {
	cases := []struct {
		name   string
		values string
		want   string // "" = not set
	}{
		{"default 90% of 1Gi", defaultValues, "921MiB"},
		{"512Mi", "resources: {limits: {memory: 512Mi}}", "460MiB"},
		{"decimal 2G", "resources: {limits: {memory: 2G}}", "1716MiB"},
		{"plain bytes", "resources: {limits: {memory: 1073741824}}", "921MiB"},
		{"ratio 0.5 of 4Gi", "resources: {limits: {memory: 4Gi}}\ngoMemLimit: {ratio: 0.5}", "2048MiB"},
		{"no memory limit", "resources: {limits: null, requests: {cpu: 100m}}", ""},
		{"downward API", "goMemLimit: {mode: resourceFieldRef}", "resource:limits.memory/1"},
		{"value", "goMemLimit: {mode: value, value: 700MiB}", "700MiB"},
		{"none", "goMemLimit: {mode: none}", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.values)
			d := r.deployment(t)
			env := r.envMap(t, d.Spec.Template.Spec.Containers[0])
			got, ok := env["GOMEMLIMIT"]
			if tc.want == "" && ok {
				t.Errorf("GOMEMLIMIT=%q, want unset", got)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("GOMEMLIMIT=%q, want %q", got, tc.want)
			}
		})
	}
}

func TestInvalidValues(t *testing.T) {
	cases := []struct {
		name    string
		values  string
		errPart string
	}{
		{"unknown top-level key", "replicas: 3", "replicas"},
		{"misspelt config variable", "config: {KAFKA_BROKER: a:9092}", "KAFKA_BROKER"},
		{"password in config", "config: {CLICKHOUSE_PASSWORD: x}", "CLICKHOUSE_PASSWORD"},
		{"metrics address in config", "config: {METRICS_ADDR: ':1'}", "METRICS_ADDR"},
		{"unknown SASL mechanism", "config: {KAFKA_SASL_MECHANISM: GSSAPI, KAFKA_SASL_USERNAME: u}\nsecrets: {kafkaSaslPassword: {existingSecret: s}}", "KAFKA_SASL_MECHANISM"},
		{"bad duration", "config: {FLUSH_INTERVAL: 5 seconds}", "FLUSH_INTERVAL"},
		{"bad log level", "config: {LOG_LEVEL: verbose}", "LOG_LEVEL"},
		{"pprof flag not a boolean", "config: {DEBUG_PPROF: 'yes'}", "DEBUG_PPROF"},
		{"empty brokers", "config: {KAFKA_BROKERS: ''}", "KAFKA_BROKERS"},
		{"grace period zero", "terminationGracePeriodSeconds: 0", "terminationGracePeriodSeconds"},
		{"SASL without username", "config: {KAFKA_SASL_MECHANISM: PLAIN}\nsecrets: {kafkaSaslPassword: {existingSecret: s}}", "KAFKA_SASL_USERNAME"},
		{"SASL without password", "config: {KAFKA_SASL_MECHANISM: SCRAM-SHA-256, KAFKA_SASL_USERNAME: u}", "password"},
		{"SASL password without mechanism", "secrets: {kafkaSaslPassword: {existingSecret: s}}", "KAFKA_SASL_MECHANISM"},
		{"TLS secret while disabled", "tls: {kafka: {ca: {existingSecret: ca}}}", "tls.kafka.enabled"},
		{"chart Secret without passwords", "secrets: {create: true}", "secrets.create"},
		{"rebalance not above shutdown", "config: {KAFKA_REBALANCE_TIMEOUT: 20s}", "KAFKA_REBALANCE_TIMEOUT"},
		{"unknown goMemLimit mode", "goMemLimit: {mode: auto}", "goMemLimit"},
		{"value mode without value", "goMemLimit: {mode: value}", "goMemLimit.value"},
		{"memory limit the ratio cannot parse", "resources: {limits: {memory: 1Pi}}", "goMemLimit"},
		{"unknown monitoring key", "monitoring: {serviceMonitor: {enabled: true, intervall: 1m}}", "intervall"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart(parseValues(t, tc.values))
			if err == nil {
				t.Fatalf("rendered; want an error mentioning %q", tc.errPart)
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("error does not mention %q: %v", tc.errPart, err)
			}
		})
	}
}

func TestConfigMapAndChecksum(t *testing.T) {
	base := mustRender(t, defaultValues)
	changed := mustRender(t, "config: {FLUSH_INTERVAL: 10s, CHUNK_SIZE: 100000}")
	cm := changed.configMap(t, fullname)
	if cm.Data["FLUSH_INTERVAL"] != "10s" || cm.Data["CHUNK_SIZE"] != "100000" {
		t.Errorf("ConfigMap data %v", cm.Data)
	}
	if _, ok := base.configMap(t, fullname).Data["FLUSH_INTERVAL"]; ok {
		t.Errorf("an empty config value must leave the variable unset (binary default)")
	}
	a := base.deployment(t).Spec.Template.Annotations["checksum/config"]
	b := changed.deployment(t).Spec.Template.Annotations["checksum/config"]
	if a == "" || a == b {
		t.Errorf("checksum/config does not follow the ConfigMap (%q, %q): pods would keep the old env", a, b)
	}
}

// DEBUG_PPROF may be written as a YAML boolean; the ConfigMap needs the string the binary parses.
func TestDebugPprofBoolean(t *testing.T) {
	cm := mustRender(t, "config: {DEBUG_PPROF: true}").configMap(t, fullname)
	if got := cm.Data["DEBUG_PPROF"]; got != "true" {
		t.Errorf("DEBUG_PPROF = %q in the ConfigMap, want \"true\"", got)
	}
}

func TestRecreateStrategy(t *testing.T) {
	d := mustRender(t, "strategy: {type: Recreate}").deployment(t)
	if d.Spec.Strategy.Type != "Recreate" || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("strategy %+v: Recreate must not carry the default rollingUpdate", d.Spec.Strategy)
	}
}

func TestScheduling(t *testing.T) {
	r := mustRender(t, valueSets["scheduling"])
	pod := r.deployment(t).Spec.Template
	if pod.Annotations["example.com/team"] != "billing" || pod.Spec.NodeSelector["kubernetes.io/os"] != "linux" ||
		len(pod.Spec.Tolerations) != 1 || pod.Spec.Affinity == nil || len(pod.Spec.TopologySpreadConstraints) != 1 {
		t.Errorf("scheduling values not applied: %+v", pod)
	}
	if img := pod.Spec.Containers[0].Image; !strings.HasSuffix(img, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
		t.Errorf("image %q is not pinned by digest", img)
	}
	if env := r.envMap(t, pod.Spec.Containers[0]); env["DEAD_LETTER_TOPIC"] != "usage-events-dlq" {
		t.Errorf("extraEnv not applied")
	}
}
