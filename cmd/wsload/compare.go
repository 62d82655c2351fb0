package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// result is what -json writes: the numbers of one run of one scenario.
// Metric keys (absent when not measured):
//
//	every scenario: clients_connected, connect_failed, connect_rate (/s),
//	  connect_p50_ms … connect_max_ms, wsload_cpu_pct, and wsload's own
//	  CPU per unit of work: wsload_cpu_per_connect_us (idle),
//	  wsload_cpu_per_delivery_us (fanout), wsload_cpu_per_rtt_us (echo)
//	idle:   cpu_per_connect_us, rss_per_conn_kib (end of hold),
//	  rss_per_conn_connected_kib, dropped
//	fanout: cpu_per_delivery_us (utime+stime), cpu_per_delivery_sched_us,
//	  latency_p50_ms, latency_p90_ms, latency_p99_ms, latency_max_ms,
//	  deliveries_expected, deliveries, lost, duplicates, out_of_order, dropped
//	echo:   cpu_per_rtt_us, cpu_per_rtt_sched_us, rtt_p50_ms … rtt_max_ms,
//	  round_trips_expected, round_trips, mismatched
type result struct {
	Scenario string             `json:"scenario"`
	Args     []string           `json:"args"`
	Clients  int                `json:"clients"`
	OK       bool               `json:"ok"`
	Error    string             `json:"error,omitempty"`
	Metrics  map[string]float64 `json:"metrics"`
}

func newResult(cfg *config, rep *report, err error) result {
	res := result{Scenario: cfg.scenario, Args: cfg.args, Clients: cfg.clients, OK: err == nil, Metrics: rep.metrics}
	if err != nil {
		res.Error = err.Error()
	}
	if res.Metrics == nil {
		res.Metrics = map[string]float64{}
	}
	return res
}

func writeResult(path string, res result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}

// The two sides of a comparison, as they appear in result file names.
const (
	sideGo  = "go"
	sideBun = "bun"
)

// runName matches the result files of compare.sh: CASE.SERVER.ROUND.json.
var runName = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)\.([a-z0-9]+)\.([0-9]+)\.json$`)

// runFile is one result file.
type runFile struct {
	round int
	res   result
}

// runs holds the results of a directory by case and server.
type runs map[string]map[string][]runFile

// loadRuns reads every CASE.SERVER.ROUND.json in dir; other files are
// ignored.
func loadRuns(dir string) (runs, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := runs{}
	for _, e := range entries {
		m := runName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var res result
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		round, _ := strconv.Atoi(m[3])
		if out[m[1]] == nil {
			out[m[1]] = map[string][]runFile{}
		}
		out[m[1]][m[2]] = append(out[m[1]][m[2]], runFile{round: round, res: res})
	}
	for _, byServer := range out {
		for _, rs := range byServer {
			sort.Slice(rs, func(i, j int) bool { return rs[i].round < rs[j].round })
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no CASE.SERVER.ROUND.json files", dir)
	}
	return out, nil
}

// values returns the metric of the successful runs that have it.
func (r runs) values(caseName, server, metric string) []float64 {
	var v []float64
	for _, f := range r[caseName][server] {
		if x, ok := f.res.Metrics[metric]; ok && f.res.OK && !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	return v
}

// median of v (the mean of the middle two for an even count); NaN if empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// goalRow is one line of the comparison table.
type goalRow struct {
	caseName string
	measure  string
	metric   string // a CPU metric gets the suffix of -cpu
	cpu      bool
	unit     string
	// goal is the Go/Bun ratio to reach (issue 10); 0 for rows shown for
	// context only. higherBetter: the ratio must be at least goal.
	goal         float64
	higherBetter bool
}

// compareRows are the goals of issue 10, case by case, with context rows.
var compareRows = []goalRow{
	{caseName: "idle", measure: "idle: RSS per connection", metric: "rss_per_conn_kib", unit: "KiB", goal: 0.8},
	{caseName: "idle-large", measure: "idle: RSS per connection", metric: "rss_per_conn_kib", unit: "KiB", goal: 0.8},
	{caseName: "idle", measure: "connect + authenticate rate", metric: "connect_rate", unit: "/s", goal: 1.2, higherBetter: true},
	{caseName: "idle", measure: "server CPU per connect + authenticate", metric: "cpu_per_connect", cpu: true, unit: "µs"},
	{caseName: "idle-large", measure: "connect + authenticate rate", metric: "connect_rate", unit: "/s"},
	{caseName: "fanout-paced", measure: "paced fan-out: CPU per delivery", metric: "cpu_per_delivery", cpu: true, unit: "µs", goal: 0.8},
	{caseName: "fanout-paced", measure: "paced fan-out: latency p50", metric: "latency_p50_ms", unit: "ms", goal: 1.0},
	{caseName: "fanout-paced", measure: "paced fan-out: latency p99", metric: "latency_p99_ms", unit: "ms", goal: 1.0},
	{caseName: "fanout-closed", measure: "closed-loop fan-out: CPU per delivery", metric: "cpu_per_delivery", cpu: true, unit: "µs", goal: 0.7},
	{caseName: "fanout-closed", measure: "closed-loop fan-out: latency p50", metric: "latency_p50_ms", unit: "ms"},
	{caseName: "fanout-closed", measure: "closed-loop fan-out: latency p99", metric: "latency_p99_ms", unit: "ms"},
	{caseName: "echo", measure: "echo: CPU per round trip", metric: "cpu_per_rtt", cpu: true, unit: "µs", goal: 0.8},
	{caseName: "echo", measure: "echo: round trip p50", metric: "rtt_p50_ms", unit: "ms"},
	{caseName: "echo", measure: "echo: round trip p99", metric: "rtt_p99_ms", unit: "ms"},
	{caseName: "two-instances", measure: "two instances: CPU per delivery (both servers)", metric: "cpu_per_delivery", cpu: true, unit: "µs", goal: 0.8},
	{caseName: "two-instances", measure: "two instances: latency p50", metric: "latency_p50_ms", unit: "ms"},
	{caseName: "two-instances", measure: "two instances: latency p99", metric: "latency_p99_ms", unit: "ms"},
}

// compareLine is a computed row.
type compareLine struct {
	row          goalRow
	label        string // case with its client count
	goV, bunV    []float64
	goMed, bunMd float64
	ratio        float64 // NaN when either side is missing
}

// met tells whether the ratio reaches the goal; ok is false when there is
// no goal or no ratio.
func (l compareLine) met() (met, ok bool) {
	if l.row.goal == 0 || math.IsNaN(l.ratio) {
		return false, false
	}
	if l.row.higherBetter {
		return l.ratio >= l.row.goal, true
	}
	return l.ratio <= l.row.goal, true
}

// compute builds the lines of the cases present in r.
func (r runs) compute(cpuSuffix string) []compareLine {
	var out []compareLine
	for _, row := range compareRows {
		if _, ok := r[row.caseName]; !ok {
			continue
		}
		metric := row.metric
		if row.cpu {
			metric += cpuSuffix
		}
		l := compareLine{row: row, label: r.caseLabel(row.caseName)}
		l.goV = r.values(row.caseName, sideGo, metric)
		l.bunV = r.values(row.caseName, sideBun, metric)
		l.goMed, l.bunMd = median(l.goV), median(l.bunV)
		l.ratio = math.NaN()
		if !math.IsNaN(l.goMed) && !math.IsNaN(l.bunMd) && l.bunMd > 0 {
			l.ratio = l.goMed / l.bunMd
		}
		out = append(out, l)
	}
	return out
}

// caseLabel is the case name with its client count when all runs agree.
func (r runs) caseLabel(caseName string) string {
	n := -1
	for _, rs := range r[caseName] {
		for _, f := range rs {
			switch {
			case n == -1:
				n = f.res.Clients
			case n != f.res.Clients:
				return caseName
			}
		}
	}
	if n <= 0 {
		return caseName
	}
	return fmt.Sprintf("%s, %d clients", caseName, n)
}

// num prints a value with about three significant digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "—"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// cell prints a median with the range and the number of runs.
func cell(med float64, v []float64, unit string) string {
	if len(v) == 0 {
		return "no run"
	}
	if len(v) == 1 {
		return fmt.Sprintf("%s %s (1 run)", num(med), unit)
	}
	return fmt.Sprintf("%s %s (%s–%s, %d runs)", num(med), unit, num(slices.Min(v)), num(slices.Max(v)), len(v))
}

// printCompare writes the table as Markdown, then the runs that failed and
// the load generator's CPU share.
func (r runs) printCompare(w io.Writer, cpuSuffix string) {
	lines := r.compute(cpuSuffix)
	fmt.Fprintln(w, "| case | measure | Go (median, range) | Bun (median, range) | Go / Bun | goal | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, l := range lines {
		ratio, goal, met := "—", "—", ""
		if !math.IsNaN(l.ratio) {
			ratio = fmt.Sprintf("%.2f×", l.ratio)
		}
		if l.row.goal > 0 {
			op := "≤"
			if l.row.higherBetter {
				op = "≥"
			}
			goal = fmt.Sprintf("%s %.1f×", op, l.row.goal)
			if m, ok := l.met(); ok {
				met = map[bool]string{true: "yes", false: "**no**"}[m]
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", l.label, l.row.measure,
			cell(l.goMed, l.goV, l.row.unit), cell(l.bunMd, l.bunV, l.row.unit), ratio, goal, met)
	}
	cpuName := "utime+stime from /proc/PID/stat"
	if cpuSuffix == "_sched_us" {
		cpuName = "schedstat of the live threads"
	}
	fmt.Fprintf(w, "\nServer CPU: %s. Ratios are Go's median over Bun's; failed runs are left out of the medians.\n", cpuName)

	cases := make([]string, 0, len(r))
	for c := range r {
		cases = append(cases, c)
	}
	sort.Strings(cases)
	var notes []string
	for _, c := range cases {
		for _, side := range []string{sideGo, sideBun} {
			rs := r[c][side]
			ok := 0
			for _, f := range rs {
				if f.res.OK {
					ok++
				} else {
					notes = append(notes, fmt.Sprintf("- %s %s round %d failed: %s", c, side, f.round, f.res.Error))
				}
			}
			if len(rs) == 0 {
				notes = append(notes, fmt.Sprintf("- %s: no %s run", c, side))
			}
			if cpu := median(r.values(c, side, "server_cpu_ms")); cpuSuffix == "_us" && cpu < minTicks*tickMillis() {
				notes = append(notes, fmt.Sprintf("- %s %s: only %.0f ms of server CPU per run (median); utime+stime counts %.0f ms ticks, so CPU per unit is ±%.0f %% here: use larger counts or -cpu sched",
					c, side, cpu, tickMillis(), 100*tickMillis()/cpu))
			}
			if load := median(r.values(c, side, "wsload_cpu_pct")); load > 85 {
				notes = append(notes, fmt.Sprintf("- %s %s: wsload used %.0f %% of a core (median): the load generator may be the limit", c, side, load))
			}
		}
		for _, k := range []string{"lost", "duplicates", "out_of_order", "connect_failed", "dropped", "mismatched"} {
			for _, side := range []string{sideGo, sideBun} {
				var sum float64
				for _, f := range r[c][side] {
					sum += f.res.Metrics[k]
				}
				if sum > 0 {
					notes = append(notes, fmt.Sprintf("- %s %s: %s %.0f (sum over runs)", c, side, k, sum))
				}
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

// minTicks is the number of clock ticks of server CPU below which a CPU
// figure from utime+stime is flagged as coarse (one tick is then > 2 %).
const minTicks = 50

func tickMillis() float64 { return 1000 / float64(clockTicks) }

// runCompare is "wsload compare [-cpu stat|sched] DIR".
func runCompare(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsload compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cpu := fs.String("cpu", "stat", "server CPU from: stat (utime+stime of /proc/PID/stat, 10 ms ticks, counts exited threads) or sched (schedstat, ns, live threads only)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wsload compare [-cpu stat|sched] DIR\n\nReads DIR/CASE.SERVER.ROUND.json (written with -json; SERVER go or bun) and prints\nthe medians per case, the Go/Bun ratios and the goals of issue 10 as a Markdown table.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var suffix string
	switch *cpu {
	case "stat":
	case "sched":
		suffix = "_sched"
	default:
		return fmt.Errorf("-cpu %q: want stat or sched", *cpu)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("compare: want one directory")
	}
	r, err := loadRuns(fs.Arg(0))
	if err != nil {
		return err
	}
	if known := strings.Join(caseNames(), ", "); !r.hasAnyKnown() {
		return fmt.Errorf("%s: no known case (%s)", fs.Arg(0), known)
	}
	r.printCompare(stdout, suffix+"_us")
	return nil
}

func caseNames() []string {
	var out []string
	for _, row := range compareRows {
		if !slices.Contains(out, row.caseName) {
			out = append(out, row.caseName)
		}
	}
	return out
}

func (r runs) hasAnyKnown() bool {
	for _, c := range caseNames() {
		if _, ok := r[c]; ok {
			return true
		}
	}
	return false
}
