package deploycheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/internal/ociimage"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// root is the repository's, kubeDir the kustomize base's.
const (
	root    = "../../.."
	kubeDir = root + "/deploy/kubernetes"
)

// kustomization is the part of kustomize's Kustomization the base uses (decoded
// strictly too: a field kustomize would not know is an error here).
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// adapterRules is the prometheus-adapter chart's rules.custom.
type adapterRules struct {
	Rules struct {
		Custom []struct {
			SeriesQuery string `json:"seriesQuery"`
			Resources   struct {
				Overrides map[string]struct {
					Resource string `json:"resource"`
				} `json:"overrides"`
			} `json:"resources"`
			Name struct {
				Matches string `json:"matches"`
				As      string `json:"as"`
			} `json:"name"`
			MetricsQuery string `json:"metricsQuery"`
		} `json:"custom"`
	} `json:"rules"`
}

// objects are the decoded manifests, by kind.
type objects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// decode decodes one YAML document strictly by its apiVersion and kind.
func (o *objects) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	default:
		return fmt.Errorf("unexpected object %s %s", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	switch v := obj.(type) {
	case *appsv1.Deployment:
		o.deployments[v.Name] = v
	case *corev1.Service:
		o.services[v.Name] = v
	case *corev1.ConfigMap:
		o.configMaps[v.Name] = v
	case *corev1.Secret:
		o.secrets[v.Name] = v
	case *policyv1.PodDisruptionBudget:
		o.pdbs = append(o.pdbs, v)
	case *autoscalingv2.HorizontalPodAutoscaler:
		o.hpas = append(o.hpas, v)
	}
	return nil
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// load decodes the kustomization and every resource it lists, and checks that
// no YAML file of the base is left out of it.
func load(t *testing.T) *objects {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kubeDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(kubeDir, "*.yaml"))
	for _, f := range files {
		if f = filepath.Base(f); f != "kustomization.yaml" && !slices.Contains(k.Resources, f) {
			t.Errorf("%s is not among kustomization.yaml's resources", f)
		}
	}
	o := &objects{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, f := range k.Resources {
		b, err := os.ReadFile(filepath.Join(kubeDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			if err := o.decode([]byte(doc)); err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return o
}

// TestStrictDecodingCatchesMistakes proves the decoding refuses what the API
// server would: a misspelled field, a field at the wrong level, a duplicate key.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	o := &objects{deployments: map[string]*appsv1.Deployment{}}
	for name, doc := range map[string]string{
		"misspelled":   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n",
		"wrong level":  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        livenessProbe: {path: /livez}\n",
		"duplicate":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  replicas: 2\n",
		"unknown kind": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
	} {
		if err := o.decode([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// container returns the Deployment's wasmsrv container.
func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("deployment %s has no container %s", d.Name, name)
	return nil
}

func portNamed(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// site reads the ConfigMap's site file as the pod's process would: mounted at
// the image's WASMSRV_CONFIG, with the Deployment's environment (the Secret's
// token, or token when the Secret leaves it empty). The text it returns has the
// modules' /app/ moved to a local directory.
func site(t *testing.T, o *objects, c *corev1.Container, token string) (text string, environ map[string]string, cfg *config.Config) {
	t.Helper()
	dir, file := filepath.Split(ociimage.ConfigPath)
	var cm *corev1.ConfigMap
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) != filepath.Clean(dir) {
			continue
		}
		for _, v := range o.deployments["wasmsrv"].Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm = o.configMaps[v.ConfigMap.Name]
			}
		}
	}
	if cm == nil {
		t.Fatalf("no ConfigMap is mounted at %s, where the image reads %s", dir, ociimage.ConfigPath)
	}
	text, ok := cm.Data[file]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Name, file)
	}
	environ = map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			environ[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := o.secrets[ref.Name]
			if s == nil {
				t.Fatalf("env %s: no Secret %s", e.Name, ref.Name)
			}
			v, ok := s.StringData[ref.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			if v == "" {
				v = token
			}
			environ[e.Name] = v
		default:
			t.Fatalf("env %s: unexpected source", e.Name)
		}
	}
	// The pod's image has the modules under /app/; here a directory has the
	// c-hello sample as /app/main.wasm.
	appDir := filepath.Join(t.TempDir(), "app")
	hello, err := os.ReadFile(filepath.Join(root, "samples/c-hello/main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(appDir, "main.wasm"), hello, 0o644); err != nil {
		t.Fatal(err)
	}
	text = strings.ReplaceAll(text, `"/app/`, `"`+appDir+`/`)
	cfg, err = config.Parse(ociimage.ConfigPath, []byte(text), environ)
	if err != nil {
		t.Fatalf("the ConfigMap's site file: %v", err)
	}
	return text, environ, cfg
}

// TestManifests checks the base as an API server and a kubelet would take it, and
// against the binary: the probes answer on the admin port without the token, the
// ports are the site file's, the drain fits in the grace period, the HPA's
// queue metric comes from a series the binary exports.
func TestManifests(t *testing.T) {
	o := load(t)
	d := o.deployments["wasmsrv"]
	if d == nil {
		t.Fatal("no Deployment wasmsrv")
	}
	pod := d.Spec.Template
	c := container(t, d, "wasmsrv")
	const token = "test-token-0123456789"
	text, environ, cfg := site(t, o, c, token)

	// Ports: the container's are the site file's listener and admin listener.
	httpPort := portNamed(t, c, intstr.FromString("http"))
	adminPort := portNamed(t, c, intstr.FromString("admin"))
	if got := addrPort(t, cfg.Listeners[0].Addr); got != httpPort {
		t.Errorf("listener port %d, container port http %d", got, httpPort)
	}
	if got := addrPort(t, cfg.Admin.Listen()); got != adminPort {
		t.Errorf("admin port %d, container port admin %d", got, adminPort)
	}
	if got := pod.Annotations["prometheus.io/port"]; got != strconv.Itoa(int(adminPort)) {
		t.Errorf("prometheus.io/port %q, the admin port is %d", got, adminPort)
	}

	// Probes: HTTP on the admin port.
	probes := map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	paths := map[string]string{}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Fatalf("%s probe: want httpGet", name)
		}
		if port := portNamed(t, c, p.HTTPGet.Port); port != adminPort {
			t.Errorf("%s probe on port %d, not the admin port %d", name, port, adminPort)
		}
		paths[name] = p.HTTPGet.Path
	}
	if paths["readiness"] == paths["liveness"] {
		t.Errorf("readiness and liveness probe the same path %s: a draining pod must stop being ready, not be killed", paths["readiness"])
	}

	// Drain: preStop sleep + the server's grace fit in terminationGracePeriodSeconds.
	ps := c.Lifecycle
	if ps == nil || ps.PreStop == nil || ps.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep (the image has no shell: a sleep action, not exec)")
	}
	drain := time.Duration(ps.PreStop.Sleep.Seconds)*time.Second + cfg.Server.ShutdownTimeout.D()
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	if drain >= grace || grace-drain > 15*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v for preStop %ds + shutdown_timeout %v: want a little more than the sum",
			grace, ps.PreStop.Sleep.Seconds, cfg.Server.ShutdownTimeout.D())
	}

	// Resources: the HPA's CPU utilization needs a CPU request.
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || pod.Spec.SecurityContext.RunAsUser == nil || *pod.Spec.SecurityContext.RunAsUser != ociimage.UID {
		t.Errorf("want a read-only root and the image's user %d", ociimage.UID)
	}
	mounted := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		mounted[vm.MountPath] = true
	}
	if !mounted[ociimage.DataDir] || !mounted["/tmp"] {
		t.Errorf("mounts %v: want %s (the volume with the compile cache) and /tmp writable", mounted, ociimage.DataDir)
	}

	// Service, PDB and HPA point at the Deployment's pods.
	podLabels := pod.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	svc := o.services["wasmsrv"]
	if svc == nil || !matches(svc.Spec.Selector) {
		t.Fatalf("Service wasmsrv does not select the pods")
	}
	if len(svc.Spec.Ports) != 1 || portNamed(t, c, svc.Spec.Ports[0].TargetPort) != httpPort {
		t.Errorf("Service ports %+v: want the http port", svc.Spec.Ports)
	}
	if len(o.pdbs) != 1 || !matches(o.pdbs[0].Spec.Selector.MatchLabels) {
		t.Error("want one PodDisruptionBudget selecting the pods")
	}
	if len(o.hpas) != 1 {
		t.Fatal("want one HorizontalPodAutoscaler")
	}
	hpa := o.hpas[0]
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA scales %s/%s", ref.Kind, ref.Name)
	}
	if o.pdbs[0].Spec.MaxUnavailable == nil || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Error("the PDB's maxUnavailable 1 needs at least 2 replicas")
	}
	var cpu bool
	var podMetric string
	for _, m := range hpa.Spec.Metrics {
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
			cpu = true
		case m.Type == autoscalingv2.PodsMetricSourceType:
			podMetric = m.Pods.Metric.Name
		}
	}
	if !cpu || podMetric == "" {
		t.Fatalf("HPA metrics %+v: want CPU and a pods metric", hpa.Spec.Metrics)
	}

	// The adapter rule makes the HPA's metric from a series of the binary's.
	b, err := os.ReadFile(filepath.Join(kubeDir, "prometheus-adapter/rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules adapterRules
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		t.Fatalf("prometheus-adapter/rules.yaml: %v", err)
	}
	var series string
	for _, r := range rules.Rules.Custom {
		if r.Name.As == podMetric {
			series, _, _ = strings.Cut(r.SeriesQuery, "{")
			if !regexp.MustCompile(r.Name.Matches).MatchString(series) {
				t.Errorf("the rule's name.matches %q does not match its series %s", r.Name.Matches, series)
			}
			if r.Resources.Overrides["pod"].Resource != "pod" || r.Resources.Overrides["namespace"].Resource != "namespace" {
				t.Errorf("the rule maps %v, want pod and namespace (a Pods metric)", r.Resources.Overrides)
			}
		}
	}
	if series == "" {
		t.Fatalf("no adapter rule serves the HPA's metric %s", podMetric)
	}

	// Redis: the site file's redis_url names the Service of redis.yaml.
	rs := o.services["redis"]
	if rs == nil || o.deployments["redis"] == nil || !strings.Contains(cfg.Plugins.RedisURL, fmt.Sprintf("//%s:%d", rs.Name, rs.Spec.Ports[0].Port)) {
		t.Errorf("plugins.redis_url %q does not name the redis Service", cfg.Plugins.RedisURL)
	}

	// The real binary with this site file: the probes and the metric.
	runBinary(t, text, environ, paths, series, token)
}

// buildWasmsrv builds the binary (the go build cache makes the second build
// of a run free).
func buildWasmsrv(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wasmsrv")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wasmsrv")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary starts wasmsrv serve on the site file, its addresses moved to free
// loopback ports, /app/ to a directory with the c-hello sample, and Redis to a
// private one; then asks the probe paths (no token) and /metrics.
func runBinary(t *testing.T, text string, environ map[string]string, paths map[string]string, series, token string) {
	t.Helper()
	dir := t.TempDir()
	bin := buildWasmsrv(t)
	redis := testkit.StartRedis(t)
	text = regexp.MustCompile(`redis://[^"]*`).ReplaceAllString(text, redis.URL)
	sitePath := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(sitePath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	port, adminPort := testkit.FreePort(t), testkit.FreePort(t)
	env := os.Environ()
	for k, v := range environ {
		env = append(env, k+"="+v)
	}
	env = append(env,
		config.EnvListen+"="+fmt.Sprintf("127.0.0.1:%d", port),
		config.EnvAdminAddr+"="+fmt.Sprintf("127.0.0.1:%d", adminPort),
		"WASMSRV_CACHE_DIR="+filepath.Join(dir, "cache"))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "-c", sitePath)
	cmd.Env = env
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("wasmsrv's log:\n%s", log.String())
		}
	})

	get := func(url, auth string) (int, string, error) {
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	// Ready within two minutes (the first start compiles the module).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _, err := get(admin+paths["readiness"], "")
		if err == nil && code == http.StatusOK {
			break
		}
		if code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound {
			// Not "not ready yet": the kubelet, which sends no token, would never see it ready.
			t.Fatalf("readiness probe GET %s without a token: %d", paths["readiness"], code)
		}
		select {
		case <-exited:
			t.Fatalf("wasmsrv exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness probe %s: %d %v after 2 minutes", paths["readiness"], code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, p := range paths {
		if code, body, err := get(admin+p, ""); err != nil || code != http.StatusOK {
			t.Errorf("%s probe GET %s without a token: %d %v %s", name, p, code, err, body)
		}
	}
	if code, body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", port), ""); err != nil || code != http.StatusOK || body != "Hello from wasmsrv!\n" {
		t.Errorf("GET / on the listener: %d %v %q", code, err, body)
	}
	code, body, err := get(admin+"/metrics", token)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + `[{ ]`).MatchString(body) {
		t.Errorf("/metrics has no series %s, which the adapter rule turns into the HPA's metric", series)
	}
}
