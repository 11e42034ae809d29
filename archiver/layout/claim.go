package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Claim records that Kafka offsets [Start, End] of one topic partition are archived in Objects.
// It is written with write-if-absent at ClaimKey(Start); whoever writes it first owns the
// range, and the next range starts at End+1.
type Claim struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	// BucketTimeMs is the partition's running maximum of Kafka timestamps (milliseconds) after
	// End: the bucketing clock the next range continues from.
	BucketTimeMs int64         `json:"bucket_time_ms"`
	Records      int64         `json:"records"`
	Objects      []ClaimObject `json:"objects"`
	Writer       string        `json:"writer,omitempty"`
}

// ClaimObject is one data object of a claim (one per namespace in the range).
type ClaimObject struct {
	Key       string `json:"key"`
	Staging   string `json:"staging"`
	Namespace string `json:"namespace"`
	Records   int64  `json:"records"`
}

// Next is the first offset of the following range.
func (c *Claim) Next() int64 { return c.End + 1 }

// ErrBadClaim wraps every claim decoding problem.
var ErrBadClaim = errors.New("bad claim")

// DecodeClaim parses a claim strictly.
func DecodeClaim(b []byte) (Claim, error) {
	var c Claim
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Claim{}, fmt.Errorf("%w: %v", ErrBadClaim, err)
	}
	if c.Topic == "" || c.Partition < 0 || c.Start < 0 || c.End < c.Start || len(c.Objects) == 0 {
		return Claim{}, fmt.Errorf("%w: %s[%d] [%d, %d] with %d objects", ErrBadClaim, c.Topic, c.Partition, c.Start, c.End, len(c.Objects))
	}
	return c, nil
}

// Encode renders the claim.
func (c *Claim) Encode() []byte {
	b, _ := json.Marshal(c)
	return b
}
