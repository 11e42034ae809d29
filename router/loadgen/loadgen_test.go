package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestLiveWriteTime(t *testing.T) {
	wt := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	msg := LiveMessage(wt, 7, 160)
	if got, ok := LiveWriteTime(msg); !ok || !got.Equal(wt) {
		t.Errorf("LiveWriteTime(%q) = %v %v, want %v", msg, got, ok, wt)
	}
	if n := len(msg); n < 150 || n > 170 {
		t.Errorf("LiveMessage of about 160 bytes is %d bytes", n)
	}
	for _, bad := range []string{"", SeqMessage("a", 1, 160), `{"wt":`, `{"wt":12`, `{"wt":x1,"seq":1}`, `{"wt":99999999999999999999,"seq":1}`, ` {"wt":1,"seq":1}`} {
		if got, ok := LiveWriteTime(bad); ok {
			t.Errorf("LiveWriteTime(%q) = %v, want not a live message", bad, got)
		}
	}
}

func FuzzLiveWriteTime(f *testing.F) {
	f.Add(LiveMessage(time.Unix(0, 1), 0, 0))
	f.Add(`{"wt":-5,"seq":1}`)
	f.Add(`{"wt":,`)
	f.Fuzz(func(t *testing.T, msg string) {
		wt, ok := LiveWriteTime(msg)
		if !ok {
			return
		}
		// What it read is what a LiveMessage of that time starts with.
		if again := LiveMessage(wt, 0, 0); !strings.HasPrefix(msg, again[:strings.IndexByte(again, ',')+1]) && !strings.HasPrefix(msg, `{"wt":+`) && !strings.HasPrefix(msg, `{"wt":0`) && !strings.HasPrefix(msg, `{"wt":-0`) {
			t.Fatalf("%q read as %d", msg, wt.UnixNano())
		}
	})
}
