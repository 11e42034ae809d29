// Command gen writes the bad-input corpus (integration/hostile) into a directory:
//
//	go run ./integration/hostile/gen -out integration/hostile/testdata
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/logrouter/logrouter/integration/hostile"
)

func main() {
	out := flag.String("out", "integration/hostile/testdata", "directory to write the corpus into")
	flag.Parse()
	if err := hostile.WriteDir(*out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
