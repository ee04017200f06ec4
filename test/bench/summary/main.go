// Command summary reads `go test -bench` output on stdin and prints one row
// per benchmark with the median ns/op, B/op and allocs/op over its -count
// runs, plus the median of every custom metric a benchmark reports
// (b.ReportMetric: p99-ms, filter-bytes, %plain-rps, ...): the table
// `make bench` shows. benchstat reads the same raw file for
// comparisons between commits.
package main

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

type samples struct {
	ns, bytes, allocs []float64
	custom            map[string][]float64 // by unit
	units             []string             // custom units in first-seen order
}

func main() {
	byName := map[string]*samples{}
	var order []string
	pkg := ""
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "pkg: ") {
			pkg = strings.TrimPrefix(line, "pkg: github.com/apigw/gateway/")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := pkg + " " + f[0]
		s, ok := byName[name]
		if !ok {
			s = &samples{custom: map[string][]float64{}}
			byName[name] = s
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "B/op":
				s.bytes = append(s.bytes, v)
			case "allocs/op":
				s.allocs = append(s.allocs, v)
			default:
				u := f[i+1]
				if _, ok := s.custom[u]; !ok {
					s.units = append(s.units, u)
				}
				s.custom[u] = append(s.custom[u], v)
			}
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\tns/op\tB/op\tallocs/op\truns\tother metrics\t")
	for _, n := range order {
		s := byName[n]
		var other []string
		for _, u := range s.units {
			other = append(other, u+"="+med(s.custom[u], "%.4g"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t\n", n, med(s.ns, "%.0f"), med(s.bytes, "%.0f"), med(s.allocs, "%.0f"), len(s.ns), strings.Join(other, " "))
	}
	tw.Flush()
}

func med(v []float64, format string) string {
	if len(v) == 0 {
		return "-"
	}
	sort.Float64s(v)
	return fmt.Sprintf(format, v[len(v)/2])
}
