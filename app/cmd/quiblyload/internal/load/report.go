package load

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
)

// PrintTable writes a human-readable summary of res.
func PrintTable(w io.Writer, res *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "target\t%s %s\n", res.Target, res.Label)
	fmt.Fprintf(tw, "connections\t%d connected / %d asked, %d joined, %d channels, %d senders\n",
		res.Connected, res.Conns, res.Joined, res.Channels, res.Senders)
	rate := "max"
	if res.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", res.Rate)
	}
	fmt.Fprintf(tw, "rate\t%s (window %d), measured %.1fs, connect took %.1fs\n", rate, res.Window, res.DurationS, res.ConnectS)
	fmt.Fprintf(tw, "sent / acked / ack errors / lost\t%d / %d / %d / %d\n", res.Sent, res.Acked, res.AckErrors, res.Lost)
	fmt.Fprintf(tw, "deliveries (expected, missing)\t%d (%d, %d)\n", res.Deliveries, res.Expected, res.Missing)
	if res.Changes > 0 {
		fmt.Fprintf(tw, "changes sent, change events received\t%d, %d\n", res.Changes, res.ChangeDeliveries)
	}
	fmt.Fprintf(tw, "throughput\tsends %.0f/s, acks %.0f/s, deliveries %.0f/s\n", res.SendsPerS, res.AcksPerS, res.DelivPerS)
	if len(res.CPUSeconds) > 0 {
		names := make([]string, 0, len(res.CPUSeconds))
		for n := range res.CPUSeconds {
			names = append(names, n)
		}
		sort.Strings(names)
		line := ""
		for _, n := range names {
			line += fmt.Sprintf("%s %.2f  ", n, res.CPUSeconds[n]/res.DurationS)
		}
		fmt.Fprintf(tw, "CPU in the window (cores)\t%s\n", line)
	}
	fmt.Fprintf(tw, "\n")
	fmt.Fprintf(tw, "latency ms\tcount\tmean\tp50\tp90\tp99\tp99.9\tmax\n")
	for _, l := range []struct {
		name string
		l    Latency
	}{{"send→ack", res.Ack}, {"send→delivery", res.Delivery}} {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", l.name, l.l.Count, l.l.Mean, l.l.P50, l.l.P90, l.l.P99, l.l.P999, l.l.Max)
	}
	if len(res.Stages) > 0 {
		fmt.Fprintf(tw, "\nserver stages ms\tcount\tmean\tp50\tp99\t\t\t\n")
		for _, s := range stageSeries {
			if st, ok := res.Stages[s.stage]; ok {
				fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t\t\t\n", s.stage, st.Count, st.MeanMs, st.P50Ms, st.P99Ms)
			}
		}
	}
	if len(res.Errors) > 0 {
		keys := make([]string, 0, len(res.Errors))
		for k := range res.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(tw, "\nerrors\t\n")
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%d\n", k, res.Errors[k])
		}
	}
	_ = tw.Flush()
}

// WriteJSON writes v, indented, to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
