package logline

import "time"

// ParseUTC returns the time of ts, a timestamp as NormalizeTS returns it (RFC 3339 UTC with
// 'Z'), as time.Parse(time.RFC3339Nano, ts) would, without its string allocation: the
// collector reads the time of every line a pipeline runs on. Anything else goes to time.Parse.
func ParseUTC(ts []byte) (time.Time, error) {
	n := len(ts)
	if n >= 20 && ts[n-1] == 'Z' {
		if ok, _ := checkBody(ts, ts[:n-1]); ok {
			return parseChecked(ts[:n-1]), nil
		}
	}
	return time.Parse(time.RFC3339Nano, string(ts))
}

// parseChecked reads a body checkBody accepted (digits and ranges are checked there).
func parseChecked(body []byte) time.Time {
	d := func(b []byte) int { v, _ := digits(b); return v }
	nsec := 0
	if len(body) > 20 {
		frac := body[20:]
		nsec = d(frac)
		for range 9 - len(frac) {
			nsec *= 10
		}
	}
	return time.Date(d(body[0:4]), time.Month(d(body[5:7])), d(body[8:10]),
		d(body[11:13]), d(body[14:16]), d(body[17:19]), nsec, time.UTC)
}
