// Package bucketurl checks hand-typed gocloud.dev/blob bucket URLs before a command trusts
// data to them. gocloud opens some URLs that lose data without an error: mem:// keeps objects
// in the process's memory, and file://host/path silently drops host (file://relative/dir is
// the directory /dir).
package bucketurl

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Durable lists the schemes whose objects outlive the process, in the order messages name them.
var Durable = []string{"s3", "gs", "azblob", "file"}

// ErrNotDurable means the URL's scheme keeps nothing once the process ends (or is unknown).
var ErrNotDurable = errors.New("not a durable bucket")

// Check reports why raw is not the URL of a durable bucket, or nil. It accepts
// s3://bucket, gs://bucket, azblob://container (query parameters are the drivers' business),
// file:///absolute/dir and file://./relative/dir (gocloud's relative form).
func Check(raw string) error {
	if raw == "" {
		return errors.New("empty bucket URL: want s3://bucket, gs://bucket, azblob://container or file:///abs/path")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bucket URL %q: %w", raw, err)
	}
	durable := strings.Join(Durable, ", ")
	switch u.Scheme {
	case "":
		return fmt.Errorf("bucket URL %q has no scheme: want s3://bucket, gs://bucket, azblob://container or file:///abs/path", raw)
	case "mem":
		return fmt.Errorf("bucket URL %q: %w: mem:// keeps objects in this process's memory and loses them when it exits; use one of %s", raw, ErrNotDurable, durable)
	case "file":
		return checkFile(raw, u)
	case "s3", "gs", "azblob":
		if u.Host == "" || u.Opaque != "" {
			return fmt.Errorf("bucket URL %q: want %s://<bucket name>[?options]", raw, u.Scheme)
		}
		return nil
	}
	return fmt.Errorf("bucket URL %q: %w: scheme %q is not one of %s", raw, ErrNotDurable, u.Scheme, durable)
}

func checkFile(raw string, u *url.URL) error {
	switch {
	case u.Opaque != "":
		// file:relative/dir: gocloud would open the empty path.
		return fmt.Errorf("bucket URL %q: want file:///abs/path (three slashes) or file://./relative/path", raw)
	case u.Host != "" && u.Host != ".":
		// gocloud's fileblob drops the host: file://relative/dir is /dir, file://name is ".".
		path := u.Path
		if path == "" {
			path = "/"
		}
		return fmt.Errorf("bucket URL %q names host %q, which would be ignored (the archive would go to %s); "+
			"write file:///abs/path (three slashes) for an absolute directory, e.g. file:///%s%s, or file://./%s%s relative to the working directory",
			raw, u.Host, path, u.Host, strings.TrimSuffix(u.Path, "/"), u.Host, strings.TrimSuffix(u.Path, "/"))
	case strings.Trim(u.Path, "/") == "":
		return fmt.Errorf("bucket URL %q names no directory: want file:///abs/path", raw)
	}
	return nil
}
