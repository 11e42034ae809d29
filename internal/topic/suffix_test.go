package topic

import "testing"

func TestWithSuffix(t *testing.T) {
	for _, tt := range []struct {
		ns, suffix, want string
		bad              bool
	}{
		{ns: "team-a", want: "logs.team-a"},
		{ns: "team-a", suffix: "audit", want: "logs.team-a.audit"},
		{ns: "team-a", suffix: "a.b", want: "logs.team-a.a.b", bad: true},
		{ns: "team-a", suffix: "Audit", want: "logs.team-a.Audit", bad: true},
		{ns: "team-a", suffix: "-x", want: "logs.team-a.-x", bad: true},
	} {
		if got := WithSuffix(Of(tt.ns), tt.suffix); got != tt.want {
			t.Errorf("WithSuffix(%q, %q) = %q, want %q", Of(tt.ns), tt.suffix, got, tt.want)
		}
		if tt.suffix == "" {
			continue
		}
		if err := ValidSuffix(tt.suffix); (err != nil) != tt.bad {
			t.Errorf("ValidSuffix(%q) = %v, want error %v", tt.suffix, err, tt.bad)
		}
	}
	if err := Valid(Counters); err != nil {
		t.Error(err)
	}
}
