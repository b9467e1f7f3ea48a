package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// notMeasured is what a planned section's rows say until it is built.
const notMeasured = "not measured yet"

// ranSections names the sections of outs that ran, by key.
func ranSections(outs []outcome) []string {
	var ran []string
	for _, out := range outs {
		if out.run != nil {
			ran = append(ran, out.key)
		}
	}
	return ran
}

// printReport writes the report as markdown: the machine, the table, and
// the raw figures behind it.
func printReport(w io.Writer, o options, m machine, outs []outcome, took time.Duration) {
	kind, command := "full run", "go run ./scripts/bench"
	if o.quick {
		kind, command = "quick run", command+" -quick"
	}
	if ran := ranSections(outs); len(ran) < len(sections) {
		command += " -only " + strings.Join(ran, ",")
		kind = "run of section"
		if len(ran) > 1 {
			kind += "s"
		}
		kind += " " + strings.Join(ran, ", ")
	}
	fmt.Fprintf(w, "\n## mmsgate benchmark\n\n")
	var apart []string
	inProcess := false
	for _, out := range outs {
		switch {
		case out.run == nil:
		case out.key == "ratelimit":
			apart = append(apart, "section 4's three worker processes")
		case out.key == "scale":
			apart = append(apart, "section 6's API and worker processes (on a Redis Cluster of their own, "+
				"not the Redis below)")
		default:
			inProcess = true
		}
	}
	where := "API and workers run in-process with the load generator"
	switch {
	case !inProcess && len(apart) > 0:
		where = "the services run as " + strings.Join(apart, " and ")
	case len(apart) > 0:
		where += ", but for " + strings.Join(apart, " and ")
	}
	fmt.Fprintf(w, "`%s`, %s, %s, took %s; %s.\n\n",
		command, kind, time.Now().Format("2006-01-02"), took.Round(time.Second), where)

	fmt.Fprintln(w, "| machine | |")
	fmt.Fprintln(w, "|---|---|")
	for _, kv := range [][2]string{{"CPU", m.cpu}, {"Go", m.goVersion}, {"Redis", m.redis}, {"OS", m.os},
		{"load", m.load}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "| %s | %s |\n", kv[0], cell(kv[1]))
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| section | figure | measured | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, out := range outs {
		for _, r := range tableRows(out) {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", cell(out.title), cell(r.figure),
				cell(r.measured), cell(orDash(r.target)), cell(orDash(r.verdict)))
		}
	}

	fmt.Fprintf(w, "\n### Raw figures\n")
	for _, out := range outs {
		if out.run == nil {
			continue
		}
		fmt.Fprintf(w, "\n**%s**\n\n", out.title)
		if out.err != nil {
			fmt.Fprintf(w, "- error: %s\n", oneLine(out.err.Error()))
			continue
		}
		for _, line := range strings.Split(strings.Join(out.raw, "\n"), "\n") {
			if rest, ok := strings.CutPrefix(line, "  "); ok {
				fmt.Fprintf(w, "  - %s\n", rest)
			} else {
				fmt.Fprintf(w, "- %s\n", line)
			}
		}
	}
}

// tableRows are a section's rows: measured, failed, or planned.
func tableRows(out outcome) []row {
	switch {
	case out.run == nil:
		rows := make([]row, len(out.planned))
		for i, p := range out.planned {
			rows[i] = row{figure: p, measured: notMeasured}
		}
		return rows
	case out.err != nil:
		return []row{{figure: "(section failed)", measured: "error: " + oneLine(out.err.Error()), verdict: "ERROR"}}
	}
	return out.rows
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell makes s safe inside a markdown table cell.
func cell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }
