package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command, and every action of a command that takes one, prints its usage for -h and
// --help and exits 0 (without starting anything).
func TestHelpEverywhere(t *testing.T) {
	var invocations [][]string
	for name, c := range commands {
		invocations = append(invocations, []string{name})
		for _, a := range c.actions {
			invocations = append(invocations, []string{name, a})
		}
	}
	if len(invocations) == 0 {
		t.Fatal("no commands registered")
	}
	for _, inv := range invocations {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, inv...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
				}
				out := strings.ToLower(stdout.String() + stderr.String())
				if !strings.Contains(out, "usage") {
					t.Errorf("no usage printed:\n%s", out)
				}
			})
		}
	}
}

func TestUnknownActionFails(t *testing.T) {
	for name, c := range commands {
		if len(c.actions) == 0 {
			continue
		}
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{name, "no-such-action"}, &stdout, &stderr); code == 0 {
			t.Errorf("%s no-such-action exited 0", name)
		}
	}
}
