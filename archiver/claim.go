package archiver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// errClaimExists means another writer's claim is already at the key.
var errClaimExists = errors.New("claim exists")

// localDir returns the directory of a file:// bucket URL, or "" for other schemes.
func localDir(bucketURL string) string {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	p := u.Path
	if u.Host == "." {
		p = strings.TrimPrefix(p, "/")
	}
	return filepath.FromSlash(p)
}

// writeIfAbsent writes a claim unless one exists. Object stores enforce If-None-Match on the
// server; gocloud's fileblob only checks before it renames, which two processes can both pass,
// so on file:// buckets the claim is published with link(2), which fails atomically when the
// name exists.
func (a *Archiver) writeIfAbsent(ctx context.Context, key string, data []byte) error {
	if a.localDir == "" {
		err := a.bucket.WriteAll(ctx, key, data, &blob.WriterOptions{IfNotExist: true, ContentType: "application/json"})
		if gcerrors.Code(err) == gcerrors.FailedPrecondition {
			return errClaimExists
		}
		return err
	}
	path := filepath.Join(a.localDir, filepath.FromSlash(key))
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("claim dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".claim-*.tmp")
	if err != nil {
		return fmt.Errorf("claim temp: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("claim temp: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("claim temp: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("claim temp: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return errClaimExists
		}
		return fmt.Errorf("claim link: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the new name durable before offsets are committed
		d.Close()
	}
	return nil
}
