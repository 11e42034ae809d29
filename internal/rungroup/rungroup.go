// Package rungroup composes a command's long-running components (each a Run(ctx) error) the way
// Prometheus composes its own with oklog/run: the first component to return, with an error or
// without, or the end of the parent context, stops all the others, and Run waits for every one
// of them to drain before it returns.
//
// Unlike a bare run.Group, which reports only the first actor's result, Run returns every
// component's error: a failure met while draining (a final checkpoint that could not be saved,
// uploads abandoned at shutdown) must reach the exit code even when a signal stopped the process.
package rungroup

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/oklog/run"
)

// Group is a set of named components. The zero value is ready to use.
type Group struct {
	comps []component
}

type component struct {
	name string
	run  func(context.Context) error
}

// Add registers a component. Its context ends when any component returns or the parent
// context of Run ends. A component that returns context.Canceled after being stopped has not
// failed.
func (g *Group) Add(name string, run func(ctx context.Context) error) {
	g.comps = append(g.comps, component{name: name, run: run})
}

// Run starts every component and returns when all have returned. The error joins each
// component's failure, prefixed by its name; nil when every component stopped cleanly.
func (g *Group) Run(ctx context.Context) error {
	var (
		rg   run.Group
		mu   sync.Mutex
		errs []error
	)
	// The parent context is an actor of its own, so a signal stops the group like any component.
	stop := make(chan struct{})
	rg.Add(func() error {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		return nil
	}, func(error) { close(stop) })
	for _, c := range g.comps {
		cctx, cancel := context.WithCancel(ctx)
		rg.Add(func() error {
			defer cancel()
			err := c.run(cctx)
			if err != nil && !(cctx.Err() != nil && errors.Is(err, context.Canceled)) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
				mu.Unlock()
			}
			return err
		}, func(error) { cancel() })
	}
	rg.Run()
	return errors.Join(errs...)
}
