package cursor

import (
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		offsets []int64
	}{
		{"one partition at zero", []int64{0}},
		{"unknown", []int64{-1, -1}},
		{"mixed", []int64{5, -1, 1 << 40, 0}},
		{"many", make([]int64, MaxPartitions)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Cursor{TopicHash: TopicHash("logs.team-a"), Offsets: tt.offsets}
			got, err := DecodeFor(c.String(), "logs.team-a")
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Offsets) != len(tt.offsets) {
				t.Fatalf("got %d partitions, want %d", len(got.Offsets), len(tt.offsets))
			}
			for i := range tt.offsets {
				if got.Offsets[i] != tt.offsets[i] {
					t.Fatalf("partition %d: got %d want %d", i, got.Offsets[i], tt.offsets[i])
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := Cursor{TopicHash: TopicHash("logs.a"), Offsets: []int64{3}}.String()
	tests := []struct {
		name  string
		in    string
		topic string
		want  error
	}{
		{"empty", "", "logs.a", ErrMalformed},
		{"not base64", "!!!!", "logs.a", ErrMalformed},
		{"padded base64", valid + "==", "logs.a", ErrMalformed},
		{"short", "AQ", "logs.a", ErrMalformed},
		{"other topic", valid, "logs.b", ErrOtherTopic},
		{"version 2", "AgAAAAABAQ", "logs.a", ErrUnsupported},
		{"zero partitions", Cursor{TopicHash: TopicHash("logs.a")}.String(), "logs.a", ErrMalformed},
		{"trailing", valid + "AA", "logs.a", ErrMalformed},
		{"too long", strings.Repeat("A", 100000), "logs.a", ErrMalformed},
		{"too many partitions", Cursor{TopicHash: TopicHash("logs.a"), Offsets: make([]int64, MaxPartitions+1)}.String(), "logs.a", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeFor(tt.in, tt.topic)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeFor(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Cursor{TopicHash: 1, Offsets: []int64{0, 5, -1}}.String())
	f.Add("")
	f.Add("AQAAAAEB")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Decode(s)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a cursor that decodes to the same position.
		c2, err := Decode(c.String())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if c2.TopicHash != c.TopicHash || len(c2.Offsets) != len(c.Offsets) {
			t.Fatalf("round trip changed cursor")
		}
		for i := range c.Offsets {
			if c.Offsets[i] < -1 || c.Offsets[i] != c2.Offsets[i] {
				t.Fatalf("partition %d: %d vs %d", i, c.Offsets[i], c2.Offsets[i])
			}
		}
	})
}
