// Command plan prints what `pulumi up` would create for a stack, with a monthly
// cost estimate, without a cloud account or the Pulumi CLI (it runs the program
// under Pulumi's mocks with the stack's committed config).
//
//	go run ./infra/cmd/plan -stack small
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/quibly/quibly/infra/internal/plan"
)

func main() {
	stack := flag.String("stack", "small", "stack to plan (environments/Pulumi.<stack>.yaml)")
	envDir := flag.String("env-dir", "environments", "directory holding the stack files")
	flag.Parse()
	if _, err := plan.Run(os.Stdout, *envDir, *stack); err != nil {
		fmt.Fprintln(os.Stderr, "plan:", err)
		os.Exit(1)
	}
}
