package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// registration matches a metric name where the code registers it: a
// prometheus *Opts Name field or a NewDesc call.
var registration = regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(gw_[a-z0-9_]+)"`)

// metricRef matches a metric name inside a PromQL expression.
var metricRef = regexp.MustCompile(`\bgw_[a-z0-9_]+`)

// registeredMetrics returns the metric names registered by the repository's
// non-test Go code.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range registration.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found only %d registered metrics: the registration pattern no longer matches the code", len(names))
	}
	return names
}

// known reports whether name is a registered metric or one of the series a
// registered histogram exports.
func known(reg map[string]bool, name string) bool {
	if reg[name] {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && reg[base] {
			return true
		}
	}
	return false
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert string `json:"alert"`
			Expr  string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; .ci/run installs it (Debian package prometheus)")
		}
		t.Skip("promtool not installed (apt-get install prometheus)")
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules runs promtool's rule check and the unit tests, and requires
// a unit test for every alert.
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	run(t, pt, "check", "rules", "prometheus/alerts.yml")
	run(t, pt, "test", "rules", "prometheus/alerts_test.yml")

	rules := readRules(t)
	tests, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no case in prometheus/alerts_test.yml", r.Alert)
			}
		}
	}
}

// TestDashboardQueriesParse checks every dashboard query with promtool, as
// the expressions of a throwaway recording-rule file.
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	d := readDashboard(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q, _ := json.Marshal(tg.Expr) // a JSON string is a valid YAML scalar
			b.WriteString("      - record: dashboard:query\n        expr: " + string(q) + "\n")
			n++
		}
	}
	if n == 0 {
		t.Fatal("dashboard has no queries")
	}
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, pt, "check", "rules", f)
}

// TestMetricNamesRegistered fails when a rule or a dashboard query names a
// metric the binaries do not register (a rename would silence an alert).
func TestMetricNamesRegistered(t *testing.T) {
	reg := registeredMetrics(t)
	var exprs []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	for _, p := range readDashboard(t).Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricRef.FindAllString(e, -1) {
			used[m] = true
		}
	}
	var unknown []string
	for m := range used {
		if !known(reg, m) {
			unknown = append(unknown, m)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("metrics used by deploy/ but registered nowhere in the code: %v", unknown)
	}
	if len(used) < 15 {
		t.Errorf("only %d metrics used: the query pattern no longer matches", len(used))
	}
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups read from prometheus/alerts.yml")
	}
	return rf
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/gateway.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/gateway.json: %v", err)
	}
	return d
}
