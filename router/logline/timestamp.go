package logline

import (
	"errors"
	"fmt"
	"time"
)

// ErrTimestamp is wrapped by every NormalizeTS error.
var ErrTimestamp = errors.New("not an RFC 3339 timestamp")

// maxTSLen bounds what normalizeSlow hands to time.Parse (and quotes in errors): the longest
// RFC 3339 timestamp, "2006-01-02T15:04:05.999999999-07:00", is 35 bytes; a few spare for
// longer fractions.
const maxTSLen = 48

// NormalizeTS returns ts as RFC 3339 UTC with 'Z'. When ts already has that shape (digits and
// separators in place, ends in 'Z', fractional seconds of any length 0..9, fields in range) it
// returns ts itself: this is the path of every containerd and docker line. Otherwise (an offset
// like +02:00, as CRI-O writes on nodes whose zone is not UTC) it parses ts and appends the UTC
// form (time.RFC3339Nano) to buf[:0]. Errors wrap ErrTimestamp and say what was wrong.
func NormalizeTS(ts []byte, buf []byte) ([]byte, error) {
	n := len(ts)
	if n >= 20 && ts[n-1] == 'Z' {
		ok, err := checkBody(ts, ts[:n-1])
		if err != nil {
			return nil, err
		}
		if ok {
			return ts, nil
		}
	}
	// CRI-O's "+hh:mm" form on every line of a non-UTC node: convert without time.Parse, which
	// would cost a string allocation per line.
	off, hasOff, err := offset(ts)
	if err != nil {
		return nil, err
	}
	if hasOff {
		body := ts[:n-6]
		ok, err := checkBody(ts, body)
		if err != nil {
			return nil, err
		}
		if ok {
			return shiftUTC(ts, body, buf, int(off/time.Minute))
		}
	}
	return normalizeSlow(ts, buf)
}

// offset reads a trailing "+hh:mm" or "-hh:mm". time.Parse accepts hour 24 and minute 60 there;
// RFC 3339 does not, and neither do we.
func offset(ts []byte) (off time.Duration, ok bool, err error) {
	n := len(ts)
	if n < 6 || (ts[n-6] != '+' && ts[n-6] != '-') || ts[n-3] != ':' {
		return 0, false, nil
	}
	h, ok1 := digits(ts[n-5 : n-3])
	m, ok2 := digits(ts[n-2:])
	if !ok1 || !ok2 {
		return 0, false, nil
	}
	if h > 23 || m > 59 {
		return 0, false, fmt.Errorf("%w: %s: zone offset out of range", ErrTimestamp, Quote(ts))
	}
	off = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	if ts[n-6] == '-' {
		off = -off
	}
	return off, true, nil
}

// checkBody reports whether body is "YYYY-MM-DDThh:mm:ss[.f{1,9}]". When body has that shape but a
// field is out of range it returns a precise error (quoting ts) instead; when the shape differs
// it returns (false, nil) and the caller parses ts the slow way.
func checkBody(ts, body []byte) (bool, error) {
	n := len(body)
	if n < 19 || n > 29 || body[4] != '-' || body[7] != '-' || body[10] != 'T' || body[13] != ':' || body[16] != ':' {
		return false, nil
	}
	if n > 19 {
		if body[19] != '.' || n == 20 {
			return false, nil
		}
		for _, c := range body[20:] {
			if c < '0' || c > '9' {
				return false, nil
			}
		}
	}
	year, ok1 := digits(body[0:4])
	month, ok2 := digits(body[5:7])
	day, ok3 := digits(body[8:10])
	hour, ok4 := digits(body[11:13])
	minute, ok5 := digits(body[14:16])
	sec, ok6 := digits(body[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return false, nil
	}
	var field string
	switch {
	case month < 1 || month > 12:
		field = "month"
	case day < 1 || day > daysIn(month, year):
		field = "day"
	case hour > 23:
		field = "hour"
	case minute > 59:
		field = "minute"
	case sec > 59:
		field = "second"
	default:
		return true, nil
	}
	return false, fmt.Errorf("%w: %s: %s out of range", ErrTimestamp, Quote(ts), field)
}

// shiftUTC appends body (accepted by checkBody), read in a zone offMin minutes east of UTC, as
// UTC in the time.RFC3339Nano form (fraction without trailing zeros). Offsets are under a day,
// so the date moves by at most one day: plain arithmetic, no time.Time, no allocation.
func shiftUTC(ts, body, buf []byte, offMin int) ([]byte, error) {
	year, _ := digits(body[0:4])
	month, _ := digits(body[5:7])
	day, _ := digits(body[8:10])
	hour, _ := digits(body[11:13])
	minute, _ := digits(body[14:16])
	mins := hour*60 + minute - offMin
	switch {
	case mins < 0:
		mins += 24 * 60
		if day--; day == 0 {
			if month--; month == 0 {
				month, year = 12, year-1
			}
			day = daysIn(month, year)
		}
	case mins >= 24*60:
		mins -= 24 * 60
		if day++; day > daysIn(month, year) {
			if day, month = 1, month+1; month == 13 {
				month, year = 1, year+1
			}
		}
	}
	if year < 0 || year > 9999 {
		return nil, fmt.Errorf("%w: %s: year %d in UTC is outside 0000-9999", ErrTimestamp, Quote(ts), year)
	}
	b := buf[:0]
	b = append(b, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	b = append(b, byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T')
	b = append(b, byte('0'+mins/600), byte('0'+mins/60%10), ':', byte('0'+mins%60/10), byte('0'+mins%10), ':')
	b = append(b, body[17:19]...)
	if len(body) > 20 {
		frac := body[20:]
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
		if len(frac) > 0 {
			b = append(append(b, '.'), frac...)
		}
	}
	return append(b, 'Z'), nil
}

func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func normalizeSlow(ts, buf []byte) ([]byte, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrTimestamp)
	}
	if len(ts) > maxTSLen {
		return nil, fmt.Errorf("%w: %s: too long (%d bytes)", ErrTimestamp, Quote(ts), len(ts))
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		// time's own message repeats the layout; say just which element failed.
		var pe *time.ParseError
		if !errors.As(err, &pe) {
			return nil, fmt.Errorf("%w: %s: %v", ErrTimestamp, Quote(ts), err)
		}
		if pe.Message != "" {
			return nil, fmt.Errorf("%w: %s:%s", ErrTimestamp, Quote(ts), pe.Message)
		}
		return nil, fmt.Errorf("%w: %s: cannot parse %q as %q", ErrTimestamp, Quote(ts), pe.ValueElem, pe.LayoutElem)
	}
	return appendUTC(ts, buf, t)
}

func appendUTC(ts, buf []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	// An offset can carry year 0000 or 9999 across the edge; RFC 3339 has four-digit years only.
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("%w: %s: year %d in UTC is outside 0000-9999", ErrTimestamp, Quote(ts), y)
	}
	return t.AppendFormat(buf[:0], time.RFC3339Nano), nil
}
