// Package token holds the gateway's bearer tokens: their format, the hashed record that is
// stored, and the Store that every gateway replica keeps in memory by tailing a compacted Kafka
// topic of token records (see docs/api.md, "Token store", for why Kafka).
//
// A token is "lrt_<id>_<secret>": id is 16 hex digits (public: it names the token in audit logs,
// lists and revocations), secret is 32 random bytes in unpadded base64url. Only SHA-256(secret)
// is stored; the secret has 256 bits of entropy, so a fast hash is enough (no password
// stretching needed) and comparison is constant-time.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every token secret, so it is recognizable (secret scanners) and cheaply told
// apart from Kubernetes tokens.
const Prefix = "lrt_"

const (
	idHexLen     = 16
	secretBytes  = 32
	secretB64Len = 43 // base64.RawURLEncoding.EncodedLen(32)
	// Len is the length of a token string.
	Len = len(Prefix) + idHexLen + 1 + secretB64Len
)

// Errors callers branch on.
var (
	ErrMalformed = errors.New("malformed token")
	ErrUnknown   = errors.New("unknown token")
	ErrExpired   = errors.New("token expired")
	ErrRevoked   = errors.New("token revoked")
)

// Record is what the store keeps for a token.
type Record struct {
	ID         string    `json:"id"`
	Name       string    `json:"name,omitempty"`
	Namespaces []string  `json:"namespaces,omitempty"`
	Admin      bool      `json:"admin,omitempty"`
	Hash       string    `json:"hash,omitempty"` // hex SHA-256 of the secret part
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// Public returns r without its hash, for listing.
func (r Record) Public() Record {
	r.Hash = ""
	return r
}

// Allows reports whether the token grants reading namespace ns.
func (r *Record) Allows(ns string) bool {
	for _, n := range r.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

// Check returns ErrRevoked or ErrExpired when r is no longer usable at now.
func (r *Record) Check(now time.Time) error {
	if !r.RevokedAt.IsZero() {
		return fmt.Errorf("%w: %s at %s", ErrRevoked, r.ID, r.RevokedAt.Format(time.RFC3339))
	}
	if !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt) {
		return fmt.Errorf("%w: %s at %s", ErrExpired, r.ID, r.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// Generate returns a new token string and its record (ID, Hash and CreatedAt filled).
func Generate(now time.Time) (secret string, rec Record, err error) {
	var b [8 + secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Record{}, fmt.Errorf("generate token: %w", err)
	}
	id := hex.EncodeToString(b[:8])
	s := base64.RawURLEncoding.EncodeToString(b[8:])
	return Prefix + id + "_" + s, Record{ID: id, Hash: hashHex(s), CreatedAt: now.UTC()}, nil
}

// Parse splits a token string into its id and secret part.
func Parse(tok string) (id, secret string, err error) {
	if len(tok) != Len || !strings.HasPrefix(tok, Prefix) || tok[len(Prefix)+idHexLen] != '_' {
		return "", "", ErrMalformed
	}
	id = tok[len(Prefix) : len(Prefix)+idHexLen]
	secret = tok[len(Prefix)+idHexLen+1:]
	if !ValidID(id) {
		return "", "", ErrMalformed
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(secret); err != nil {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// ValidID reports whether id has the form of a token ID.
func ValidID(id string) bool {
	if len(id) != idHexLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func hashHex(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Verify reports whether secret matches r's hash, in constant time.
func (r *Record) Verify(secret string) bool {
	want, err := hex.DecodeString(r.Hash)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

// MaxTTL bounds token lifetimes.
const MaxTTL = 5 * 365 * 24 * time.Hour

// ParseTTL parses a lifetime: a Go duration ("36h", "90m") or a number of days ("90d").
// Zero means no expiry and must be spelled "0".
func ParseTTL(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("ttl %q: want a number of days like 90d or a duration like 36h", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("ttl %q: want a number of days like 90d or a duration like 36h", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("ttl %q: must be positive (or 0 for no expiry)", s)
	}
	if d > MaxTTL {
		return 0, fmt.Errorf("ttl %q: at most %dd", s, int(MaxTTL/(24*time.Hour)))
	}
	return d, nil
}

// MaxNamespaces bounds how many namespaces one token may grant.
const MaxNamespaces = 256

// Validate reports every problem with spec.
func (s Spec) Validate(validNamespace func(string) error) error {
	var errs []error
	if len(s.Name) > 253 {
		errs = append(errs, errors.New("name: at most 253 characters"))
	}
	if len(s.Namespaces) == 0 && !s.Admin {
		errs = append(errs, errors.New("namespaces: a non-admin token needs at least one namespace"))
	}
	if len(s.Namespaces) > MaxNamespaces {
		errs = append(errs, fmt.Errorf("namespaces: at most %d", MaxNamespaces))
	}
	seen := map[string]bool{}
	for _, ns := range s.Namespaces {
		if err := validNamespace(ns); err != nil {
			errs = append(errs, fmt.Errorf("namespaces: %w", err))
		}
		if seen[ns] {
			errs = append(errs, fmt.Errorf("namespaces: %q given twice", ns))
		}
		seen[ns] = true
	}
	if s.TTL < 0 || s.TTL > MaxTTL {
		errs = append(errs, fmt.Errorf("ttl: must be between 0 (no expiry) and %s", MaxTTL))
	}
	return errors.Join(errs...)
}
