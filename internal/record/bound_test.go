package record

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestMaxValueLenBoundsEveryMessage: the worst bytes (control characters, invalid UTF-8, quotes)
// and random bytes never encode above MaxValueLen, and MaxMessageLen inverts it.
func TestMaxValueLenBoundsEveryMessage(t *testing.T) {
	frag := (&Source{Namespace: "ns", Pod: "p", Container: "c", File: "/var/log/pods/x/0.log", Src: "1:2"}).Fragment()
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300000)
	for i := range random {
		random[i] = byte(rng.UintN(256))
	}
	perr := strings.Repeat("\x01", 100) // a parse error with bytes that escape
	for name, msg := range map[string][]byte{
		"empty":           nil,
		"control":         []byte(strings.Repeat("\x01", 100000)),
		"control+invalid": []byte(strings.Repeat("\x01", 99999) + "\xff"),
		"invalid":         []byte(strings.Repeat("\xff", 100001)),
		"quotes":          []byte(strings.Repeat(`"`, 100002)),
		"random":          random,
		"one invalid":     {0xff},
	} {
		l := Line{TS: []byte("2026-12-01T10:00:00.123456789Z"), Stream: "stderr", Message: msg, Offset: 1 << 62,
			Split: true, SplitIndex: 1 << 30, ParseError: "cri: " + perr}
		v, _ := AppendJSON(nil, frag, &l)
		if max := MaxValueLen(len(msg), len(frag)); len(v) > max {
			t.Errorf("%s: value %d bytes > MaxValueLen %d", name, len(v), max)
		}
		for _, limit := range []int{len(v), len(v) + 1, 1048588, 262144, 3000} {
			n := MaxMessageLen(limit, len(frag))
			if n > 0 && MaxValueLen(n, len(frag)) > limit {
				t.Errorf("MaxMessageLen(%d) = %d: MaxValueLen %d over the limit", limit, n, MaxValueLen(n, len(frag)))
			}
			if MaxValueLen(n+3, len(frag)) <= limit {
				t.Errorf("MaxMessageLen(%d) = %d is not the largest", limit, n)
			}
		}
	}
	if MaxMessageLen(100, 0) != 0 {
		t.Errorf("a value limit below the fixed overhead fits a message")
	}
}

// FuzzMaxValueLen: no message encodes above MaxValueLen.
func FuzzMaxValueLen(f *testing.F) {
	for _, s := range []string{"", "\x01", "\xff", `"\`, "\xe2\x82", "ok \u00e9 \U0001F600", strings.Repeat("\x1f\xc3", 50)} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte("x"), "cri: unexpected \"\\x01\" at byte 3")
	frag := (&Source{Namespace: "ns", Pod: "p\x01", Container: "c"}).Fragment()
	f.Fuzz(func(t *testing.T, msg []byte, perr string) {
		if len(perr) > 200 {
			perr = perr[:200] // parse errors are short messages of the parsers
		}
		l := Line{TS: []byte("2026-12-01T10:00:00.123456789Z"), Stream: "stdout", Message: msg, Offset: 1 << 40, Split: true, SplitIndex: 12345, ParseError: perr}
		v, _ := AppendJSON(nil, frag, &l)
		if max := MaxValueLen(len(msg), len(frag)); len(v) > max {
			t.Fatalf("value %d bytes > MaxValueLen %d", len(v), max)
		}
	})
}
