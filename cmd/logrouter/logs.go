//go:build !collector

package main

import (
	"context"
	"io"

	"github.com/logrouter/logrouter/internal/logscmd"
)

func init() {
	commands["logs"] = command{summary: "read a namespace's logs through the gateway, live and archived, like kubectl logs -f / stern", run: runLogs}
}

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return logscmd.Run(ctx, args, logscmd.OSEnv(), stdout, stderr)
}
