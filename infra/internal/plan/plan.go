// Package plan runs the program offline under Pulumi's mocks with a stack's real
// config file and prints what it would create, with a monthly cost estimate.
package plan

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/quibly/quibly/infra/internal/config"
	"github.com/quibly/quibly/infra/internal/cost"
	"github.com/quibly/quibly/infra/internal/mocks"
	"github.com/quibly/quibly/infra/internal/program"
)

// GuideEstimates are the deployment guide's monthly figures for its tiers; the
// report compares against them. Other stacks have none.
var GuideEstimates = map[string]float64{"small": 200, "medium": 800, "large": 3000}

// Result is what a plan found, for tests and the closing summary.
type Result struct {
	Resources int
	Lines     []cost.Line
	Total     float64
}

// Run plans one stack from envDir and writes the report to w.
func Run(w io.Writer, envDir, stack string) (*Result, error) {
	cfgMap, err := mocks.StackFile(envDir, stack)
	if err != nil {
		return nil, err
	}
	rec, err := mocks.Run(stack, cfgMap, program.Run)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", stack, err)
	}
	// The program validated the config already; read it again for the Aurora storage size.
	var db config.Database
	if err := decode(cfgMap["quibly:database"], &db); err != nil {
		return nil, err
	}
	prices, err := cost.LoadPrices()
	if err != nil {
		return nil, err
	}
	lines, err := cost.Estimate(prices, rec.Resources, db.StorageGB)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", stack, err)
	}

	custom := 0
	for _, r := range rec.Resources {
		if r.Custom {
			custom++
		}
	}
	fmt.Fprintf(w, "Quibly plan for stack %q (offline, Pulumi mocks, config environments/Pulumi.%s.yaml)\n\n", stack, stack)
	printResources(w, rec.Resources)
	fmt.Fprintf(w, "\n%d resources in %d components.\n\n", custom, len(rec.Resources)-custom)

	total := cost.Total(lines)
	printCost(w, prices, lines, total)
	printComparison(w, stack, lines, total)
	return &Result{Resources: custom, Lines: lines, Total: total}, nil
}

func printResources(w io.Writer, rs []mocks.Resource) {
	type row struct{ component, typ, name, settings string }
	var rows []row
	for _, r := range rs {
		if !r.Custom {
			continue
		}
		rows = append(rows, row{component(r.Parent), shortType(r.Type), r.Name, Settings(r)})
	}
	order := map[string]int{"network": 0, "firewall": 1, "secrets": 2, "loadbalancer": 3, "cache": 4, "kafka": 5, "database": 6, "fleet": 7, "alarms": 8}
	sort.SliceStable(rows, func(i, j int) bool {
		if order[rows[i].component] != order[rows[j].component] {
			return order[rows[i].component] < order[rows[j].component]
		}
		return rows[i].name < rows[j].name // registration order is concurrent; sort for a stable report
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tTYPE\tNAME\tKEY SETTINGS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.component, r.typ, r.name, r.settings)
	}
	tw.Flush()
}

func printCost(w io.Writer, p *cost.Prices, lines []cost.Line, total float64) {
	fmt.Fprintf(w, "Monthly cost estimate (%s on-demand, %s, price table compiled %s, %g h/month)\n",
		p.Region, p.Currency, p.Compiled, p.HoursPerMonth)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, " USD/month\tKIND\tRESOURCE\tITEM")
	for _, l := range lines {
		fmt.Fprintf(tw, "%10.2f\t%s\t%s\t%s\n", l.Monthly, l.Kind, l.Resource, l.Item)
	}
	fmt.Fprintf(tw, "%10.2f\t\tTOTAL\t\n", total)
	tw.Flush()
	fmt.Fprintf(w, "Not included: %s\nPrices: %s\n", p.Assumptions.Note, "infra/internal/cost/prices.json (sources listed there)")
}

func printComparison(w io.Writer, stack string, lines []cost.Line, total float64) {
	listed, ha, support := cost.Total(lines, cost.Listed), cost.Total(lines, cost.HA), cost.Total(lines, cost.Support)
	fmt.Fprintf(w, "\nBreakdown: nodes the guide lists $%.0f + redundancy the guide does not list $%.0f + supporting services $%.0f = $%.0f\n",
		listed, ha, support, total)
	guide, ok := GuideEstimates[stack]
	if !ok {
		fmt.Fprintf(w, "The deployment guide has no figure for stack %q.\n", stack)
		return
	}
	diff := total - guide
	fmt.Fprintf(w, "Versus the guide's ~$%.0f/month: %+.0f (%+.0f%%).\n", guide, diff, 100*diff/guide)
	var why []string
	if d := listed - guide; d > guide*0.05 {
		why = append(why, fmt.Sprintf("the listed nodes alone cost $%.0f at the table's on-demand prices, $%.0f over the guide's figure", listed, d))
	} else if d < -guide*0.05 {
		why = append(why, fmt.Sprintf("the listed nodes cost $%.0f, $%.0f under the guide's figure", listed, -d))
	}
	if ha > 0 {
		why = append(why, fmt.Sprintf("redundancy the tier needs but the guide does not price (%s) adds $%.0f", items(lines, cost.HA), ha))
	}
	if support > 0 {
		why = append(why, fmt.Sprintf("supporting services the guide leaves out (NAT, ALB, public IPv4, storage, keys, secrets, alarms) add $%.0f", support))
	}
	if abs(diff) <= guide*0.15 {
		fmt.Fprintf(w, "Within 15%% of the guide; ")
	} else {
		fmt.Fprintf(w, "Differs from the guide because ")
	}
	fmt.Fprintf(w, "%s.\n", strings.Join(why, "; "))
}

func items(lines []cost.Line, k cost.Kind) string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		if l.Kind == k && !seen[l.Item] {
			seen[l.Item] = true
			out = append(out, l.Item)
		}
	}
	return strings.Join(out, ", ")
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// component is the name of the component a resource belongs to (its parent URN's name).
func component(parentURN string) string {
	if i := strings.LastIndex(parentURN, "::"); i >= 0 {
		return parentURN[i+2:]
	}
	return parentURN
}

// shortType turns aws:ec2/securityGroupRule:SecurityGroupRule into ec2.SecurityGroupRule.
func shortType(t string) string {
	parts := strings.Split(t, ":")
	if len(parts) != 3 {
		return t
	}
	mod := strings.SplitN(parts[1], "/", 2)[0]
	return mod + "." + parts[2]
}
