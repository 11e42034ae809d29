package rungroup

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// drainer runs until its context ends, then records that it drained and returns err.
func drainer(drained *atomic.Int32, err error) func(context.Context) error {
	return func(ctx context.Context) error {
		<-ctx.Done()
		drained.Add(1)
		if err != nil {
			return err
		}
		return ctx.Err()
	}
}

func TestGroup(t *testing.T) {
	errFail := errors.New("boom")
	errDrain := errors.New("final save failed")
	tests := []struct {
		name       string
		cancel     bool // cancel the parent context (a signal)
		first      func(context.Context) error
		lastErr    error // what the second drainer returns once stopped
		wantErrs   []error
		wantNilErr bool
	}{
		{name: "signal stops all, clean", cancel: true, wantNilErr: true},
		{name: "signal, a failure while draining is reported", cancel: true, lastErr: errDrain, wantErrs: []error{errDrain}},
		{name: "one component fails, others stop", first: func(context.Context) error { return errFail }, wantErrs: []error{errFail}},
		{name: "one component returns nil early, others stop", first: func(context.Context) error { return nil }, wantNilErr: true},
		{name: "failure and drain failure both reported", first: func(context.Context) error { return errFail }, lastErr: errDrain, wantErrs: []error{errFail, errDrain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var drained atomic.Int32
			var g Group
			g.Add("a", drainer(&drained, nil))
			g.Add("b", drainer(&drained, tt.lastErr))
			if tt.first != nil {
				g.Add("first", tt.first)
			}
			if tt.cancel {
				cancel()
			}
			err := g.Run(ctx)
			if got := drained.Load(); got != 2 {
				t.Fatalf("Run returned with %d of 2 components drained", got)
			}
			if tt.wantNilErr && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			for _, w := range tt.wantErrs {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want it to include %v", err, w)
				}
			}
		})
	}
}
