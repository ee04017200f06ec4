package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The manifests are decoded strictly into the Kubernetes API's own Go types
// (k8s.io/api, the types the API server's OpenAPI schema is generated
// from): an unknown or misspelt field, a wrong type or a wrong apiVersion
// for the kind fails, as `kubectl apply --validate=strict` would. What a
// schema cannot say (selectors that select the pod template, probes on
// declared ports, mounts of declared volumes, the hardening) is checked
// below by hand.

// object is one decoded manifest document.
type object struct {
	file string
	kind string
	name string
	obj  any
}

// kinds maps apiVersion/kind to a new value of its Go type.
var kinds = map[string]func() any{
	"v1/Service":                    func() any { return &corev1.Service{} },
	"v1/ConfigMap":                  func() any { return &corev1.ConfigMap{} },
	"apps/v1/Deployment":            func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":           func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func readManifests(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	var objs []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var u unstructured.Unstructured
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Errorf("%s document %d: %v", f, i, err)
				continue
			}
			key := u.GetAPIVersion() + "/" + u.GetKind()
			newObj, ok := kinds[key]
			if !ok {
				t.Errorf("%s document %d: %s is not a kind this test knows (add it to kinds)", f, i, key)
				continue
			}
			obj := newObj()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s %s %s: %v", f, u.GetKind(), u.GetName(), err)
				continue
			}
			if u.GetName() == "" {
				t.Errorf("%s document %d: no metadata.name", f, i)
			}
			objs = append(objs, object{file: f, kind: u.GetKind(), name: u.GetName(), obj: obj})
		}
	}
	return objs
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// workload is a Deployment or StatefulSet's selector and pod template.
type workload struct {
	object
	selector *metav1.LabelSelector
	pod      *corev1.PodTemplateSpec
}

func workloads(objs []object) []workload {
	var ws []workload
	for _, o := range objs {
		switch w := o.obj.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{o, w.Spec.Selector, &w.Spec.Template})
		case *appsv1.StatefulSet:
			ws = append(ws, workload{o, w.Spec.Selector, &w.Spec.Template})
		}
	}
	return ws
}

// TestManifestsSchema decodes every manifest strictly and requires the
// pieces issue 15 asks for: etcd with three members, several control-plane
// replicas on etcd, edges with a PodDisruptionBudget.
func TestManifestsSchema(t *testing.T) {
	objs := readManifests(t)
	byName := map[string]object{}
	for _, o := range objs {
		byName[o.kind+"/"+o.name] = o
	}
	etcd, ok := byName["StatefulSet/etcd"].obj.(*appsv1.StatefulSet)
	if !ok || etcd.Spec.Replicas == nil || *etcd.Spec.Replicas != 3 {
		t.Errorf("want StatefulSet etcd with 3 replicas")
	}
	cp, ok := byName["Deployment/gw-controlplane"].obj.(*appsv1.Deployment)
	if !ok || cp.Spec.Replicas == nil || *cp.Spec.Replicas < 2 {
		t.Errorf("want Deployment gw-controlplane with several replicas")
	} else if !slices.ContainsFunc(cp.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--store=etcd") }) {
		t.Errorf("gw-controlplane replicas are not on etcd (--store=etcd://...)")
	}
	for _, pdb := range []string{"gw-edge", "etcd", "gw-controlplane"} {
		if _, ok := byName["PodDisruptionBudget/"+pdb].obj.(*policyv1.PodDisruptionBudget); !ok {
			t.Errorf("no PodDisruptionBudget %s", pdb)
		}
	}
	if _, ok := byName["StatefulSet/gw-edge"]; !ok {
		t.Errorf("no StatefulSet gw-edge")
	}
}

// TestManifestsWiring checks what the schema cannot: every selector selects
// a pod template, every Service port and probe names a declared container
// port, every mount a declared volume, every container is hardened and has
// resource requests, and every edge and control-plane container has probes.
func TestManifestsWiring(t *testing.T) {
	objs := readManifests(t)
	ws := workloads(objs)
	if len(ws) < 3 {
		t.Fatalf("only %d workloads", len(ws))
	}
	for _, w := range ws {
		where := fmt.Sprintf("%s %s/%s", w.file, w.kind, w.name)
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || w.selector == nil || sel.Empty() {
			t.Errorf("%s: bad or empty selector: %v", where, err)
		} else if !sel.Matches(labels.Set(w.pod.Labels)) {
			t.Errorf("%s: selector %s does not select its own pod template %v", where, sel, w.pod.Labels)
		}
		var claims []string
		if sts, ok := w.obj.(*appsv1.StatefulSet); ok {
			for _, c := range sts.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Name)
			}
		}
		checkPod(t, where, &w.pod.Spec, claims)
		if sts, ok := w.obj.(*appsv1.StatefulSet); ok {
			if _, ok := findService(objs, sts.Spec.ServiceName); !ok {
				t.Errorf("%s: serviceName %q: no such Service", where, sts.Spec.ServiceName)
			}
		}
	}
	for _, o := range objs {
		where := fmt.Sprintf("%s %s/%s", o.file, o.kind, o.name)
		switch v := o.obj.(type) {
		case *corev1.Service:
			w, ok := selected(ws, labels.Set(v.Spec.Selector))
			if !ok {
				t.Errorf("%s: selector %v selects no pod template", where, v.Spec.Selector)
				continue
			}
			for _, p := range v.Spec.Ports {
				if p.TargetPort.String() != "" && !hasPort(w.pod.Spec.Containers, p.TargetPort.String()) {
					t.Errorf("%s: targetPort %s is no container port of %s", where, p.TargetPort.String(), w.name)
				}
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || sel.Empty() {
				t.Errorf("%s: bad or empty selector", where)
				continue
			}
			w, ok := selectedBy(ws, sel)
			if !ok {
				t.Errorf("%s: selects no pod template", where)
				continue
			}
			if v.Spec.MinAvailable != nil && replicas(w) <= int32(v.Spec.MinAvailable.IntValue()) {
				t.Errorf("%s: minAvailable %s with %d replicas blocks every drain", where, v.Spec.MinAvailable, replicas(w))
			}
		}
	}
}

// checkPod checks a pod template; claims are a StatefulSet's volume claim
// templates, which mounts may name too.
func checkPod(t *testing.T, where string, spec *corev1.PodSpec, claims []string) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext must set runAsNonRoot and a non-zero runAsUser", where)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range claims {
		volumes[c] = true
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		cw := where + " container " + c.Name
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", cw)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: allowPrivilegeEscalation must be false", cw)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: readOnlyRootFilesystem must be true", cw)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: capabilities must drop ALL and add none", cw)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s: cpu and memory requests required", cw)
		}
		if c.Image == "" || !strings.Contains(c.Image, ":") {
			t.Errorf("%s: image %q has no tag", cw, c.Image)
		}
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("%s: mounts %q, which is no volume of the pod", cw, m.Name)
			}
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p == nil {
				continue
			}
			var port string
			switch {
			case p.HTTPGet != nil:
				port = p.HTTPGet.Port.String()
			case p.TCPSocket != nil:
				port = p.TCPSocket.Port.String()
			case p.GRPC != nil:
				port = fmt.Sprint(p.GRPC.Port)
			}
			if !hasPort([]corev1.Container{c}, port) {
				t.Errorf("%s: probe port %q is not a port of the container", cw, port)
			}
		}
	}
	for _, c := range spec.Containers {
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s container %s: readiness and liveness probes required", where, c.Name)
		}
	}
}

func hasPort(cs []corev1.Container, port string) bool {
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.Name == port || fmt.Sprint(p.ContainerPort) == port {
				return true
			}
		}
	}
	return false
}

func findService(objs []object, name string) (*corev1.Service, bool) {
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Service); ok && o.name == name {
			return s, true
		}
	}
	return nil, false
}

func selected(ws []workload, set labels.Set) (workload, bool) {
	if len(set) == 0 {
		return workload{}, false
	}
	return selectedBy(ws, labels.SelectorFromSet(set))
}

func selectedBy(ws []workload, sel labels.Selector) (workload, bool) {
	for _, w := range ws {
		if sel.Matches(labels.Set(w.pod.Labels)) {
			return w, true
		}
	}
	return workload{}, false
}

func replicas(w workload) int32 {
	switch v := w.obj.(type) {
	case *appsv1.Deployment:
		if v.Spec.Replicas != nil {
			return *v.Spec.Replicas
		}
	case *appsv1.StatefulSet:
		if v.Spec.Replicas != nil {
			return *v.Spec.Replicas
		}
	}
	return 1
}

// TestStrictDecodingCatchesMistakes: the checker is not a no-op. A
// misspelt field, a wrong type and a field at the wrong level all fail.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	b, err := os.ReadFile("kubernetes/edge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sts string
	for _, d := range docSep.Split(string(b), -1) {
		if strings.Contains(d, "kind: StatefulSet") {
			sts = d
		}
	}
	if sts == "" {
		t.Fatal("no StatefulSet in edge.yaml")
	}
	for name, mutate := range map[string]func(string) string{
		"misspelt field": func(s string) string { return strings.Replace(s, "readinessProbe:", "readynessProbe:", 1) },
		"wrong type":     func(s string) string { return strings.Replace(s, "replicas: 3", "replicas: three", 1) },
		"wrong level":    func(s string) string { return strings.Replace(s, "  serviceName:", "  template:\n    serviceName:", 1) },
	} {
		bad := mutate(sts)
		if bad == sts {
			t.Fatalf("%s: the mutation changed nothing", name)
		}
		if err := yaml.UnmarshalStrict([]byte(bad), &appsv1.StatefulSet{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := yaml.UnmarshalStrict(bytes.TrimSpace([]byte(sts)), &appsv1.StatefulSet{}); err != nil {
		t.Errorf("unchanged: %v", err)
	}
}
