package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/veilproxy/veil/proxy/config"
	"github.com/veilproxy/veil/proxy/policy"
)

var update = flag.Bool("update", false, "rewrite k8s/configmap-policies.yaml from ../policies")

// ---------------------------------------------------------------------------------------
// Veil's metrics

// veilMetrics are the metrics Veil exports (proxy/metrics.go), with their labels.
var veilMetrics = map[string][]string{
	"veil_requests_total":           {"route", "decision"},
	"veil_request_duration_seconds": {"route", "decision"},
	"veil_policy_eval_seconds":      {},
	"veil_upstream_seconds":         {"route"},
	"veil_rewrite_seconds":          {"route"},
	"veil_records_total":            {"route", "resource", "action"},
	"veil_user_records_total":       {"user", "resource"},
	"veil_fields_masked_total":      {"field"},
	"veil_detections_total":         {"detector"},
	"veil_limit_rejections_total":   {"limit"},
	"veil_limit_store_errors_total": {},
	"veil_limit_fail_open_total":    {"route"},
	"veil_audit_errors_total":       {},
	"veil_policy_reloads_total":     {"result"},
	"veil_stream_aborts_total":      {"route"},
	"veil_build_info":               {"version", "goversion"},
}

// veilHistograms are the metrics of veilMetrics that are histograms.
var veilHistograms = []string{"veil_request_duration_seconds", "veil_policy_eval_seconds", "veil_upstream_seconds", "veil_rewrite_seconds"}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// metricLabels returns the labels of a series name a query may select: Veil's metrics, their
// histogram series, and the Go and process collectors' metrics (whose labels are not checked).
func metricLabels(name string) (known []string, anyLabel bool, ok bool) {
	if l, ok := veilMetrics[name]; ok {
		return append(slices.Clone(l), targetLabels...), false, true
	}
	for _, h := range veilHistograms {
		switch name {
		case h + "_bucket":
			return append(slices.Clone(veilMetrics[h]), append(targetLabels, "le")...), false, true
		case h + "_sum", h + "_count":
			return append(slices.Clone(veilMetrics[h]), targetLabels...), false, true
		}
	}
	if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return nil, true, true
	}
	return nil, false, false
}

// TestMetricListMatchesProxy keeps veilMetrics in step with the metrics proxy/metrics.go
// registers, read from its source: the names and label lists of the prometheus.New* calls.
func TestMetricListMatchesProxy(t *testing.T) {
	fset := token.NewFileSet()
	f, err := goparser.ParseFile(fset, filepath.Join("..", "proxy", "metrics.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
			return true
		}
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		name := ""
		for _, e := range opts.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok && fmt.Sprint(kv.Key) == "Name" {
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					name, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		if name == "" {
			return true
		}
		labels := []string{}
		if len(call.Args) > 1 {
			if lst, ok := call.Args[1].(*ast.CompositeLit); ok {
				for _, e := range lst.Elts {
					if lit, ok := e.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						labels = append(labels, s)
					}
				}
			}
		}
		got[name] = labels
		return true
	})
	if diff := cmp.Diff(veilMetrics, got); diff != "" {
		t.Errorf("metrics registered by proxy/metrics.go differ from veilMetrics (-here +proxy):\n%s", diff)
	}
}

// grafanaVars stand in for Grafana's variables so that an expression parses as PromQL.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h", "${route}", ".*", "$route", ".*",
)

// checkPromQL parses expr (after substituting Grafana's variables) and reports every metric
// it selects that Veil does not export, and every label it matches, groups by or joins on
// that its metrics do not have.
func checkPromQL(expr string) []error {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return []error{fmt.Errorf("does not parse: %w", err)}
	}
	var errs []error
	have := map[string]bool{}
	anyLabel := false
	var grouping []string
	selectors := 0
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			selectors++
			known, unchecked, ok := metricLabels(n.Name)
			if !ok {
				errs = append(errs, fmt.Errorf("metric %q is not one Veil exports", n.Name))
				return nil
			}
			anyLabel = anyLabel || unchecked
			for _, l := range known {
				have[l] = true
			}
			for _, m := range n.LabelMatchers {
				if m.Name != model.MetricNameLabel && !unchecked && !slices.Contains(known, m.Name) {
					errs = append(errs, fmt.Errorf("label %q of %s: it has %v", m.Name, n.Name, known))
				}
			}
		case *parser.AggregateExpr:
			grouping = append(grouping, n.Grouping...)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				grouping = append(grouping, n.VectorMatching.MatchingLabels...)
				grouping = append(grouping, n.VectorMatching.Include...)
			}
		}
		return nil
	})
	if selectors == 0 {
		errs = append(errs, errors.New("selects no metric"))
	}
	for _, l := range grouping {
		if !have[l] && !anyLabel {
			errs = append(errs, fmt.Errorf("groups or joins by label %q, which none of its metrics has", l))
		}
	}
	return errs
}

// TestCheckPromQL shows that checkPromQL catches what it is meant to catch.
func TestCheckPromQL(t *testing.T) {
	tests := []struct {
		expr    string
		wantErr bool
	}{
		{`sum by (decision) (rate(veil_requests_total{route=~"$route"}[$__rate_interval]))`, false},
		{`histogram_quantile(0.99, sum by (le) (rate(veil_upstream_seconds_bucket[5m])))`, false},
		{`topk(10, sum by (user) (increase(veil_user_records_total[$__range])))`, false},
		{`sum by (instance) (go_goroutines{job="veil"})`, false},
		{`count(veil_build_info)`, false},
		{`rate(veil_requests_totl[5m])`, true},                                 // misspelt metric
		{`sum by (user) (rate(veil_requests_total[5m]))`, true},                // label it lacks
		{`rate(veil_records_total{decision="deny"}[5m])`, true},                // matcher on a label it lacks
		{`rate(http_requests_total[5m])`, true},                                // not Veil's
		{`up{job="veil"}`, true},                                               // Prometheus', not Veil's
		{`sum(rate(veil_requests_total[5m]`, true},                             // does not parse
		{`histogram_quantile(0.5, rate(veil_policy_eval_seconds[5m]))`, false}, // parses; PromQL cannot tell
		{`vector(1)`, true}, // no metric at all
	}
	for _, tt := range tests {
		errs := checkPromQL(tt.expr)
		if gotErr := len(errs) > 0; gotErr != tt.wantErr {
			t.Errorf("checkPromQL(%q) = %v, want errors: %v", tt.expr, errs, tt.wantErr)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Kubernetes

// kinds are the object kinds deploy/k8s may hold, by apiVersion and kind, with the typed
// object each decodes into.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// splitDocs splits a multi-document YAML file at its "---" lines, dropping documents that
// hold only comments and blank lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		for line := range strings.SplitSeq(cur.String(), "\n") {
			if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
				docs = append(docs, slices.Clone(cur.Bytes()))
				break
			}
		}
		cur.Reset()
	}
	for line := range bytes.Lines(b) {
		if s := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(s, []byte("---")) || bytes.HasPrefix(s, []byte("--- ")) {
			flush()
			continue
		}
		cur.Write(line)
	}
	flush()
	return docs
}

func TestSplitDocs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a: 1\n", []string{"a: 1\n"}},
		{"# header\n---\na: 1\n---\nb: 2\n", []string{"a: 1\n", "b: 2\n"}},
		{"a: 1\n--- # next\nb: |\n  ---x\n", []string{"a: 1\n", "b: |\n  ---x\n"}},
		{"---\n# only a comment\n---\n", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, d := range splitDocs([]byte(tt.in)) {
			got = append(got, string(d))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("splitDocs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// decodeObject decodes one manifest strictly into its typed object: an unknown or duplicate
// field anywhere is an error.
func decodeObject(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("apiVersion %q kind %q is not one deploy/k8s may hold", tm.APIVersion, tm.Kind)
	}
	obj := newObj()
	if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// TestDecodeObjectIsStrict shows that decodeObject refuses what the API server would drop or
// refuse.
func TestDecodeObjectIsStrict(t *testing.T) {
	tests := []struct {
		name, doc string
		wantErr   bool
	}{
		{"valid", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n", false},
		{"unknown field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatas: {k: v}\n", true},
		{"misplaced field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replica: 2}\n", true},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\ndata: {k: w}\n", true},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: two}\n", true},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n", true},
		{"old apiVersion", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: a}\n", true},
	}
	for _, tt := range tests {
		_, err := decodeObject([]byte(tt.doc))
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: decodeObject = %v, want error: %v", tt.name, err, tt.wantErr)
		}
	}
}

// kustomization is the part of kustomization.yaml these manifests use.
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
}

// cluster is every object of deploy/k8s, decoded.
type cluster struct {
	namespace  *corev1.Namespace
	account    *corev1.ServiceAccount
	configMaps map[string]*corev1.ConfigMap
	deployment *appsv1.Deployment
	service    *corev1.Service
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	pdb        *policyv1.PodDisruptionBudget
	netpol     *networkingv1.NetworkPolicy
	files      map[string][]any // objects by file, in order
}

func readStrictYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrictYAML(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// decodeStrictYAML decodes one YAML document into v, refusing keys v has no field for.
func decodeStrictYAML(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func loadCluster(t *testing.T) *cluster {
	t.Helper()
	var k kustomization
	readStrictYAML(t, filepath.Join("k8s", "kustomization.yaml"), &k)
	c := &cluster{configMaps: map[string]*corev1.ConfigMap{}, files: map[string][]any{}}
	one := func(kind string, have bool) {
		if have {
			t.Fatalf("deploy/k8s holds more than one %s", kind)
		}
	}
	for _, res := range k.Resources {
		b, err := os.ReadFile(filepath.Join("k8s", res))
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", res, err)
		}
		docs := splitDocs(b)
		if len(docs) == 0 {
			t.Fatalf("%s holds no object", res)
		}
		for i, doc := range docs {
			obj, err := decodeObject(doc)
			if err != nil {
				t.Fatalf("%s, document %d: %v", res, i+1, err)
			}
			c.files[res] = append(c.files[res], obj)
			switch o := obj.(type) {
			case *corev1.Namespace:
				one("Namespace", c.namespace != nil)
				c.namespace = o
			case *corev1.ServiceAccount:
				one("ServiceAccount", c.account != nil)
				c.account = o
			case *corev1.ConfigMap:
				if c.configMaps[o.Name] != nil {
					t.Fatalf("ConfigMap %s defined twice", o.Name)
				}
				c.configMaps[o.Name] = o
			case *appsv1.Deployment:
				one("Deployment", c.deployment != nil)
				c.deployment = o
			case *corev1.Service:
				one("Service", c.service != nil)
				c.service = o
			case *autoscalingv2.HorizontalPodAutoscaler:
				one("HorizontalPodAutoscaler", c.hpa != nil)
				c.hpa = o
			case *policyv1.PodDisruptionBudget:
				one("PodDisruptionBudget", c.pdb != nil)
				c.pdb = o
			case *networkingv1.NetworkPolicy:
				one("NetworkPolicy", c.netpol != nil)
				c.netpol = o
			}
		}
	}
	for kind, missing := range map[string]bool{
		"Namespace": c.namespace == nil, "ServiceAccount": c.account == nil, "Deployment": c.deployment == nil,
		"Service": c.service == nil, "HorizontalPodAutoscaler": c.hpa == nil, "PodDisruptionBudget": c.pdb == nil,
		"NetworkPolicy": c.netpol == nil,
	} {
		if missing {
			t.Fatalf("deploy/k8s has no %s", kind)
		}
	}
	return c
}

// container returns the Deployment's Veil container.
func (c *cluster) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := c.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(cs))
	}
	return &cs[0]
}

func (c *cluster) podLabels() labels.Set { return c.deployment.Spec.Template.Labels }

// veilConfig parses the veil.yaml of the veil-config ConfigMap as Veil does.
func (c *cluster) veilConfig(t *testing.T) *config.Config {
	t.Helper()
	cm := c.configMaps["veil-config"]
	if cm == nil {
		t.Fatal("no ConfigMap veil-config")
	}
	cfg, err := config.Parse("k8s/configmap-veil.yaml:veil.yaml", []byte(cm.Data["veil.yaml"]))
	if err != nil {
		t.Fatalf("veil.yaml in ConfigMap veil-config: %v", err)
	}
	return cfg
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	var k kustomization
	readStrictYAML(t, filepath.Join("k8s", "kustomization.yaml"), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kustomization.yaml resources differ from the manifests in deploy/k8s (-files +resources):\n%s", diff)
	}
	c := loadCluster(t)
	for file, objs := range c.files {
		for _, o := range objs {
			meta := o.(metav1.ObjectMetaAccessor).GetObjectMeta()
			ns := meta.GetNamespace()
			if _, isNS := o.(*corev1.Namespace); isNS {
				if meta.GetName() != k.Namespace {
					t.Errorf("%s: Namespace %q, want %q as kustomization.yaml says", file, meta.GetName(), k.Namespace)
				}
			} else if ns != k.Namespace {
				t.Errorf("%s: %s is in namespace %q, want %q", file, meta.GetName(), ns, k.Namespace)
			}
			if meta.GetLabels()["app.kubernetes.io/part-of"] != "veil" {
				t.Errorf("%s: %s lacks the label app.kubernetes.io/part-of: veil", file, meta.GetName())
			}
		}
	}
	if got := c.namespace.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace pod-security.kubernetes.io/enforce = %q, want restricted", got)
	}
}

// imagePinned reports whether an image reference names a tag other than latest, or a digest.
func imagePinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != "" && tag != "latest"
}

func TestImagePinned(t *testing.T) {
	for image, want := range map[string]bool{
		"redis:7.4.2-alpine": true, "ghcr.io/veilproxy/veil:0.1.0": true, "localhost:5000/veil:1": true,
		"veil@sha256:0123": true, "redis": false, "redis:latest": false, "localhost:5000/veil": false,
	} {
		if got := imagePinned(image); got != want {
			t.Errorf("imagePinned(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestDeployment(t *testing.T) {
	c := loadCluster(t)
	d := c.deployment
	pod := d.Spec.Template.Spec
	ctr := c.container(t)

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas = %v, want 2", d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(c.podLabels()) {
		t.Errorf("Deployment selector %v does not select its pod labels %v (%v)", d.Spec.Selector, c.podLabels(), err)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update maxUnavailable = %v, want 0 (a rollout never drops below the replica count)", ru)
	}
	if pod.ServiceAccountName != c.account.Name {
		t.Errorf("serviceAccountName = %q, want %q", pod.ServiceAccountName, c.account.Name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: Veil needs no Kubernetes API token")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("pod shares the host's network, PID or IPC namespace")
	}
	if !imagePinned(ctr.Image) {
		t.Errorf("image %q is not pinned to a tag or digest", ctr.Image)
	}

	// Security context: the restricted Pod Security Standard and then some.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Error("pod securityContext.runAsUser is not 65532 (the image's nonroot user)")
	}
	if psc == nil || psc.FSGroup == nil || *psc.FSGroup != 65532 {
		t.Error("pod securityContext.fsGroup is not 65532: the audit volume would not be writable")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	sc := ctr.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("container is privileged")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities = %+v, want drop [ALL] and nothing added", sc.Capabilities)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container runAsNonRoot is not true")
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container seccompProfile is not RuntimeDefault")
	}

	// Resources: requests and limits for CPU and memory, requests within limits.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := ctr.Resources.Requests[r]
		lim, okLim := ctr.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("resources: %s request or limit missing", r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("resources: %s request %s > limit %s", r, req.String(), lim.String())
		}
	}
	if env := envValue(ctr, "GOMEMLIMIT"); env == "" {
		t.Error("GOMEMLIMIT is not set: the Go heap would grow to the memory limit before collecting hard")
	} else {
		ml, err := parseGoMemLimit(env)
		lim := ctr.Resources.Limits[corev1.ResourceMemory]
		if err != nil || ml >= lim.Value() || ml < lim.Value()*7/10 {
			t.Errorf("GOMEMLIMIT = %s (%d bytes, %v), want 70-99%% of the memory limit %s", env, ml, err, lim.String())
		}
	}

	// Probes on the named admin port.
	ports := map[string]int32{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", ctr.StartupProbe, "/healthz"},
		{"livenessProbe", ctr.LivenessProbe, "/healthz"},
		{"readinessProbe", ctr.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s is not an httpGet probe", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			t.Errorf("%s path = %q, want %q", p.name, g.Path, p.path)
		}
		if g.Port.Type != intstr.String || g.Port.StrVal != "admin" {
			t.Errorf("%s port = %s, want the named port admin", p.name, g.Port.String())
		}
		if _, ok := ports[g.Port.String()]; !ok {
			t.Errorf("%s port %s is not a container port (%v)", p.name, g.Port.String(), ports)
		}
	}

	// Volumes: every mount names a volume; ConfigMaps exist with the keys asked for and are
	// never mounted with subPath (which would freeze them: no hot reload).
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range ctr.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Errorf("volumeMount %s names no volume", m.Name)
			continue
		}
		if v.ConfigMap != nil && m.SubPath != "" {
			t.Errorf("volumeMount %s uses subPath: ConfigMap updates would never reach the pod", m.Name)
		}
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := c.configMaps[v.ConfigMap.Name]
		if cm == nil {
			t.Errorf("volume %s: ConfigMap %s is not in deploy/k8s", v.Name, v.ConfigMap.Name)
			continue
		}
		if len(cm.Data) == 0 {
			t.Errorf("volume %s: ConfigMap %s is empty", v.Name, cm.Name)
		}
		for _, it := range v.ConfigMap.Items {
			if _, ok := cm.Data[it.Key]; !ok {
				t.Errorf("volume %s: ConfigMap %s has no key %q", v.Name, cm.Name, it.Key)
			}
		}
	}

	// Environment from the Secret the operations guide tells you to create.
	ops := readOpsDoc(t)
	for _, e := range ctr.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != "veil-secrets" {
			t.Errorf("env %s comes from Secret %q, want veil-secrets", e.Name, ref.Name)
		}
		if !strings.Contains(ops, "--from-literal="+ref.Key+"=") {
			t.Errorf("env %s needs key %q of Secret %s, which docs/operations.md's kubectl create secret does not create", e.Name, ref.Key, ref.Name)
		}
	}

	// Shutdown: the grace period covers the preStop pause and Veil's own drain.
	cfg := c.veilConfig(t)
	pause := int64(0)
	if lc := ctr.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
		pause = lc.PreStop.Sleep.Seconds
	} else {
		t.Error("no preStop sleep: the pod would stop accepting before its endpoint is removed everywhere")
	}
	grace := int64(30)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = *pod.TerminationGracePeriodSeconds
	}
	need := time.Duration(pause)*time.Second + cfg.Server.ShutdownTimeout.D() + tracingFlush
	if time.Duration(grace)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds = %d, want more than preStop %ds + shutdown_timeout %v + span flush %v",
			grace, pause, cfg.Server.ShutdownTimeout.D(), tracingFlush)
	}
}

// tracingFlush is how long Veil waits for pending spans after draining (cmd/veil's
// app.Close), on top of server.shutdown_timeout.
const tracingFlush = 5 * time.Second

func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// parseGoMemLimit parses a GOMEMLIMIT value: bytes with an optional B, KiB, MiB, GiB or TiB
// suffix.
func parseGoMemLimit(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func TestKubernetesVeilConfig(t *testing.T) {
	c := loadCluster(t)
	ctr := c.container(t)
	cfg := c.veilConfig(t)

	// The listeners are the container's named ports, the admin one not on loopback (kubelet
	// and Prometheus reach it from outside the pod).
	ports := map[string]int32{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, l := range []struct{ port, addr string }{{"http", cfg.Listen}, {"admin", cfg.AdminListen}} {
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			t.Errorf("listen address %q: %v", l.addr, err)
			continue
		}
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("%s listens on %q: the pod's port %s would be unreachable", l.port, l.addr, l.port)
		}
		if strconv.Itoa(int(ports[l.port])) != port {
			t.Errorf("veil.yaml listens on %s for %s, container port %s is %d", l.addr, l.port, l.port, ports[l.port])
		}
	}

	// The config file is where the args say, the policy and audit paths are the mounts.
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if want := []string{"serve", "-c", path.Join(mounts["config"], "veil.yaml")}; !slices.Equal(ctr.Args, want) {
		t.Errorf("container args = %q, want %q", ctr.Args, want)
	}
	if got, want := path.Join(cfg.Policy.Dir, "veil"), mounts["policies"]; got != want {
		t.Errorf("policy.dir %q holds the policies ConfigMap at %s, want it mounted there (mounted at %q)", cfg.Policy.Dir, got, want)
	}
	if got := path.Dir(cfg.Audit.File); got != mounts["audit"] {
		t.Errorf("audit.file %q is not on the audit volume (mounted at %q): the root filesystem is read-only", cfg.Audit.File, mounts["audit"])
	}
	auditVol := volume(c.deployment, "audit")
	if auditVol == nil || auditVol.EmptyDir == nil && auditVol.PersistentVolumeClaim == nil {
		t.Error("the audit volume is neither an emptyDir nor a PVC")
	} else if ed := auditVol.EmptyDir; ed != nil {
		// Rotated files stay until shipped: leave room for several before eviction.
		min := resource.NewQuantity(4*int64(cfg.Audit.MaxBytes), resource.BinarySI)
		if ed.SizeLimit == nil || ed.SizeLimit.Cmp(*min) < 0 {
			t.Errorf("audit emptyDir sizeLimit = %v, want at least 4 x audit.max_bytes = %s", ed.SizeLimit, min.String())
		}
	}

	// Secrets come from the environment, set on the container.
	for _, env := range []string{cfg.Limits.PasswordEnv, cfg.Mask.HashKeyEnv} {
		found := false
		for _, e := range ctr.Env {
			found = found || e.Name == env && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		}
		if !found {
			t.Errorf("veil.yaml reads %s, which the container does not take from a Secret", env)
		}
	}
	if cfg.Limits.RedisURL == "" {
		t.Error("limits.redis_url is empty: replicas would not share budgets")
	}
	if cfg.Tracing.Exporter != "otlp" {
		t.Errorf("tracing.exporter = %q, want otlp to the collector", cfg.Tracing.Exporter)
	}
	if !c.configMapHasPolicy() {
		t.Error("ConfigMap veil-policies holds no decision policy")
	}
}

func (c *cluster) configMapHasPolicy() bool {
	cm := c.configMaps["veil-policies"]
	return cm != nil && strings.Contains(cm.Data["decision.rego"], "package veil")
}

func volume(d *appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func TestServiceHPAAndPDB(t *testing.T) {
	c := loadCluster(t)
	ctr := c.container(t)
	pods := c.podLabels()

	// Service: selects the pods, its target ports are the container's named ports.
	if len(c.service.Spec.Selector) == 0 || !labels.SelectorFromSet(c.service.Spec.Selector).Matches(pods) {
		t.Errorf("Service selector %v does not select the pods %v", c.service.Spec.Selector, pods)
	}
	for _, p := range c.service.Spec.Ports {
		if !hasPort(ctr, p.TargetPort) {
			t.Errorf("Service port %s targets %s, which the container does not expose", p.Name, p.TargetPort.String())
		}
	}

	// HPA: scales this Deployment on CPU, never below two replicas.
	h := c.hpa.Spec
	ref := h.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != c.deployment.Name {
		t.Errorf("HPA targets %s %s %s, want apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, c.deployment.Name)
	}
	if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas <= *h.MinReplicas {
		t.Errorf("HPA replicas %v..%d, want at least 2 and room to grow", h.MinReplicas, h.MaxReplicas)
	}
	cpu := false
	for _, m := range h.Metrics {
		cpu = cpu || m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil
	}
	if !cpu {
		t.Error("HPA has no CPU utilization target")
	}
	if _, ok := ctr.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("the container has no CPU request, which a CPU utilization target needs")
	}

	// PDB: covers the pods and leaves room to evict one.
	sel, err := metav1.LabelSelectorAsSelector(c.pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(pods) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods %v (%v)", c.pdb.Spec.Selector, pods, err)
	}
	if ma := c.pdb.Spec.MinAvailable; ma == nil || ma.Type != intstr.Int || ma.IntValue() < 1 || h.MinReplicas != nil && int32(ma.IntValue()) >= *h.MinReplicas {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want at least 1 and below the HPA's minimum", ma)
	}
}

func hasPort(c *corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return true
		}
	}
	return false
}

func TestNetworkPolicy(t *testing.T) {
	c := loadCluster(t)
	ctr := c.container(t)
	np := c.netpol.Spec
	sel, err := metav1.LabelSelectorAsSelector(&np.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(c.podLabels()) {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods", np.PodSelector)
	}
	if !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes = %v, want Ingress and Egress", np.PolicyTypes)
	}

	// Ingress: the proxy port from every namespace, the admin port from monitoring only, and
	// nothing else.
	for _, r := range np.Ingress {
		if len(r.Ports) == 0 || len(r.From) == 0 {
			t.Errorf("ingress rule %+v opens every port or admits every peer", r)
		}
		for _, p := range r.Ports {
			if p.Port == nil || !hasPort(ctr, *p.Port) {
				t.Errorf("ingress port %v is not a container port", p.Port)
				continue
			}
			switch p.Port.String() {
			case "http":
				for _, f := range r.From {
					if f.NamespaceSelector == nil || f.PodSelector != nil || f.IPBlock != nil {
						t.Errorf("ingress to http from %+v, want every namespace ({})", f)
					}
				}
			case "admin":
				for _, f := range r.From {
					if f.NamespaceSelector == nil || f.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
						t.Errorf("ingress to admin from %+v, want the monitoring namespace only", f)
					}
				}
			default:
				t.Errorf("ingress opens port %s, want only http and admin", p.Port.String())
			}
		}
	}
	for _, name := range []string{"http", "admin"} {
		if !ingressOpens(np.Ingress, name) {
			t.Errorf("no ingress rule opens the %s port", name)
		}
	}

	// Egress: every destination in veil.yaml, and DNS.
	cfg := c.veilConfig(t)
	type dest struct{ what, rawURL string }
	dests := []dest{
		{"limits.redis_url", cfg.Limits.RedisURL},
		{"tracing.endpoint", "grpc://" + cfg.Tracing.Endpoint},
	}
	if j := cfg.Identity.JWT; j != nil && j.JWKSURL != "" {
		dests = append(dests, dest{"identity.jwt.jwks_url", j.JWKSURL})
	}
	for _, r := range cfg.Routes {
		dests = append(dests, dest{"routes[" + r.Name + "].upstream", r.Upstream})
	}
	for _, d := range dests {
		u, err := url.Parse(d.rawURL)
		if err != nil {
			t.Errorf("%s %q: %v", d.what, d.rawURL, err)
			continue
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443", "redis": "6379", "rediss": "6379"}[u.Scheme]
		}
		n, _ := strconv.Atoi(port)
		if !egressAllows(np.Egress, c.deployment.Namespace, u.Hostname(), int32(n), corev1.ProtocolTCP) {
			t.Errorf("%s %s: no egress rule allows %s port %s", d.what, d.rawURL, u.Hostname(), port)
		}
	}
	for _, proto := range []corev1.Protocol{corev1.ProtocolUDP, corev1.ProtocolTCP} {
		if !egressAllows(np.Egress, c.deployment.Namespace, "kube-dns.kube-system.svc.cluster.local", 53, proto) {
			t.Errorf("no egress rule allows DNS (kube-system, %s 53)", proto)
		}
	}
	for _, r := range np.Egress {
		if len(r.Ports) == 0 || len(r.To) == 0 {
			t.Errorf("egress rule %+v opens every port or every destination", r)
		}
	}
}

func ingressOpens(rules []networkingv1.NetworkPolicyIngressRule, port string) bool {
	for _, r := range rules {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.String() == port {
				return true
			}
		}
	}
	return false
}

// egressAllows reports whether some egress rule lets the pods reach host:port. A cluster
// service name (name.namespace.svc…) must be reached through a peer in that namespace (the
// pods' own when the peer names none); any other host through an ipBlock.
func egressAllows(rules []networkingv1.NetworkPolicyEgressRule, podNS, host string, port int32, proto corev1.Protocol) bool {
	svcNS := ""
	if parts := strings.Split(host, "."); len(parts) >= 3 && parts[2] == "svc" {
		svcNS = parts[1]
	}
	for _, r := range rules {
		portOK := false
		for _, p := range r.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			portOK = portOK || pp == proto && p.Port != nil && p.Port.Type == intstr.Int && p.Port.IntVal == port
		}
		if !portOK {
			continue
		}
		for _, to := range r.To {
			switch {
			case svcNS == "" && to.IPBlock != nil:
				return true
			case svcNS != "" && to.IPBlock == nil && to.NamespaceSelector == nil && svcNS == podNS:
				return true
			case svcNS != "" && to.NamespaceSelector != nil && to.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == svcNS:
				return true
			}
		}
	}
	return false
}

// policyFile reports whether Veil's policy loader reads a file of this name
// (proxy/policy/load.go).
func policyFile(name string) bool {
	return strings.HasSuffix(name, ".rego") || name == "data.json" || name == "data.yaml" || name == "data.yml"
}

// shippedPolicies reads the policy files of ../policies. They must all sit in
// ../policies/veil: a ConfigMap is flat, and it is mounted at <policy.dir>/veil.
func shippedPolicies(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "policies")
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !policyFile(d.Name()) {
			return err
		}
		if filepath.Dir(p) != filepath.Join(root, "veil") {
			return fmt.Errorf("%s is outside policies/veil: a flat ConfigMap cannot hold it; extend k8s/ for subdirectories", p)
		}
		b, err := os.ReadFile(p)
		files[d.Name()] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no policy files in ../policies/veil")
	}
	return files
}

const policiesHeader = `# The shipped policy (policies/veil/ in the repository, tests included) as a ConfigMap, mounted
# at /etc/veil/policies/veil. Edit the files in policies/, run ` + "`veil check`" + `, then regenerate:
#   go test ./deploy/ -run TestPolicyConfigMap -update
# Veil hot-reloads it when the kubelet updates the mount (within about a minute); a broken
# policy is refused and the last good one keeps serving. GENERATED: do not edit by hand.
`

// policyConfigMap renders the veil-policies ConfigMap: every file a literal block scalar,
// byte-exact (tabs, blank lines and trailing newlines kept).
func policyConfigMap(files map[string]string) ([]byte, error) {
	var b strings.Builder
	b.WriteString(policiesHeader)
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: veil-policies\n  namespace: veil\n  labels:\n")
	b.WriteString("    app.kubernetes.io/name: veil\n    app.kubernetes.io/part-of: veil\ndata:\n")
	for _, name := range slices.Sorted(maps.Keys(files)) {
		content := files[name]
		for i, r := range content {
			if r != '\n' && r != '\t' && (r < 0x20 || r == 0x7f || r == 0xfeff) {
				return nil, fmt.Errorf("%s: character %U at byte %d cannot be written in a YAML block scalar", name, r, i)
			}
		}
		chomp := "+"
		switch {
		case strings.Trim(content, "\n") == "" && content != "":
			// Only line breaks: kept whole by "+".
		case !strings.HasSuffix(content, "\n"):
			chomp = "-"
		case !strings.HasSuffix(content, "\n\n"):
			chomp = ""
		}
		indicator := ""
		if strings.HasPrefix(strings.TrimLeft(content, "\n"), " ") {
			indicator = "2"
		}
		fmt.Fprintf(&b, "  %s: |%s%s\n", name, indicator, chomp)
		// Every line of the content, its line break included; blank lines carry no
		// indentation. The chomping indicator above restores the end exactly.
		for line := range strings.SplitSeq(strings.TrimSuffix(content, "\n"), "\n") {
			if line != "" {
				b.WriteString("    " + line)
			}
			b.WriteString("\n")
		}
	}
	return []byte(b.String()), nil
}

func TestPolicyConfigMap(t *testing.T) {
	files := shippedPolicies(t)
	want, err := policyConfigMap(files)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("k8s", "configmap-policies.yaml")
	if *update {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := decodeObject(got)
	if err != nil {
		t.Fatal(err)
	}
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || cm.Name != "veil-policies" {
		t.Fatalf("%s holds %T, want ConfigMap veil-policies", file, obj)
	}
	if diff := cmp.Diff(files, cm.Data); diff != "" {
		t.Errorf("%s differs from policies/veil (-policies +ConfigMap); run go test ./deploy/ -run TestPolicyConfigMap -update:\n%s", file, diff)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not as generated; run go test ./deploy/ -run TestPolicyConfigMap -update", file)
	}
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	if size > 900<<10 {
		t.Errorf("policies take %d bytes, near the 1 MiB ConfigMap limit: serve them as an OPA bundle instead", size)
	}
}

// TestPolicyConfigMapRoundTrip feeds policyConfigMap the shapes a file may take and checks
// that the ConfigMap decodes to exactly the same bytes.
func TestPolicyConfigMapRoundTrip(t *testing.T) {
	files := map[string]string{
		"a.rego":      "package veil\n\nallow if {\n\ttrue\n}\n",
		"b.rego":      "no trailing newline",
		"c.rego":      "two trailing newlines\n\n",
		"d.rego":      "  leading spaces\n\tand a tab\n",
		"e.rego":      "\n\nleading blank lines\n",
		"data.json":   "{\"k\": \"# not a comment\", \"v\": \"a: b\"}\n",
		"f_test.rego": "trailing spaces   \n  \n",
		"g.rego":      "",
		"h.rego":      "\n",
		"i.rego":      "  \nindented after a blank-looking line\n",
	}
	out, err := policyConfigMap(files)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := decodeObject(out)
	if err != nil {
		t.Fatalf("decode:\n%s\n%v", out, err)
	}
	cm := obj.(*corev1.ConfigMap)
	data := cm.Data
	if data == nil {
		data = map[string]string{}
	}
	if diff := cmp.Diff(files, data); diff != "" {
		t.Errorf("policyConfigMap round trip (-files +decoded):\n%s\n%s", diff, out)
	}
	if _, err := policyConfigMap(map[string]string{"x.rego": "bell\a"}); err == nil {
		t.Error("policyConfigMap accepted a control character")
	}
}

// kubeletMount lays files out in dir the way the kubelet mounts a ConfigMap volume: the
// files in a hidden timestamped directory, a "..data" symlink to it, and one symlink per key
// through "..data". Each update writes a new directory and swaps "..data" atomically.
type kubeletMount struct {
	dir     string
	version int
}

func (m *kubeletMount) write(t *testing.T, files map[string]string) {
	t.Helper()
	m.version++
	ts := fmt.Sprintf("..2026_11_28_09_00_%02d.%d", m.version, m.version)
	if err := os.MkdirAll(filepath.Join(m.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(m.dir, ts, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(m.dir, "..data"))
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(m.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(m.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyConfigMapHotReload mounts the veil-policies ConfigMap the way the kubelet does,
// at <policy.dir>/veil, and checks what docs/operations.md promises: Veil loads it with the
// same revision as the repository's policies/ (the one `veil check` prints), picks up an
// update of the ConfigMap without a restart, and refuses a broken one, keeping the last good
// policy.
func TestPolicyConfigMapHotReload(t *testing.T) {
	c := loadCluster(t)
	files := c.configMaps["veil-policies"].Data
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	root := t.TempDir()
	mount := &kubeletMount{dir: filepath.Join(root, "veil")}
	mount.write(t, files)

	type reload struct {
		rev string
		err error
	}
	reloads := make(chan reload, 64)
	report := func(rev string, err error) {
		select {
		case reloads <- reload{rev, err}:
		default: // never block the watcher, even after the test stopped reading
		}
	}
	eng, err := policy.New(ctx, policy.Options{FS: os.DirFS(root), Dir: root, OnReload: report})
	if err != nil {
		t.Fatalf("policy.New over the mounted ConfigMap: %v", err)
	}
	<-reloads
	repo, err := policy.New(ctx, policy.Options{FS: os.DirFS(filepath.Join("..", "policies"))})
	if err != nil {
		t.Fatal(err)
	}
	if eng.Revision() != repo.Revision() {
		t.Errorf("revision of the mounted ConfigMap = %s, of policies/ = %s", eng.Revision(), repo.Revision())
	}

	watchErr := make(chan error, 1)
	go func() { watchErr <- eng.Watch(ctx) }()

	// next writes an update until a reload reports something other than the revision
	// serving now (the watch may not be set up when the first write lands, and one update
	// may be reported more than once), and returns that report.
	good := eng.Revision()
	next := func(update func(attempt int) map[string]string) reload {
		t.Helper()
		for attempt := range 5 {
			mount.write(t, update(attempt))
			deadline := time.After(3 * time.Second)
		wait:
			for {
				select {
				case r := <-reloads:
					if r.err != nil || r.rev != good {
						return r
					}
				case err := <-watchErr:
					t.Fatalf("Watch returned: %v", err)
				case <-deadline:
					break wait
				}
			}
		}
		t.Fatal("no reload after 5 ConfigMap updates")
		return reload{}
	}

	r := next(func(attempt int) map[string]string {
		up := maps.Clone(files)
		up["data.json"] = strings.Replace(files["data.json"], "{", fmt.Sprintf(`{"deploy_test_update": %d,`, attempt), 1)
		return up
	})
	if r.err != nil || eng.Revision() != r.rev {
		t.Fatalf("after a ConfigMap update: reload (%s, %v), serving %s; want the new revision", r.rev, r.err, eng.Revision())
	}
	good = r.rev

	r = next(func(attempt int) map[string]string {
		up := maps.Clone(files)
		up["decision.rego"] = fmt.Sprintf("package veil\n\ndecision := {%d\n", attempt)
		return up
	})
	if r.err == nil {
		t.Errorf("a broken decision.rego was accepted (revision %s)", r.rev)
	}
	if eng.Revision() != good {
		t.Errorf("after a broken update Veil serves %s, want the last good %s", eng.Revision(), good)
	}
}

// ---------------------------------------------------------------------------------------
// Docker Compose

// composeFile is the part of the Compose specification deploy/docker-compose.yml uses;
// decoding refuses any other key.
type composeFile struct {
	XVeil    composeService            `yaml:"x-veil"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]struct{}       `yaml:"volumes"`
}

type composeService struct {
	Build           *composeBuild             `yaml:"build"`
	Image           string                    `yaml:"image"`
	Command         []string                  `yaml:"command"`
	User            string                    `yaml:"user"`
	Hostname        string                    `yaml:"hostname"`
	ReadOnly        bool                      `yaml:"read_only"`
	CapDrop         []string                  `yaml:"cap_drop"`
	SecurityOpt     []string                  `yaml:"security_opt"`
	Environment     map[string]string         `yaml:"environment"`
	StopGracePeriod string                    `yaml:"stop_grace_period"`
	Restart         string                    `yaml:"restart"`
	DependsOn       map[string]composeDepends `yaml:"depends_on"`
	Volumes         []string                  `yaml:"volumes"`
	Tmpfs           []string                  `yaml:"tmpfs"`
	Ports           []string                  `yaml:"ports"`
	Healthcheck     *composeHealthcheck       `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeDepends struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test     []string `yaml:"test"`
	Interval string   `yaml:"interval"`
	Timeout  string   `yaml:"timeout"`
	Retries  int      `yaml:"retries"`
}

// composeMount is one short-syntax volume entry.
type composeMount struct {
	source, target string
	bind           bool // source is a path relative to deploy/, else a named volume
	readOnly       bool
}

func (s composeService) mounts() []composeMount {
	var ms []composeMount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := composeMount{source: parts[0], target: parts[1]}
		m.bind = strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/")
		m.readOnly = len(parts) > 2 && parts[2] == "ro"
		ms = append(ms, m)
	}
	return ms
}

// hostPath returns the file or directory of the repository that is mounted at target in the
// container, following a directory mount down to the file; "" when nothing is.
func (s composeService) hostPath(target string) string {
	for _, m := range s.mounts() {
		if !m.bind {
			continue
		}
		if target == m.target {
			return filepath.Clean(m.source)
		}
		if rel, ok := strings.CutPrefix(target, m.target+"/"); ok {
			return filepath.Join(m.source, filepath.FromSlash(rel))
		}
	}
	return ""
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var f composeFile
	readStrictYAML(t, "docker-compose.yml", &f)
	return f
}

// replicas returns the services that run `veil serve`, by name.
func (f composeFile) replicas() map[string]composeService {
	rs := map[string]composeService{}
	for name, s := range f.Services {
		if len(s.Command) > 0 && s.Command[0] == "serve" {
			rs[name] = s
		}
	}
	return rs
}

// composeVeilConfig parses the config the replica mounts, as Veil does.
func composeVeilConfig(t *testing.T, s composeService) (*config.Config, string, string) {
	t.Helper()
	i := slices.Index(s.Command, "-c")
	if i < 0 || i+1 >= len(s.Command) {
		t.Fatalf("command %q names no -c config", s.Command)
	}
	inContainer := s.Command[i+1]
	host := s.hostPath(inContainer)
	if host == "" {
		t.Fatalf("the config %s is not mounted from the repository", inContainer)
	}
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(host, b)
	if err != nil {
		t.Fatalf("%s: %v", host, err)
	}
	return cfg, inContainer, host
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return h, p
}

func TestCompose(t *testing.T) {
	f := loadCompose(t)

	// Every image pinned, every dependency and named volume defined, every bind mount there.
	for name, s := range f.Services {
		if !imagePinned(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a tag or digest", name, s.Image)
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("service %s: build: %v", name, err)
			}
		}
		for dep, cond := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which is not defined", name, dep)
			}
			if !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, cond.Condition) {
				t.Errorf("service %s depends on %s with condition %q", name, dep, cond.Condition)
			}
			if cond.Condition == "service_healthy" && f.Services[dep].Healthcheck == nil {
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
		for _, m := range s.mounts() {
			if m.bind {
				if _, err := os.Stat(m.source); err != nil {
					t.Errorf("service %s mounts %s: %v", name, m.source, err)
				}
				if !m.readOnly {
					t.Errorf("service %s mounts %s read-write, want :ro", name, m.source)
				}
			} else if _, ok := f.Volumes[m.source]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, m.source)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s on every interface, want 127.0.0.1 only", name, p)
			}
		}
	}

	// Two Veil replicas built from the repository's Dockerfile, hardened alike, each with its
	// own audit volume (one process per audit file).
	rs := f.replicas()
	if got := slices.Sorted(maps.Keys(rs)); !slices.Equal(got, []string{"veil-1", "veil-2"}) {
		t.Fatalf("services running veil serve = %v, want [veil-1 veil-2]", got)
	}
	auditVolumes := map[string]string{}
	for name, s := range rs {
		if s.Build == nil || filepath.Clean(filepath.Join(s.Build.Context, s.Build.Dockerfile)) != filepath.Join("..", "Dockerfile") {
			t.Errorf("%s is not built from the repository's Dockerfile: %+v", name, s.Build)
		}
		if !s.ReadOnly || s.User != "65532:65532" || !slices.Equal(s.CapDrop, []string{"ALL"}) || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: read_only %v user %q cap_drop %v security_opt %v, want true, 65532:65532, [ALL], no-new-privileges", name, s.ReadOnly, s.User, s.CapDrop, s.SecurityOpt)
		}
		cfg, _, host := composeVeilConfig(t, s)
		if host != filepath.Join("compose", "veil.yaml") {
			t.Errorf("%s runs %s, want compose/veil.yaml", name, host)
		}
		auditDir, onVolume := path.Dir(cfg.Audit.File), false
		for _, m := range s.mounts() {
			if m.target == auditDir && !m.bind {
				if other, dup := auditVolumes[m.source]; dup {
					t.Errorf("%s and %s share audit volume %s: each Veil needs its own audit file", name, other, m.source)
				}
				auditVolumes[m.source], onVolume = name, true
			}
		}
		if !onVolume {
			t.Errorf("%s: audit.file %s is not on a named volume (the root filesystem is read-only)", name, cfg.Audit.File)
		}
		for _, env := range []string{cfg.Limits.PasswordEnv, cfg.Mask.HashKeyEnv} {
			if s.Environment[env] == "" {
				t.Errorf("%s: veil.yaml reads %s, which the service does not set", name, env)
			}
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || grace <= cfg.Server.ShutdownTimeout.D()+tracingFlush {
			t.Errorf("%s: stop_grace_period %q, want longer than shutdown_timeout %v + span flush %v",
				name, s.StopGracePeriod, cfg.Server.ShutdownTimeout.D(), tracingFlush)
		}
	}
	chown, ok := f.Services["audit-init"]
	if !ok {
		t.Fatal("no audit-init service to hand the audit volumes to uid 65532")
	}
	for vol, replica := range auditVolumes {
		mounted := false
		for _, m := range chown.mounts() {
			mounted = mounted || m.source == vol && slices.Contains(chown.Command, m.target)
		}
		if !mounted || !slices.Contains(chown.Command, "65532:65532") {
			t.Errorf("audit-init does not chown %s (of %s) to 65532:65532: %q", vol, replica, chown.Command)
		}
		if dep := f.Services[replica].DependsOn["audit-init"]; dep.Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for audit-init to complete (condition %q)", replica, dep.Condition)
		}
	}
}

func TestComposeVeilConfig(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.replicas() {
		cfg, inContainer, host := composeVeilConfig(t, s)

		// policy.dir names the same policies in the checkout and in the container.
		if cfg.Policy.Dir == "" || filepath.IsAbs(cfg.Policy.Dir) {
			t.Errorf("%s: policy.dir %q, want a relative directory (see compose/veil.yaml)", name, cfg.Policy.Dir)
			continue
		}
		inRepo := filepath.Join(filepath.Dir(host), cfg.Policy.Dir)
		if _, err := os.Stat(filepath.Join(inRepo, "veil", "decision.rego")); err != nil {
			t.Errorf("%s: policy.dir %s in the checkout: %v", name, inRepo, err)
		}
		inCtr := path.Join(path.Dir(inContainer), cfg.Policy.Dir)
		if got := s.hostPath(inCtr); got != filepath.Clean(inRepo) {
			t.Errorf("%s: policy.dir is %s in the container, mounted from %q, want %s", name, inCtr, got, inRepo)
		}

		// Every dependency the config names is a service of the compose file, on its port.
		redisHost, redisPort := hostPort(t, cfg.Limits.RedisURL)
		if redisHost != "redis" || redisPort != "6379" {
			t.Errorf("%s: limits.redis_url %s, want redis:6379", name, cfg.Limits.RedisURL)
		}
		pw := s.Environment[cfg.Limits.PasswordEnv]
		if r := f.Services["redis"]; !slices.Contains(r.Command, pw) || r.Environment["REDISCLI_AUTH"] != pw {
			t.Errorf("%s: Redis does not require the password %s the replicas send (%q)", name, cfg.Limits.PasswordEnv, pw)
		}
		trHost, trPort := hostPort(t, cfg.Tracing.Endpoint)
		if _, ok := f.Services[trHost]; !ok || cfg.Tracing.Exporter != "otlp" || !cfg.Tracing.Insecure {
			t.Errorf("%s: tracing %s to %s, want otlp, insecure, to a compose service", name, cfg.Tracing.Exporter, cfg.Tracing.Endpoint)
		}
		if got := collectorGRPCPort(t); got != trPort {
			t.Errorf("%s: tracing.endpoint port %s, the collector's OTLP gRPC receiver listens on %s", name, trPort, got)
		}
		for _, r := range cfg.Routes {
			upHost, upPort := hostPort(t, r.Upstream)
			up, ok := f.Services[upHost]
			if !ok {
				t.Errorf("%s: route %s upstream %s is not a compose service", name, r.Name, r.Upstream)
				continue
			}
			if i := slices.Index(up.Command, "--upstream"); i < 0 || !strings.HasSuffix(up.Command[i+1], ":"+upPort) {
				t.Errorf("%s: route %s upstream port %s, service %s runs %q", name, r.Name, upPort, upHost, up.Command)
			}
		}
		if _, p := hostPort(t, cfg.AdminListen); p != "9090" {
			t.Errorf("%s: admin_listen %s, want port 9090 (Prometheus scrapes it)", name, cfg.AdminListen)
		}
		if h, _ := hostPort(t, cfg.AdminListen); h != "" && h != "0.0.0.0" {
			t.Errorf("%s: admin_listen %s is unreachable from Prometheus", name, cfg.AdminListen)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Load balancer (nginx)

// nginxDirective is one directive of an nginx configuration, with its block if it has one.
type nginxDirective struct {
	name  string
	args  []string
	block []nginxDirective
}

// parseNginx parses nginx's configuration syntax: directives ending in ";" or a block,
// "#" comments, single- and double-quoted arguments.
func parseNginx(src string) ([]nginxDirective, error) {
	var tokens []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == ';' || c == '{' || c == '}':
			tokens = append(tokens, string(c))
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated quote at byte %d", i)
			}
			tokens = append(tokens, "\x00"+src[i+1:j]) // quoted: never a ; { }
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}#\"'", rune(src[j])) {
				j++
			}
			tokens = append(tokens, src[i:j])
			i = j
		}
	}
	pos := 0
	var parse func(depth int) ([]nginxDirective, error)
	parse = func(depth int) ([]nginxDirective, error) {
		var ds []nginxDirective
		var cur *nginxDirective
		for pos < len(tokens) {
			tok := tokens[pos]
			pos++
			switch tok {
			case ";":
				if cur == nil {
					return nil, errors.New("empty directive")
				}
				ds, cur = append(ds, *cur), nil
			case "{":
				if cur == nil {
					return nil, errors.New("block without a directive")
				}
				b, err := parse(depth + 1)
				if err != nil {
					return nil, err
				}
				cur.block = b
				ds, cur = append(ds, *cur), nil
			case "}":
				if depth == 0 || cur != nil {
					return nil, errors.New("unbalanced }")
				}
				return ds, nil
			default:
				tok = strings.TrimPrefix(tok, "\x00")
				if cur == nil {
					cur = &nginxDirective{name: tok}
				} else {
					cur.args = append(cur.args, tok)
				}
			}
		}
		if depth > 0 || cur != nil {
			return nil, errors.New("unexpected end of file")
		}
		return ds, nil
	}
	return parse(0)
}

func nginxFind(ds []nginxDirective, name string, args ...string) []nginxDirective {
	var out []nginxDirective
	for _, d := range ds {
		if d.name == name && (len(args) == 0 || slices.Equal(d.args[:min(len(args), len(d.args))], args)) {
			out = append(out, d)
		}
	}
	return out
}

func TestParseNginx(t *testing.T) {
	tests := []struct {
		src     string
		want    []nginxDirective
		wantErr bool
	}{
		{"a 1; # c\nb { c \"x; y\" 'z'; }", []nginxDirective{{name: "a", args: []string{"1"}}, {name: "b", block: []nginxDirective{{name: "c", args: []string{"x; y", "z"}}}}}, false},
		{"a {", nil, true},
		{"a }", nil, true},
		{"a", nil, true},
		{"a \"b;", nil, true},
	}
	for _, tt := range tests {
		got, err := parseNginx(tt.src)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseNginx(%q) error = %v, want error: %v", tt.src, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(nginxDirective{})); !tt.wantErr && diff != "" {
			t.Errorf("parseNginx(%q) (-want +got):\n%s", tt.src, diff)
		}
	}
}

func TestLoadBalancer(t *testing.T) {
	f := loadCompose(t)
	lb, ok := f.Services["lb"]
	if !ok {
		t.Fatal("no lb service")
	}
	conf := lb.hostPath("/etc/nginx/nginx.conf")
	if conf != filepath.Join("loadbalancer", "nginx.conf") {
		t.Fatalf("lb mounts %q as /etc/nginx/nginx.conf, want loadbalancer/nginx.conf", conf)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	top, err := parseNginx(string(b))
	if err != nil {
		t.Fatalf("%s: %v", conf, err)
	}
	https := nginxFind(top, "http")
	if len(https) != 1 {
		t.Fatalf("%s has %d http blocks, want 1", conf, len(https))
	}
	http := https[0].block

	// The upstream names every replica on its proxy port, and nothing else.
	var want []string
	var cfg *config.Config
	for name, s := range f.replicas() {
		cfg, _, _ = composeVeilConfig(t, s)
		_, port := hostPort(t, cfg.Listen)
		want = append(want, name+":"+port)
	}
	sort.Strings(want)
	ups := nginxFind(http, "upstream")
	if len(ups) != 1 || len(ups[0].args) != 1 {
		t.Fatalf("%s: want one upstream block, have %d", conf, len(ups))
	}
	up := ups[0]
	var got []string
	for _, s := range nginxFind(up.block, "server") {
		got = append(got, s.args[0])
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("upstream %s servers = %v, want the replicas %v", up.args[0], got, want)
	}

	// The server listens on the published port and passes everything to that upstream.
	srvs := nginxFind(http, "server")
	if len(srvs) != 1 {
		t.Fatalf("%s: want one server block, have %d", conf, len(srvs))
	}
	srv := srvs[0].block
	listen := nginxFind(srv, "listen")
	if len(listen) != 1 || len(lb.Ports) != 1 || !strings.HasSuffix(lb.Ports[0], ":"+listen[0].args[0]) {
		t.Errorf("nginx listens on %v, lb publishes %v", listen, lb.Ports)
	}
	loc := nginxFind(srv, "location", "/")
	if len(loc) != 1 {
		t.Fatal("no location / block")
	}
	if pp := nginxFind(loc[0].block, "proxy_pass"); len(pp) != 1 || pp[0].args[0] != "http://"+up.args[0] {
		t.Errorf("location / proxy_pass = %v, want http://%s", pp, up.args[0])
	}

	// nginx's body limit is Veil's, so a client sees one limit whichever refuses first.
	bodies := nginxFind(srv, "client_max_body_size")
	if len(bodies) != 1 {
		t.Fatal("no client_max_body_size: nginx would refuse bodies over 1m, below Veil's limit")
	}
	size := strings.TrimSuffix(strings.ToLower(bodies[0].args[0]), "m")
	mb, err := strconv.Atoi(size)
	if err != nil || int64(mb)<<20 != int64(cfg.Server.MaxRequestBody) {
		t.Errorf("client_max_body_size %s, Veil's max_request_body is %d bytes", bodies[0].args[0], int64(cfg.Server.MaxRequestBody))
	}

	// Identity headers from clients never pass the LB.
	for _, h := range []string{"X-Veil-User", "X-Veil-Roles"} {
		if set := nginxFind(loc[0].block, "proxy_set_header", h); len(set) != 1 || set[0].args[1] != "" {
			t.Errorf("nginx does not clear %s (proxy_set_header %s \"\")", h, h)
		}
	}
	// The read timeout outlasts every route's upstream timeout, so Veil answers 504 itself.
	rt := nginxFind(loc[0].block, "proxy_read_timeout")
	if len(rt) != 1 {
		t.Fatal("no proxy_read_timeout (nginx's default 60s cuts off Veil's own 60s route timeout)")
	}
	readTimeout, err := time.ParseDuration(rt[0].args[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Routes {
		if readTimeout <= r.Timeout.D() {
			t.Errorf("proxy_read_timeout %v <= route %s timeout %v", readTimeout, r.Name, r.Timeout.D())
		}
	}
	if nu := nginxFind(loc[0].block, "proxy_next_upstream"); len(nu) != 1 || slices.Contains(nu[0].args, "timeout") || slices.Contains(nu[0].args, "non_idempotent") {
		t.Errorf("proxy_next_upstream %v: retrying timeouts or non-idempotent requests runs a charged request twice", nu)
	}
}

// ---------------------------------------------------------------------------------------
// Prometheus

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	f := loadCompose(t)
	prom, ok := f.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	cfgFlag := ""
	for _, a := range prom.Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgFlag = v
		}
	}
	host := prom.hostPath(cfgFlag)
	if host != filepath.Join("prometheus", "prometheus.yml") {
		t.Fatalf("prometheus runs --config.file=%s mounted from %q, want prometheus/prometheus.yml", cfgFlag, host)
	}
	var pc promConfig
	readStrictYAML(t, host, &pc)
	for _, d := range []string{pc.Global.ScrapeInterval, pc.Global.EvaluationInterval} {
		if _, err := model.ParseDuration(d); err != nil {
			t.Errorf("global interval %q: %v", d, err)
		}
	}

	// Rule files: relative to the config file, present in the checkout and mounted beside the
	// config in the container.
	if !slices.Contains(pc.RuleFiles, "alerts.yml") {
		t.Errorf("rule_files %v does not load alerts.yml", pc.RuleFiles)
	}
	for _, rf := range pc.RuleFiles {
		if filepath.IsAbs(rf) {
			t.Errorf("rule_files entry %s is absolute: it would differ between the checkout and the container", rf)
			continue
		}
		inRepo := filepath.Join(filepath.Dir(host), rf)
		if _, err := os.Stat(inRepo); err != nil {
			t.Errorf("rule file %s: %v", rf, err)
		}
		inCtr := path.Join(path.Dir(cfgFlag), rf)
		if got := prom.hostPath(inCtr); got != inRepo {
			t.Errorf("rule file %s is %s in the container, mounted from %q, want %s", rf, inCtr, got, inRepo)
		}
	}

	// Both replicas' admin ports are scraped, by the job the dashboard queries.
	var veilTargets []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "veil" {
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job veil metrics_path = %q, want /metrics", sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			veilTargets = append(veilTargets, st.Targets...)
		}
	}
	var want []string
	for name, s := range f.replicas() {
		cfg, _, _ := composeVeilConfig(t, s)
		_, port := hostPort(t, cfg.AdminListen)
		want = append(want, name+":"+port)
	}
	sort.Strings(want)
	sort.Strings(veilTargets)
	if !slices.Equal(veilTargets, want) {
		t.Errorf("job veil scrapes %v, want every replica's admin port %v", veilTargets, want)
	}
}

// ---------------------------------------------------------------------------------------
// OpenTelemetry Collector

type collectorConfig struct {
	Receivers  map[string]yaml.Node `yaml:"receivers"`
	Processors map[string]yaml.Node `yaml:"processors"`
	Exporters  map[string]yaml.Node `yaml:"exporters"`
	Extensions map[string]yaml.Node `yaml:"extensions"`
	Connectors map[string]yaml.Node `yaml:"connectors"`
	Service    struct {
		Extensions []string `yaml:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
		Telemetry yaml.Node `yaml:"telemetry"`
	} `yaml:"service"`
}

func loadCollector(t *testing.T) collectorConfig {
	t.Helper()
	var c collectorConfig
	readStrictYAML(t, filepath.Join("otel", "collector.yaml"), &c)
	return c
}

// collectorGRPCPort returns the port of the collector's OTLP gRPC receiver.
func collectorGRPCPort(t *testing.T) string {
	t.Helper()
	c := loadCollector(t)
	n, ok := c.Receivers["otlp"]
	if !ok {
		t.Fatal("collector has no otlp receiver")
	}
	var otlp struct {
		Protocols struct {
			GRPC struct {
				Endpoint string `yaml:"endpoint"`
			} `yaml:"grpc"`
			HTTP struct {
				Endpoint string `yaml:"endpoint"`
			} `yaml:"http"`
		} `yaml:"protocols"`
	}
	if err := n.Decode(&otlp); err != nil {
		t.Fatal(err)
	}
	_, p := hostPort(t, otlp.Protocols.GRPC.Endpoint)
	return p
}

// componentType is the type of a collector component id: "otlp" of "otlp/jaeger".
func componentType(id string) string {
	typ, _, _ := strings.Cut(id, "/")
	return typ
}

func TestCollectorConfig(t *testing.T) {
	c := loadCollector(t)
	if len(c.Service.Pipelines) == 0 {
		t.Fatal("collector has no pipelines")
	}
	used := map[string]bool{}
	check := func(kind string, defined map[string]yaml.Node, ids []string, pipeline string) {
		if len(ids) == 0 && kind != "processor" {
			t.Errorf("pipeline %s has no %ss", pipeline, kind)
		}
		for _, id := range ids {
			if _, ok := defined[id]; !ok {
				t.Errorf("pipeline %s uses %s %q, which is not defined", pipeline, kind, id)
			}
			used[kind+":"+id] = true
		}
	}
	for name, p := range c.Service.Pipelines {
		if typ := componentType(name); typ != "traces" && typ != "metrics" && typ != "logs" {
			t.Errorf("pipeline %q is not traces, metrics or logs", name)
		}
		check("receiver", c.Receivers, p.Receivers, name)
		check("processor", c.Processors, p.Processors, name)
		check("exporter", c.Exporters, p.Exporters, name)
		if i := slices.Index(p.Processors, "memory_limiter"); i != 0 {
			t.Errorf("pipeline %s: memory_limiter at %d, want first", name, i)
		}
		if !slices.Contains(p.Processors, "batch") {
			t.Errorf("pipeline %s has no batch processor", name)
		}
	}
	check("extension", c.Extensions, c.Service.Extensions, "service.extensions")
	for kind, defined := range map[string]map[string]yaml.Node{"receiver": c.Receivers, "processor": c.Processors, "exporter": c.Exporters, "extension": c.Extensions} {
		for id := range defined {
			if !used[kind+":"+id] {
				t.Errorf("%s %q is defined but no pipeline uses it", kind, id)
			}
		}
	}

	// Traces reach Jaeger's OTLP port on the compose network; the debug exporter stays terse
	// (detailed output would log user ids from span attributes).
	f := loadCompose(t)
	var jaeger struct {
		Endpoint string `yaml:"endpoint"`
		TLS      struct {
			Insecure bool `yaml:"insecure"`
		} `yaml:"tls"`
	}
	n := c.Exporters["otlp/jaeger"]
	if err := n.Decode(&jaeger); err != nil {
		t.Fatal(err)
	}
	if h, p := hostPort(t, jaeger.Endpoint); p != "4317" || f.Services[h].Image == "" || !strings.Contains(f.Services[h].Image, "jaeger") {
		t.Errorf("otlp/jaeger endpoint %s, want the jaeger service on 4317", jaeger.Endpoint)
	}
	var dbg struct {
		Verbosity string `yaml:"verbosity"`
	}
	n = c.Exporters["debug"]
	if err := n.Decode(&dbg); err != nil || dbg.Verbosity == "detailed" {
		t.Errorf("debug exporter verbosity %q (%v), want basic or normal", dbg.Verbosity, err)
	}
	col := f.Services["otel-collector"]
	cfgPath := ""
	for _, a := range col.Command {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = v
		}
	}
	if got := col.hostPath(cfgPath); got != filepath.Join("otel", "collector.yaml") {
		t.Errorf("otel-collector runs --config=%s mounted from %q, want otel/collector.yaml", cfgPath, got)
	}
}

// ---------------------------------------------------------------------------------------
// Grafana

type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *datasourceRef  `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			Datasource *datasourceRef `json:"datasource"`
			Expr       string         `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// allPanels returns the dashboard's panels, those inside collapsed rows included.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func TestGrafana(t *testing.T) {
	f := loadCompose(t)
	g, ok := f.Services["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	prov := g.hostPath("/etc/grafana/provisioning")
	if prov != filepath.Join("grafana", "provisioning") {
		t.Fatalf("grafana provisioning is mounted from %q, want grafana/provisioning", prov)
	}

	// Datasources: Prometheus at the compose service, by a fixed uid the dashboard uses.
	uids := map[string]string{}
	dsFiles, _ := filepath.Glob(filepath.Join(prov, "datasources", "*.yml"))
	if len(dsFiles) == 0 {
		t.Fatal("no datasource provisioning files")
	}
	for _, file := range dsFiles {
		var ds grafanaDatasources
		readStrictYAML(t, file, &ds)
		if ds.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", file, ds.APIVersion)
		}
		for _, d := range ds.Datasources {
			if d.UID == "" || uids[d.UID] != "" {
				t.Errorf("%s: datasource %s has an empty or repeated uid %q", file, d.Name, d.UID)
			}
			uids[d.UID] = d.Type
			u, err := url.Parse(d.URL)
			if err != nil {
				t.Errorf("%s: datasource %s url %q: %v", file, d.Name, d.URL, err)
				continue
			}
			if _, ok := f.Services[u.Hostname()]; !ok {
				t.Errorf("%s: datasource %s points at %s, not a compose service", file, d.Name, u.Hostname())
			}
		}
	}
	if uids["prometheus"] != "prometheus" {
		t.Fatalf("no Prometheus datasource with uid prometheus: %v", uids)
	}

	// The dashboard provider reads the directory the dashboards are mounted at.
	var pv grafanaProviders
	readStrictYAML(t, filepath.Join(prov, "dashboards", "veil.yml"), &pv)
	if len(pv.Providers) != 1 || pv.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers = %+v, want one file provider", pv.Providers)
	}
	dir := g.hostPath(pv.Providers[0].Options.Path)
	if dir != filepath.Join("grafana", "dashboards") {
		t.Fatalf("the provider reads %s, mounted from %q, want grafana/dashboards", pv.Providers[0].Options.Path, dir)
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if _, err := os.Stat(g.hostPath(home)); err != nil {
			t.Errorf("home dashboard %s: %v", home, err)
		}
	}

	b, err := os.ReadFile(filepath.Join(dir, "veil.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("veil.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q, want both", d.UID, d.Title)
	}
	checkDashboard(t, d, uids)
}

// requiredPanels are what the dashboard must show, each as a metric some panel queries.
var requiredPanels = map[string]string{
	"requests by decision":      "veil_requests_total",
	"records exported per user": "veil_user_records_total",
	"limit rejections":          "veil_limit_rejections_total",
	"policy reloads by result":  "veil_policy_reloads_total",
	"request latency":           "veil_request_duration_seconds_bucket",
	"budget store errors":       "veil_limit_store_errors_total",
	"fail-opens":                "veil_limit_fail_open_total",
	"audit errors":              "veil_audit_errors_total",
	"policy evaluation latency": "veil_policy_eval_seconds_bucket",
	"upstream latency":          "veil_upstream_seconds_bucket",
}

func checkDashboard(t *testing.T, d dashboard, uids map[string]string) {
	t.Helper()
	ids := map[int]bool{}
	var exprs []string
	topk := false
	panels := d.allPanels()
	for i, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for _, q := range panels[:i] {
			o := q.GridPos
			if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
				t.Errorf("panel %q %+v overlaps panel %q %+v", p.Title, g, q.Title, o)
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no title or no queries", p.ID, p.Title)
		}
		for _, tg := range p.Targets {
			ds := tg.Datasource
			if ds == nil {
				ds = p.Datasource
			}
			if ds == nil || uids[ds.UID] != "prometheus" {
				t.Errorf("panel %q query %s uses datasource %+v, want the provisioned Prometheus", p.Title, tg.RefID, ds)
			}
			for _, err := range checkPromQL(tg.Expr) {
				t.Errorf("panel %q query %s: %v\n%s", p.Title, tg.RefID, err, tg.Expr)
			}
			exprs = append(exprs, tg.Expr)
			topk = topk || strings.Contains(tg.Expr, "topk(10,") && strings.Contains(tg.Expr, "increase(veil_user_records_total")
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr == "" {
			continue
		}
		if a.Datasource == nil || uids[a.Datasource.UID] != "prometheus" {
			t.Errorf("annotation %q uses datasource %+v", a.Name, a.Datasource)
		}
		for _, err := range checkPromQL(a.Expr) {
			t.Errorf("annotation %q: %v", a.Name, err)
		}
	}
	metricRE := regexp.MustCompile(`[a-z_]+_[a-z_]+`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		for _, m := range metricRE.FindAllString(string(v.Query), -1) {
			if _, _, ok := metricLabels(m); !ok && m != "label_values" {
				t.Errorf("variable %s queries %q, not a metric Veil exports", v.Name, m)
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for what, metric := range requiredPanels {
		if !regexp.MustCompile(`\b` + metric + `\b`).MatchString(all) {
			t.Errorf("no panel shows %s (%s)", what, metric)
		}
	}
	if !topk {
		t.Error("no top-10 exporters panel (topk(10, … increase(veil_user_records_total…)))")
	}
	for _, q := range []string{"0.5", "0.99"} {
		if !strings.Contains(all, "histogram_quantile("+q+", sum by (le) (rate(veil_request_duration_seconds_bucket") {
			t.Errorf("no p%s latency from veil_request_duration_seconds", strings.TrimPrefix(q, "0."))
		}
	}
}

// ---------------------------------------------------------------------------------------
// The operations guide

func readOpsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// anchors returns the GitHub-style anchors of a Markdown file's headings, outside code.
func anchors(md string) []string {
	var out []string
	fenced := false
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ' || r == '-':
				b.WriteByte('-')
			case r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r > 0x7f:
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

var opsLinkRE = regexp.MustCompile(`operations\.md#([a-z0-9_-]+)`)

func TestOperationsDoc(t *testing.T) {
	ops := readOpsDoc(t)
	have := anchors(ops)

	// Every link into the guide from deploy/ and docs/ lands on a heading.
	var files []string
	for _, root := range []string{".", filepath.Join("..", "docs")} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	links := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range opsLinkRE.FindAllStringSubmatch(string(b), -1) {
			links++
			if !slices.Contains(have, m[1]) {
				t.Errorf("%s links operations.md#%s, which has no such heading", file, m[1])
			}
		}
	}
	if links == 0 {
		t.Error("nothing links into operations.md: the alert runbooks should")
	}
	if !slices.Contains(have, "export-spike") {
		t.Error("operations.md has no #export-spike section (the alerts' runbook)")
	}

	// Every metric is in the guide's table.
	for name := range veilMetrics {
		if !strings.Contains(ops, "`"+name+"`") {
			t.Errorf("operations.md does not list metric %s", name)
		}
	}
	// Every alert is explained.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !strings.Contains(ops, r.Alert) {
				t.Errorf("operations.md does not explain alert %s", r.Alert)
			}
		}
	}
}

// ---------------------------------------------------------------------------------------
// The tools themselves, where installed

// TestWithTools runs the real tools over the files when they are installed: promtool (Debian
// prometheus), kubectl's built-in kustomize, docker compose or docker-compose. Each is
// skipped when absent; the Go checks above do not depend on them.
func TestWithTools(t *testing.T) {
	run := func(t *testing.T, name string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not installed", name)
		}
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	t.Run("promtool", func(t *testing.T) {
		run(t, "promtool", "check", "config", filepath.Join("prometheus", "prometheus.yml"))
	})
	t.Run("kustomize", func(t *testing.T) {
		run(t, "kubectl", "kustomize", "k8s")
	})
	t.Run("docker-compose", func(t *testing.T) {
		if exec.Command("docker", "compose", "version").Run() == nil {
			run(t, "docker", "compose", "-f", "docker-compose.yml", "config", "--quiet")
			return
		}
		run(t, "docker-compose", "-f", "docker-compose.yml", "config", "--quiet")
	})
}
