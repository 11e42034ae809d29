//go:build !collector

package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/logrouter/logrouter/internal/cli"
)

// parseOnly parses a logrouter command line and the LOGROUTER_ variables of its environment
// with the real flag set of its subcommand, by running the real command with -h last: flag
// parsing stops at -h after every argument before it was parsed (an unknown flag or a bad value
// fails), and nothing runs. Each LOGROUTER_<FLAG> variable is given as --<flag>=value, so a
// variable that names no flag (which the command would ignore) fails too; variables without
// that prefix are not the command's.
func parseOnly(cmdline []string, env map[string]string) error {
	if len(cmdline) == 0 {
		return fmt.Errorf("no command")
	}
	c, ok := commands[cmdline[0]]
	if !ok {
		return fmt.Errorf("no command %q", cmdline[0])
	}
	// The variables go first (after the action of a command that takes one), so that the
	// command line wins as it does over the environment, and a flag left without its value at
	// the end of the command line still fails.
	head := 1
	if len(c.actions) > 0 {
		head = 2
	}
	head = min(head, len(cmdline))
	args := slices.Clone(cmdline[:head])
	for _, k := range slices.Sorted(mapKeys(env)) {
		if name, ok := strings.CutPrefix(k, "LOGROUTER_"); ok {
			name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
			if cli.EnvName(name) != k {
				return fmt.Errorf("%s cannot be a flag's variable", k)
			}
			args = append(args, "--"+name+"="+env[k])
		}
	}
	args = append(args, cmdline[head:]...)
	// Were -h taken as the value of a flag left without one, the command would run: with a
	// cancelled context its components stop at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-h"), &stdout, &stderr)
	switch {
	case code != 0:
		return fmt.Errorf("logrouter %q: exit %d: %s", args, code, firstLine(stderr.String()))
	case !strings.Contains(stderr.String(), "Usage of "):
		return fmt.Errorf("logrouter %q -h printed no usage: -h was taken as a flag's value", args)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
