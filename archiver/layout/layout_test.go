package layout

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"
)

func TestObjectKeyRoundTrip(t *testing.T) {
	tests := []struct {
		prefix string
		o      Object
		want   string
	}{
		{"", Object{Namespace: "team-a", Hour: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), Topic: "logs.team-a", Partition: 3, Start: 0, End: 41, Format: Parquet},
			"namespace=team-a/dt=2026-11-21/hour=09/logs.team-a+3+00000000000000000000+00000000000000000041.parquet"},
		{"archive/v1/", Object{Namespace: "x", Hour: time.Date(2026, 1, 2, 23, 0, 0, 0, time.UTC), Topic: "t", Partition: 0, Start: 7, End: 7, Format: NDJSON},
			"archive/v1/namespace=x/dt=2026-01-02/hour=23/t+0+00000000000000000007+00000000000000000007.ndjson.zst"},
	}
	for _, tt := range tests {
		key := tt.o.Key(tt.prefix)
		if key != tt.want {
			t.Errorf("key %s, want %s", key, tt.want)
		}
		got, err := ParseKey(tt.prefix, key)
		if err != nil || got != tt.o {
			t.Errorf("ParseKey(%s) = %+v, %v", key, got, err)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, key := range []string{
		"_claims/t/0/00000000000000000000.json",
		"_staging/abc/x+t+0+00000000000000000000+00000000000000000001.parquet",
		"_staging/abc+x+t+0+00000000000000000000+00000000000000000001.parquet.staged",
		"namespace=a/dt=2026-11-21/hour=24/t+0+00000000000000000000+00000000000000000001.parquet",
		"namespace=a/dt=2026-13-21/hour=01/t+0+00000000000000000000+00000000000000000001.parquet",
		"namespace=a/dt=2026-11-21/hour=01/t+0+00000000000000000002+00000000000000000001.parquet",
		"namespace=a/dt=2026-11-21/hour=01/t+0+0+1.parquet",
		"namespace=a/dt=2026-11-21/hour=01/t+0+00000000000000000000+00000000000000000001.csv",
		"namespace=/dt=2026-11-21/hour=01/t+0+00000000000000000000+00000000000000000001.parquet",
		"namespace=a/dt=2026-11-21/hour=01/t+-1+00000000000000000000+00000000000000000001.parquet",
	} {
		if _, err := ParseKey("", key); !errors.Is(err, ErrNotDataKey) {
			t.Errorf("ParseKey(%s) = %v, want ErrNotDataKey", key, err)
		}
	}
	if _, err := ParseKey("p", "q/namespace=a/dt=2026-11-21/hour=01/t+0+00000000000000000000+00000000000000000001.parquet"); !errors.Is(err, ErrNotDataKey) {
		t.Error("key outside the prefix accepted")
	}
}

// TestStagingKeyMatchesNoDataGlob checks that a staging object an interrupted upload leaves
// behind is invisible to analysts' globs (<root>/**/*.parquet, **/*.ndjson.zst), which DuckDB
// applies to _-prefixed directories too, and that it is one flat name under StagingDir (no
// per-attempt directory for fileblob to leave behind).
func TestStagingKeyMatchesNoDataGlob(t *testing.T) {
	hour := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for _, prefix := range []string{"", "arch/v1"} {
		for _, f := range []Format{Parquet, NDJSON} {
			for _, ns := range []string{"a", "team-b"} {
				for _, attempt := range []string{"0123456789abcdef", "fedcba9876543210"} {
					o := Object{Namespace: ns, Hour: hour, Topic: "logs." + ns, Partition: 2, Start: 5, End: 9, Format: f}
					key := StagingKey(prefix, o, attempt)
					rest, ok := strings.CutPrefix(key, StagingDir(prefix))
					if !ok || strings.Contains(rest, "/") || !strings.HasSuffix(rest, StagingExt) {
						t.Errorf("staging key %q: want one name under %q ending in %q", key, StagingDir(prefix), StagingExt)
					}
					for _, g := range []Format{Parquet, NDJSON} {
						if m, _ := path.Match("*."+string(g), path.Base(key)); m || strings.HasSuffix(key, "."+string(g)) {
							t.Errorf("staging key %q matches the data glob *.%s", key, g)
						}
					}
					if _, err := ParseKey(prefix, key); !errors.Is(err, ErrNotDataKey) {
						t.Errorf("ParseKey(%q) = %v, want ErrNotDataKey", key, err)
					}
					if seen[key] {
						t.Errorf("staging key %q not unique", key)
					}
					seen[key] = true
				}
			}
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add("namespace=team-a/dt=2026-11-21/hour=09/logs.team-a+3+00000000000000000000+00000000000000000041.parquet")
	f.Add("namespace=a/dt=2026-11-21/hour=1/t+0+1+2.ndjson.zst")
	f.Fuzz(func(t *testing.T, key string) {
		o, err := ParseKey("", key)
		if err != nil {
			return
		}
		// Whatever parses renders back to the same key.
		if back := o.Key(""); back != key {
			t.Fatalf("ParseKey(%q) = %+v renders %q", key, o, back)
		}
	})
}

func TestClaimRoundTrip(t *testing.T) {
	c := Claim{Topic: "logs.a", Partition: 1, Start: 10, End: 20, BucketTimeMs: 5, Records: 11,
		Objects: []ClaimObject{{Key: "k", Staging: "s", Namespace: "a", Records: 11}}}
	got, err := DecodeClaim(c.Encode())
	if err != nil || got.Next() != 21 || got.Objects[0] != c.Objects[0] {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{`{`, `{"topic":"t","partition":0,"start":5,"end":4,"objects":[{}]}`,
		`{"topic":"t","partition":0,"start":0,"end":0,"objects":[]}`, `{"topic":"t","extra":1}`} {
		if _, err := DecodeClaim([]byte(bad)); !errors.Is(err, ErrBadClaim) {
			t.Errorf("DecodeClaim(%s) = %v", bad, err)
		}
	}
}

func FuzzDecodeClaim(f *testing.F) {
	f.Add([]byte(`{"topic":"logs.a","partition":1,"start":10,"end":20,"bucket_time_ms":5,"records":11,"objects":[{"key":"k","staging":"s","namespace":"a","records":11}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeClaim(b)
		if err != nil {
			return
		}
		if c.End < c.Start || c.Start < 0 || len(c.Objects) == 0 {
			t.Fatalf("accepted %+v", c)
		}
		again, err := DecodeClaim(c.Encode())
		if err != nil || again.Next() != c.Next() {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestValidNamespace(t *testing.T) {
	for ns, want := range map[string]bool{"a": true, "team-a": true, "a1-b2": true, "": false, "-a": false, "a-": false,
		"A": false, "a_b": false, "a/b": false, "..": false, strings.Repeat("a", 63): true, strings.Repeat("a", 64): false} {
		if ValidNamespace(ns) != want {
			t.Errorf("ValidNamespace(%q) != %v", ns, want)
		}
	}
}
