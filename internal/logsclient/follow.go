package logsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/logrouter/logrouter/api/problem"
)

// streamLine is one line of the logs endpoint's NDJSON stream.
type streamLine struct {
	Type      string           `json:"type"`
	Cursor    string           `json:"cursor"`
	Partition int32            `json:"partition"`
	Offset    int64            `json:"offset"`
	Record    json.RawMessage  `json:"record"`
	Skipped   *skip            `json:"skipped"`
	Reason    string           `json:"reason"`
	Problem   *problem.Problem `json:"problem"`
}

// errReconnect ends one stream request that should be resumed at once (the gateway said it
// is shutting down).
var errReconnect = errors.New("the gateway ended the stream (shutdown)")

// follow streams from cursor until ctx ends. Every line carries the cursor after it (records,
// heartbeats, skips), so a stream that breaks for any reason resumes from the last one: no
// gap, no duplicate. Failures are retried with backoff within the retry budget, counted from
// the first failure since a stream last worked.
func (c *Client) follow(ctx context.Context, r *retrier, q Query, filled map[int32]int64, cursor string, emit func(*Entry) error) error {
	for {
		err := c.stream(ctx, r, q, filled, &cursor, emit)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errReconnect):
			continue
		case err == nil:
			err = errors.New("the stream ended without an end line (connection lost)")
		case !retryable(err):
			return err
		}
		if werr := r.wait(ctx, "following logs", err); werr != nil {
			return werr
		}
	}
}

// stream runs one stream request, advancing *cursor with every line.
func (c *Client) stream(ctx context.Context, r *retrier, q Query, filled map[int32]int64, cursor *string, emit func(*Entry) error) error {
	v := q.filters()
	v.Set("from", *cursor)
	resp, err := c.get(ctx, "logs", v, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = readLines(resp.Body, func(b []byte) (bool, error) {
		var l streamLine
		if err := json.Unmarshal(b, &l); err != nil {
			return false, fmt.Errorf("%w: stream line: %w", errFatal, err)
		}
		switch l.Type {
		case "record":
			e, err := entry(FromKafka, l.Partition, l.Offset, l.Record)
			if err != nil {
				return false, fmt.Errorf("%w: %w", errFatal, err)
			}
			if err := emit(e); err != nil {
				return false, err
			}
		case "heartbeat":
			r.ok() // the stream works: a later failure starts a new retry budget
		case "skipped":
			if l.Skipped != nil {
				if err := c.fill(ctx, r, q, filled, *l.Skipped, emit); err != nil {
					return false, err
				}
			}
			// The cursor is not taken from a skip: the gateway reports the gaps of all
			// partitions with the cursor past all of them, so a stream cut between two fills
			// would lose the second. The next line carries it; filled stops a repeat.
			return false, nil
		case "end":
			switch l.Reason {
			case "shutdown":
				return false, errReconnect
			case "unauthorized":
				ae := &APIError{Status: http.StatusUnauthorized}
				if l.Problem != nil {
					ae.Problem = *l.Problem
					if l.Problem.Status != 0 {
						ae.Status = l.Problem.Status // 403 when access was lost, 401 when revoked
					}
				}
				return false, ae
			}
			return false, fmt.Errorf("the gateway ended the stream: %s", l.Reason)
		}
		if l.Cursor != "" {
			*cursor = l.Cursor
		}
		return false, nil
	})
	return err
}
