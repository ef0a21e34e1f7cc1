// Command telguard is the security and anti-fraud layer for voice
// platforms. Run `telguard help` for the subcommands.
package main

import (
	"os"

	"github.com/telguard/telguard/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
