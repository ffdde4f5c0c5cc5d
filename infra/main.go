// Command infra is the Quibly Pulumi program; see internal/program.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/quibly/quibly/infra/internal/program"
)

func main() { pulumi.Run(program.Run) }
