package pipeline

import (
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Bounds of a Runner's interner: at most internEntries strings of at most internMaxLen bytes
// (with Go's map and boxing overhead about 16 KiB per Runner when full; a Runner is per file
// and pipeline).
const (
	internMaxLen  = 64
	internEntries = 128
	internSeen    = 512 // slots of the admission filter (a power of 2)
	internLast    = 32  // top-level members whose last name and value are remembered
)

// interner keeps the boxed field values (and keys) that repeat from line to line in one
// file: levels, message templates, paths, a pod's constant fields. A parsed line would
// otherwise allocate each of them again (a string copy and its box into any), and the
// garbage collector, under the collector's tight soft memory limit, runs in proportion to
// those bytes. A string is admitted on its second sighting (a filter of hashes remembers the
// first), so values that never repeat (ids, sequence numbers) cost a hash and no entry. When
// full it starts over. Cached strings are copies of their own: a cached value never keeps a
// line's text alive.
type interner struct {
	m    map[string]any
	seen [internSeen]uint32 // tags of strings seen once (0: free)
	// last is the name and value of the json step's top-level member i on the last line, both
	// cached strings: a file's lines usually repeat their members in the same order, so most
	// names and many values are found by one comparison, without hashing.
	last [internLast]lastMember
}

type lastMember struct {
	key, val string
	box      any // val boxed; nil when the value was not a cached string
}

// get returns s boxed from the cache, admitting it when it was seen before; ok false means
// s is not cached and the caller boxes a copy it owns.
func (in *interner) get(s string) (v any, ok bool) {
	if len(s) > internMaxLen {
		return nil, false
	}
	if v, ok := in.m[s]; ok {
		return v, true
	}
	if in.m == nil {
		in.m = make(map[string]any, internEntries)
	}
	// Two places per string, so that two strings that repeat never keep evicting each other.
	// (A fixed hash: a file whose lines are made to collide only loses its own interning.)
	h := xxhash.Sum64String(s)
	s1, s2, tag := &in.seen[h&(internSeen-1)], &in.seen[(h>>16)&(internSeen-1)], uint32(h>>32)|1
	if *s1 != tag && *s2 != tag {
		switch {
		case *s1 == 0:
			*s1 = tag
		case *s2 == 0 || h&(1<<31) != 0:
			*s2 = tag
		default:
			*s1 = tag
		}
		return nil, false
	}
	if len(in.m) >= internEntries {
		clear(in.m)
	}
	c := strings.Clone(s)
	v = c
	in.m[c] = v
	return v, true
}

// key returns s as a map key: the cached copy when there is one.
func (in *interner) key(s string) (string, bool) {
	v, ok := in.get(s)
	if !ok {
		return "", false
	}
	return v.(string), true
}

// pieces makes field values of substrings of one text s. When s is a view (it aliases a
// buffer the collector reuses, valid only while the steps run), a piece that is not interned
// is a substring of one copy of s, made on first need: at most one copy per text.
type pieces struct {
	in   *interner // nil: no interning
	s    string
	view bool
	cp   string
	cpOK bool
}

// own returns s[a:b] as a string that may be kept.
func (t *pieces) own(a, b int) string {
	if !t.view {
		return t.s[a:b]
	}
	if !t.cpOK {
		t.cp, t.cpOK = strings.Clone(t.s), true
	}
	return t.cp[a:b]
}

// value returns s[a:b] as a field value.
func (t *pieces) value(a, b int) any {
	v, _ := t.valueCached(a, b)
	return v
}

// valueCached is value, and whether the value is a cached string.
func (t *pieces) valueCached(a, b int) (any, bool) {
	if t.in != nil {
		if v, ok := t.in.get(t.s[a:b]); ok {
			return v, true
		}
	}
	return t.own(a, b), false
}

// key returns s[a:b] as a field name, and whether it is a cached string.
func (t *pieces) key(a, b int) (string, bool) {
	if t.in != nil {
		if k, ok := t.in.key(t.s[a:b]); ok {
			return k, true
		}
	}
	return t.own(a, b), false
}

// memberKey returns s[a:b] as the name of top-level member i.
func (t *pieces) memberKey(i, a, b int) string {
	if t.in == nil || i >= internLast {
		k, _ := t.key(a, b)
		return k
	}
	l := &t.in.last[i]
	if l.key != "" && l.key == t.s[a:b] {
		return l.key
	}
	k, cached := t.key(a, b)
	if cached {
		*l = lastMember{key: k}
	} else {
		*l = lastMember{} // never keep a string of the line's copy
	}
	return k
}

// memberValue returns s[a:b] as the string value of top-level member i named k.
func (t *pieces) memberValue(i int, k string, a, b int) any {
	if t.in == nil || i >= internLast {
		return t.value(a, b)
	}
	l := &t.in.last[i]
	if l.box != nil && l.key == k && l.val == t.s[a:b] {
		return l.box
	}
	v, cached := t.valueCached(a, b)
	if l.key == k {
		l.val, l.box = "", nil
		if cached {
			l.val, l.box = v.(string), v
		}
	}
	return v
}

// made returns a string built for this text (an unescaped one, already owned) as a value.
func (t *pieces) made(s string) any {
	if t.in != nil {
		if v, ok := t.in.get(s); ok {
			return v
		}
	}
	return s
}
