package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// report is the summary table of one run, and the numbers behind it that
// -json writes for wsload compare.
type report struct {
	title   string
	rows    [][2]string
	metrics map[string]float64
}

// metric records a number under a key of the -json result (see result).
func (r *report) metric(key string, v float64) {
	if r.metrics == nil {
		r.metrics = make(map[string]float64)
	}
	r.metrics[key] = v
}

func (r *report) add(name, format string, args ...any) {
	r.rows = append(r.rows, [2]string{name, fmt.Sprintf(format, args...)})
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n%s\n", r.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue")
	fmt.Fprintln(tw, "------\t-----")
	for _, row := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	_ = tw.Flush()
}

// addLatency adds p50, p90, p99, max and mean rows for h and, when key is
// not empty, the metrics key_p50_ms, key_p90_ms, key_p99_ms and key_max_ms.
func (r *report) addLatency(name, key string, h *histogram) {
	if h.count() == 0 {
		r.add(name, "no samples")
		return
	}
	if key != "" {
		msOf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		r.metric(key+"_p50_ms", msOf(h.quantile(0.50)))
		r.metric(key+"_p90_ms", msOf(h.quantile(0.90)))
		r.metric(key+"_p99_ms", msOf(h.quantile(0.99)))
		r.metric(key+"_max_ms", msOf(h.maxValue()))
	}
	r.add(name+" p50 / p90 / p99", "%s / %s / %s", ms(h.quantile(0.50)), ms(h.quantile(0.90)), ms(h.quantile(0.99)))
	r.add(name+" max / mean", "%s / %s", ms(h.maxValue()), ms(h.mean()))
}

// ms prints a duration in milliseconds with three decimals.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

func mib(b int64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// runner holds what every scenario shares: the configuration, the
// progress line and the error log.
type runner struct {
	cfg    *config
	stderr io.Writer
	errs   errorLog

	phase    atomic.Value // string
	conn     connectStats
	received atomic.Int64 // application frames counted by the scenario
	dropped  atomic.Int64 // connections lost before the scenario closed them
}

func newRunner(cfg *config, stderr io.Writer) *runner {
	r := &runner{cfg: cfg, stderr: stderr}
	r.phase.Store("start")
	return r
}

// startProgress prints the progress line once a second until the returned
// function is called.
func (r *runner) startProgress() (stop func()) {
	if !r.cfg.progress {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(r.stderr, "wsload [%4.0fs] %-8s connected %d/%d (failed %d)  received %d  errors %d\n",
					time.Since(start).Seconds(), r.phase.Load(), r.conn.connected.Load(), r.cfg.clients,
					r.conn.failed.Load(), r.received.Load(), r.errs.count())
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// meter measures the server processes (and wsload itself) over a window.
type meter struct {
	ps         procSet
	before     []procSample
	t0         time.Time
	self0      time.Duration
	elapsed    time.Duration
	serverCPU  []time.Duration
	schedCPU   time.Duration // sum over processes; valid when schedOK
	schedOK    bool
	after      []procSample
	selfCPU    time.Duration
	sampleErr  error
	hasSamples bool
}

func (m *meter) start(ps procSet) {
	m.ps = ps
	m.before, m.sampleErr = ps.sample()
	m.t0 = time.Now()
	m.self0 = selfCPU()
}

func (m *meter) stop() {
	m.elapsed = time.Since(m.t0)
	m.selfCPU = selfCPU() - m.self0
	if m.sampleErr != nil || len(m.ps.pids) == 0 {
		return
	}
	m.after, m.sampleErr = m.ps.sample()
	if m.sampleErr != nil {
		return
	}
	m.hasSamples = true
	m.serverCPU = make([]time.Duration, len(m.after))
	m.schedOK = true
	for i := range m.after {
		m.serverCPU[i] = m.after[i].cpu - m.before[i].cpu
		m.schedOK = m.schedOK && m.before[i].schedOK && m.after[i].schedOK
		m.schedCPU += m.after[i].sched - m.before[i].sched
	}
}

func (m *meter) totalServerCPU() time.Duration {
	var t time.Duration
	for _, c := range m.serverCPU {
		t += c
	}
	return t
}

// addCPU adds the server CPU rows: total, per unit of work (deliveries,
// round trips, connections) and per process when there are several. The
// metrics are key_us (utime+stime per unit, summed over the processes),
// key_sched_us (schedstat, when every sample had it), server_cpu_ms
// (utime+stime over the window), wsload_cpu_pct and wsload_key_us
// (wsload's own CPU per unit: the load generator's cost, which matters
// when it shares a core with Redis).
func (r *report) addCPU(m *meter, work int64, unit, key string) {
	if m.sampleErr != nil {
		r.add("server CPU", "not measured: %v", m.sampleErr)
	} else if m.hasSamples {
		total := m.totalServerCPU()
		r.metric("server_cpu_ms", float64(total)/float64(time.Millisecond))
		r.add("server CPU (utime+stime)", "%s over %s (%.0f %% of one core; resolution %s)",
			ms(total), ms(m.elapsed), 100*float64(total)/float64(m.elapsed), time.Second/time.Duration(clockTicks))
		if m.schedOK {
			r.add("server CPU (schedstat)", "%s (ns resolution; sum over threads)", ms(m.schedCPU))
		}
		if work > 0 {
			perUnit := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(work) }
			r.metric(key+"_us", perUnit(total))
			if m.schedOK {
				r.metric(key+"_sched_us", perUnit(m.schedCPU))
			}
			if m.schedOK {
				r.add("server CPU per "+unit, "%.2f µs (utime+stime: %.2f µs)", perUnit(m.schedCPU), perUnit(total))
			} else {
				r.add("server CPU per "+unit, "%.2f µs (utime+stime)", perUnit(total))
			}
		}
		if len(m.serverCPU) > 1 {
			parts := make([]string, len(m.serverCPU))
			for i, c := range m.serverCPU {
				parts[i] = fmt.Sprintf("pid %d: %s", m.ps.pids[i], ms(c))
			}
			r.add("server CPU by process", "%s", strings.Join(parts, ", "))
		}
	} else {
		r.add("server CPU", "not measured (give -pid)")
	}
	selfPct := 100 * float64(m.selfCPU) / float64(max(m.elapsed, 1))
	r.metric("wsload_cpu_pct", selfPct)
	r.add("wsload CPU", "%s (%.0f %% of one core, GOMAXPROCS %d)", ms(m.selfCPU), selfPct, runtime.GOMAXPROCS(0))
	if work > 0 {
		perUnit := float64(m.selfCPU) / float64(time.Microsecond) / float64(work)
		r.metric("wsload_"+key+"_us", perUnit)
		r.add("wsload CPU per "+unit, "%.2f µs", perUnit)
	}
}

// addRSS adds the servers' resident set sizes after the window.
func (r *report) addRSS(m *meter) {
	if !m.hasSamples {
		return
	}
	parts := make([]string, len(m.after))
	for i, s := range m.after {
		parts[i] = fmt.Sprintf("pid %d: %s", m.ps.pids[i], mib(s.rss))
	}
	r.add("server RSS", "%s", strings.Join(parts, ", "))
}

// addErrors adds the error count and the first few errors.
func (r *report) addErrors(l *errorLog) {
	r.add("errors", "%d", l.count())
	for i, s := range l.samples() {
		r.add(fmt.Sprintf("  error %d", i+1), "%s", s)
	}
}

// header adds the rows every scenario starts with.
func (r *report) header(cfg *config) {
	targets := make([]string, len(cfg.nodes))
	for i, u := range cfg.nodes {
		targets[i] = u.Redacted()
	}
	r.add("targets", "%s", strings.Join(targets, ", "))
	host, _ := os.Hostname()
	r.add("load generator", "%s, %d CPUs visible, GOMAXPROCS %d", host, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}
