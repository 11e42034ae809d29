// Package retention parses the logrouter.io/retention namespace annotation: how long the
// namespace's topic keeps records (Kafka retention.ms).
//
// Accepted forms: a Go duration ("36h", "90m", "1h30m"), a whole number of days ("7d"), or
// days followed by a Go duration ("1d12h"). The value must be at least one millisecond, since
// retention.ms has millisecond resolution, and fit in a time.Duration.
package retention

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid retention")

// Min is the smallest retention accepted.
const Min = time.Millisecond

const day = 24 * time.Hour

// Parse parses a retention value.
func Parse(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty value", ErrInvalid)
	}
	var d time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		digits := s[:i]
		if digits == "" {
			return 0, fmt.Errorf("%w %q: want a number of days before 'd'", ErrInvalid, s)
		}
		for j := 0; j < len(digits); j++ {
			if digits[j] < '0' || digits[j] > '9' {
				return 0, fmt.Errorf("%w %q: %q is not a whole number of days", ErrInvalid, s, digits)
			}
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || n > int64(math.MaxInt64/day) {
			return 0, fmt.Errorf("%w %q: too many days", ErrInvalid, s)
		}
		d = time.Duration(n) * day
		rest = s[i+1:]
	}
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			if rest != s {
				return 0, fmt.Errorf("%w %q: sign after the days", ErrInvalid, s)
			}
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%w %q: %v (want e.g. 7d, 36h or 1d12h)", ErrInvalid, s, err)
		}
		if r > 0 && d > math.MaxInt64-r {
			return 0, fmt.Errorf("%w %q: too long", ErrInvalid, s)
		}
		d += r
	}
	if d < Min {
		return 0, fmt.Errorf("%w %q: must be at least %v", ErrInvalid, s, Min)
	}
	return d, nil
}

// Format renders d in the form Parse accepts, with whole days as "Nd".
func Format(d time.Duration) string {
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	if d > day {
		return strconv.FormatInt(int64(d/day), 10) + "d" + (d % day).String()
	}
	return d.String()
}
