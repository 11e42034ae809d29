package bucketurl

import (
	"errors"
	"strings"
	"testing"
)

// TestCheck runs hand-typed URLs, the way operators write them, through Check.
func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want []string // substrings of the error; nil: accepted
	}{
		{"file:///ok", nil},
		{"file:///ok?create_dir=true", nil},
		{"file:///var/lib/archive/", nil},
		{"file:/single/slash", nil},
		{"file://./relative/dir", nil},
		{"s3://b?region=us-east-1", nil},
		{"s3://b?region=us-east-1&endpoint=http://127.0.0.1:9000&use_path_style=true&disable_https=true", nil},
		{"gs://b", nil},
		{"azblob://b", nil},
		{"file:relative", []string{"file:///abs/path"}},
		{"file://relative/dir", []string{`host "relative"`, "/dir", "file:///abs/path", "file:///relative/dir", "file://./relative/dir"}},
		{"file://host/x", []string{`host "host"`, "file:///abs/path"}},
		{"file://name", []string{`host "name"`, "file:///abs/path"}},
		{"file://", []string{"no directory", "file:///abs/path"}},
		{"file:///", []string{"no directory"}},
		{"file://./", []string{"no directory"}},
		{"mem://", []string{"memory", "s3, gs, azblob, file"}},
		{"mem://bucket", []string{"memory", "s3, gs, azblob, file"}},
		{"bogus://x", []string{`"bogus"`, "s3, gs, azblob, file"}},
		{"s3://", []string{"s3://<bucket name>"}},
		{"s3:bucket", []string{"s3://<bucket name>"}},
		{"", []string{"empty", "file:///abs/path"}},
		{"/var/lib/archive", []string{"no scheme", "file:///abs/path"}},
		{"%zz", []string{"invalid URL escape"}},
	} {
		err := Check(tt.url)
		if tt.want == nil {
			if err != nil {
				t.Errorf("Check(%q) = %v, want nil", tt.url, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Check(%q) = nil, want an error", tt.url)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Check(%q) = %q, lacks %q", tt.url, err, w)
			}
		}
	}
	if err := Check("mem://"); !errors.Is(err, ErrNotDurable) {
		t.Errorf("mem:// error %v is not ErrNotDurable", err)
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"file:///x", "file://h/x", "mem://", "s3://b?region=r", "bogus://", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Check(s) == nil && !strings.Contains(s, "://") && !strings.HasPrefix(s, "file:/") {
			t.Fatalf("accepted %q", s)
		}
	})
}
