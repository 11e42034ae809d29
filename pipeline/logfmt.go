package pipeline

import (
	"errors"
	"fmt"
	"strconv"
)

var errNoPairs = errors.New("no key=value pairs")

// parseLogfmtInto parses logfmt (key=value pairs separated by spaces; values bare or in
// double quotes with Go escapes; a key without "=" is true; at least one
// key=value pair is needed) into dst. Values are strings:
// logfmt has no types (CEL converts: int(record.fields.status)).
func parseLogfmtInto(s string, dst map[string]any) error {
	i, pairs := 0, 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		ks := i
		for i < len(s) && s[i] > ' ' && s[i] != '=' && s[i] != '"' {
			i++
		}
		key := s[ks:i]
		if key == "" {
			return fmt.Errorf("invalid logfmt: expected a key at offset %d", i)
		}
		if i >= len(s) || s[i] != '=' {
			if i < len(s) && s[i] == '"' {
				return fmt.Errorf("invalid logfmt: quote in key at offset %d", i)
			}
			dst[key] = true // counts only beside a real pair: "hello world" is not logfmt
			continue
		}
		i++ // =
		if i < len(s) && s[i] == '"' {
			vs := i
			i++
			escaped := false
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					escaped = true
					i++
				}
				i++
			}
			if i >= len(s) {
				return fmt.Errorf("invalid logfmt: unterminated quoted value of %q", key)
			}
			i++
			raw := s[vs:i]
			if !escaped {
				dst[key] = raw[1 : len(raw)-1]
			} else {
				v, err := strconv.Unquote(raw)
				if err != nil {
					return fmt.Errorf("invalid logfmt: quoted value of %q: %v", key, err)
				}
				dst[key] = v
			}
		} else {
			vs := i
			for i < len(s) && s[i] != ' ' && s[i] != '\t' {
				i++
			}
			dst[key] = s[vs:i]
		}
		pairs++
	}
	if pairs == 0 {
		return errNoPairs
	}
	return nil
}
