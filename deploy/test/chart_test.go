package test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// kubeVersion is the cluster the chart is rendered for (Chart.yaml asks for
// 1.25 or later; the templates do not branch on the version).
const kubeVersion = "v1.31.0"

const release = "ygg"

// rendered is one chart render, decoded strictly.
type rendered struct {
	deployments     map[string]*appsv1.Deployment // by name
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	pdbs            map[string]*policyv1.PodDisruptionBudget
	hpas            map[string]*autoscalingv2.HorizontalPodAutoscaler
	pvcs            map[string]*corev1.PersistentVolumeClaim
	serviceMonitors map[string]*serviceMonitor
	prometheusRules map[string]*prometheusRule
	notes           string
}

// serviceMonitor and prometheusRule hold the fields of the Prometheus
// Operator's objects this chart sets; decoding is strict, so a field the
// chart sets that is not here (a typo, a field of another version) fails.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(filepath.Join(repoRoot(t), "deploy", "helm", "yggdrasil"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// renderChart installs the chart client-only (no cluster), as
// `helm install --dry-run` would, with values parsed from YAML.
func renderChart(t *testing.T, valuesYAML string) (*rendered, error) {
	t.Helper()
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(valuesYAML), &vals); err != nil {
		t.Fatalf("test values: %v", err)
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.ClientOnly, install.DryRun, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = release, "fleet"
	install.KubeVersion = kv
	rel, err := install.Run(loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	r := &rendered{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, serviceMonitors: map[string]*serviceMonitor{},
		prometheusRules: map[string]*prometheusRule{}, notes: rel.Info.Notes,
	}
	for _, doc := range releaseutil.SplitManifests(rel.Manifest) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("manifest: %v\n%s", err, doc)
		}
		var name string
		var decodeErr error
		decode := func(obj interface{ GetName() string }) {
			decodeErr = yaml.UnmarshalStrict([]byte(doc), obj)
			name = obj.GetName()
		}
		switch key := tm.APIVersion + " " + tm.Kind; key {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			decode(o)
			r.deployments[name] = o
		case "v1 Service":
			o := &corev1.Service{}
			decode(o)
			r.services[name] = o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			decode(o)
			r.configMaps[name] = o
		case "v1 Secret":
			o := &corev1.Secret{}
			decode(o)
			r.secrets[name] = o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			decode(o)
			r.pdbs[name] = o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			decode(o)
			r.hpas[name] = o
		case "v1 PersistentVolumeClaim":
			o := &corev1.PersistentVolumeClaim{}
			decode(o)
			r.pvcs[name] = o
		case "monitoring.coreos.com/v1 ServiceMonitor":
			o := &serviceMonitor{}
			decode(o)
			r.serviceMonitors[name] = o
		case "monitoring.coreos.com/v1 PrometheusRule":
			o := &prometheusRule{}
			decode(o)
			r.prometheusRules[name] = o
		default:
			t.Fatalf("unexpected object %s:\n%s", key, doc)
		}
		if decodeErr != nil {
			t.Fatalf("%s %s does not decode strictly: %v\n%s", tm.Kind, name, decodeErr, doc)
		}
		if name == "" {
			t.Fatalf("%s without a name:\n%s", tm.Kind, doc)
		}
	}
	return r, nil
}

func mustRender(t *testing.T, valuesYAML string) *rendered {
	t.Helper()
	r, err := renderChart(t, valuesYAML)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// The secrets of the test values: none may appear outside a Secret.
const (
	apiKey     = "test-runner-key-4f0c2a9e1b"
	adminKey   = "test-operator-key-8d3e7b61a5"
	hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	redisPass  = "test-redis-password-c0ffee"
	sentPass   = "test-sentinel-password-beef"
	redisURL   = "rediss://:" + redisPass + "@redis.example:6380/0"
)

// base is the smallest install: a Redis URL and the API keys.
const base = `
redis:
  url: ` + redisURL + `
secrets:
  apiKeys: ` + apiKey + `
  adminApiKeys: ` + adminKey + `
`

var components = []string{"api", "sweeper", "hooks"}

func name(c string) string { return release + "-yggdrasil-" + c }

// combinations are the installs every invariant is checked on.
var combinations = map[string]string{
	"base": base,
	"sentinel": `
redis:
  username: ygg
  tls: true
  sentinel:
    addrs: [sentinel-0.redis:26379, sentinel-1.redis:26379, sentinel-2.redis:26379]
    masterName: ygg-primary
secrets:
  apiKeys: ` + apiKey + `
  redisPassword: ` + redisPass + `
  redisSentinelPassword: ` + sentPass + `
`,
	"hpa": base + `
api:
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 9}
`,
	"monitoring": base + `
metrics:
  serviceMonitor: {enabled: true, labels: {release: prom}}
  prometheusRule: {enabled: true}
  grafanaDashboard: {enabled: true, labels: {team: fleet}, annotations: {grafana_folder: Yggdrasil}}
`,
	"existing secret": `
existingSecret: ygg-keys
`,
	"embedded redis": `
redis:
  embedded: {enabled: true, persistence: {enabled: true}}
secrets:
  apiKeys: ` + apiKey + `
`,
	"replicas and hooks": `
redis:
  url: ` + redisURL + `
sweeper: {replicas: 2}
hooks:
  replicas: 3
  urls: [https://hooks.example/yggdrasil]
  shutdownTimeoutMs: 25500
secrets:
  apiKeys: ` + apiKey + `
  adminApiKeys: ` + adminKey + `
  hookSecret: ` + hookSecret + `
`,
}

func TestChartInvariants(t *testing.T) {
	for cname, vals := range combinations {
		t.Run(cname, func(t *testing.T) {
			r := mustRender(t, vals)
			checkWorkloads(t, r)
			checkNoSecretOutsideSecrets(t, r)
			checkEnvNames(t, r)
		})
	}
}

func checkWorkloads(t *testing.T, r *rendered) {
	for _, c := range components {
		d, ok := r.deployments[name(c)]
		if !ok {
			t.Fatalf("no Deployment %s", name(c))
		}
		if _, ok := r.services[name(c)]; !ok {
			t.Errorf("no Service %s", name(c))
		}
		checkLabels(t, "Deployment "+d.Name, d.Labels, c)
		checkLabels(t, "pod of "+d.Name, d.Spec.Template.Labels, c)
		for _, a := range []string{"checksum/config", "checksum/secret"} {
			if len(d.Spec.Template.Annotations[a]) != 64 {
				t.Errorf("%s: pod annotation %s = %q, want a sha256", d.Name, a, d.Spec.Template.Annotations[a])
			}
		}
		spec := d.Spec.Template.Spec
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", d.Name, len(spec.Containers))
		}
		ctr := spec.Containers[0]
		if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.LivenessProbe.HTTPGet.Path != "/health" {
			t.Errorf("%s: liveness %+v, want GET /health", d.Name, ctr.LivenessProbe)
		}
		if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet == nil || ctr.ReadinessProbe.HTTPGet.Path != "/ready" {
			t.Errorf("%s: readiness %+v, want GET /ready", d.Name, ctr.ReadinessProbe)
		}
		if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s: no cpu and memory requests: %+v", d.Name, ctr.Resources.Requests)
		}
		if env := podEnv(t, r, d); env["LOG_FORMAT"] != "json" {
			t.Errorf("%s: LOG_FORMAT = %q, want json", d.Name, env["LOG_FORMAT"])
		}
	}
	for _, d := range r.deployments {
		checkRestricted(t, d)
	}
	hooksCM := r.configMaps[name("hooks")]
	if hooksCM == nil {
		t.Fatal("no hooks ConfigMap")
	}
	var shutdownMs int64
	fmt.Sscan(hooksCM.Data["HOOK_SHUTDOWN_TIMEOUT_MS"], &shutdownMs)
	grace := r.deployments[name("hooks")].Spec.Template.Spec.TerminationGracePeriodSeconds
	if shutdownMs < 1 || grace == nil || *grace*1000 <= shutdownMs {
		t.Errorf("hooks: terminationGracePeriodSeconds %v must exceed HOOK_SHUTDOWN_TIMEOUT_MS %d", grace, shutdownMs)
	}
}

// podEnv is the environment a Deployment's container gets: its ConfigMaps,
// then its env entries (a secret reference shows as "<secret:KEY>").
func podEnv(t *testing.T, r *rendered, d *appsv1.Deployment) map[string]string {
	t.Helper()
	env := map[string]string{}
	ctr := d.Spec.Template.Spec.Containers[0]
	for _, from := range ctr.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("%s: envFrom %+v", d.Name, from)
		}
		cm, ok := r.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Fatalf("%s: envFrom names a missing ConfigMap %s", d.Name, from.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "<secret:" + e.ValueFrom.SecretKeyRef.Key + ">"
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		default:
			t.Errorf("%s: env %s from %+v", d.Name, e.Name, e.ValueFrom)
		}
	}
	return env
}

func checkLabels(t *testing.T, what string, labels map[string]string, component string) {
	t.Helper()
	want := map[string]string{
		"app.kubernetes.io/name":       "yggdrasil",
		"app.kubernetes.io/instance":   release,
		"app.kubernetes.io/component":  component,
		"app.kubernetes.io/part-of":    "yggdrasil",
		"app.kubernetes.io/managed-by": "Helm",
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q", what, k, labels[k], v)
		}
	}
	if labels["app.kubernetes.io/version"] == "" {
		t.Errorf("%s: no app.kubernetes.io/version label", what)
	}
}

// checkRestricted holds every pod and container to the restricted Pod
// Security profile.
func checkRestricted(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod security context %+v is not restricted (non-root 65532, RuntimeDefault seccomp)", d.Name, psc)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: shares a host namespace", d.Name)
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("%s: hostPath volume %s", d.Name, v.Name)
		}
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no security context", d.Name, c.Name)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532:
			t.Errorf("%s/%s: not runAsNonRoot as 65532", d.Name, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: root filesystem writable", d.Name, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: privilege escalation allowed", d.Name, c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s/%s: privileged", d.Name, c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
			t.Errorf("%s/%s: capabilities %+v, want drop [ALL] and nothing added", d.Name, c.Name, sc.Capabilities)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s/%s: seccomp %+v, want RuntimeDefault", d.Name, c.Name, sc.SeccompProfile)
		}
	}
}

// checkNoSecretOutsideSecrets: no test secret appears in a ConfigMap, a
// Deployment (as a literal env value or anywhere else) or the NOTES.
func checkNoSecretOutsideSecrets(t *testing.T, r *rendered) {
	t.Helper()
	secrets := []string{apiKey, adminKey, hookSecret, redisPass, sentPass}
	for _, cm := range r.configMaps {
		b, _ := yaml.Marshal(cm)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("ConfigMap %s holds a secret value", cm.Name)
			}
		}
	}
	for _, d := range r.deployments {
		b, _ := yaml.Marshal(d)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("Deployment %s holds a secret value", d.Name)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(r.notes, s) {
			t.Error("NOTES print a secret value")
		}
	}
}
