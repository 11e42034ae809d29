package kafkaacl

import (
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// With mutual TLS, Kafka's principal for a client is User:<name>, where name comes from the
// certificate's subject: the brokers' ssl.principal.mapping.rules, tried in order, the first
// whose pattern matches the whole distinguished name (as X500Principal.getName() writes it,
// RFC 2253) giving the name; DEFAULT gives the distinguished name itself.

// SubjectDN is the certificate subject (its DER, x509.Certificate.RawSubject) as Kafka sees
// it: RFC 2253, the last RDN first, as Java's X500Principal.getName() writes it.
func SubjectDN(rawSubject []byte) (string, error) {
	var seq rdnSequence
	rest, err := asn1.Unmarshal(rawSubject, &seq)
	if err != nil {
		return "", fmt.Errorf("certificate subject: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("certificate subject: trailing data")
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i < len(seq)-1 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			name, known := javaKeywords[atv.Type.String()]
			if s, ok := dnString(atv.Value); known && ok {
				b.WriteString(name + "=" + escapeDNValue(s))
				continue
			}
			// Java writes other attributes as OID=#<the value's DER, hex>.
			b.WriteString(atv.Type.String() + "=#" + hex.EncodeToString(atv.Value.FullBytes))
		}
	}
	return b.String(), nil
}

// The subject's structure with each value's DER kept (its string type matters for the hex
// form). The SET suffix makes encoding/asn1 read a SET OF.
type (
	rawATV struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	rdnSET      []rawATV
	rdnSequence []rdnSET
)

// dnString decodes the directory string types.
func dnString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagT61String:
		if !utf8.Valid(v.Bytes) {
			return "", false
		}
		return string(v.Bytes), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

// javaKeywords are the attribute types X500Principal.getName(RFC2253) writes by name.
var javaKeywords = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}

// escapeDNValue escapes as RFC 2253 section 2.4 says.
func escapeDNValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case strings.ContainsRune(`,+"\<>;`, r),
			i == 0 && (r == ' ' || r == '#'),
			i == len(s)-1 && r == ' ':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// MappingRule is one entry of ssl.principal.mapping.rules.
type MappingRule struct {
	Default     bool // DEFAULT: the whole distinguished name
	Pattern     *regexp.Regexp
	Replacement string // Java's replacement syntax ($1), as written
	Lower       bool   // /L
	Upper       bool   // /U
}

// ruleSplitter is Kafka's SslPrincipalMapper grammar: DEFAULT, or
// RULE:pattern/replacement/[LU], separated by commas (a slash escaped with a backslash).
var ruleSplitter = regexp.MustCompile(`^\s*(?:(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?)|([^,]*?))\s*(?:,\s*|$)`)

// ParseMappingRules parses the brokers' ssl.principal.mapping.rules ("" is DEFAULT). Patterns
// are Java regular expressions; those this implementation's RE2 cannot compile
// (backreferences, lookaround) are an error, not a guess.
func ParseMappingRules(s string) ([]MappingRule, error) {
	if strings.TrimSpace(s) == "" {
		return []MappingRule{{Default: true}}, nil
	}
	var out []MappingRule
	for rest := s; strings.TrimSpace(rest) != ""; {
		m := ruleSplitter.FindStringSubmatchIndex(rest)
		if m == nil || m[1] == 0 {
			return nil, fmt.Errorf("ssl.principal.mapping.rules %q: cannot parse at %q", s, rest)
		}
		group := func(i int) (string, bool) {
			if m[2*i] < 0 {
				return "", false
			}
			return rest[m[2*i]:m[2*i+1]], true
		}
		switch {
		case m[2] >= 0:
			out = append(out, MappingRule{Default: true})
		case m[4] >= 0:
			pat, _ := group(2)
			repl, _ := group(3)
			flag, _ := group(4)
			re, err := regexp.Compile(`^(?:` + pat + `)$`)
			if err != nil {
				return nil, fmt.Errorf("ssl.principal.mapping.rules: RULE:%s: %w", pat, err)
			}
			out = append(out, MappingRule{Pattern: re, Replacement: repl, Lower: flag == "L", Upper: flag == "U"})
		default:
			bad, _ := group(5)
			return nil, fmt.Errorf("ssl.principal.mapping.rules: invalid rule %q (want DEFAULT or RULE:pattern/replacement/[LU])", bad)
		}
		rest = rest[m[1]:]
	}
	return out, nil
}

// Map is the principal name the first matching rule gives the distinguished name; ok is
// false when no rule matches (Kafka then refuses the connection).
func Map(rules []MappingRule, dn string) (name string, ok bool) {
	for _, r := range rules {
		if r.Default {
			return dn, true
		}
		m := r.Pattern.FindStringSubmatchIndex(dn)
		if m == nil {
			continue
		}
		name = string(r.Pattern.ExpandString(nil, goTemplate(r.Replacement), dn, m))
		switch {
		case r.Lower:
			name = strings.ToLower(name)
		case r.Upper:
			name = strings.ToUpper(name)
		}
		return name, true
	}
	return "", false
}

// goTemplate turns a Java replacement ($1, \$ for a dollar, \x for x) into Go's Expand
// template ($1x in Go would name group "1x").
func goTemplate(java string) string {
	var b strings.Builder
	for i := 0; i < len(java); i++ {
		switch c := java[i]; {
		case c == '\\' && i+1 < len(java):
			i++
			if java[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(java[i])
			}
		case c == '$':
			j := i + 1
			for j < len(java) && java[j] >= '0' && java[j] <= '9' {
				j++
			}
			if j == i+1 {
				b.WriteString("$$") // Java refuses a lone $; keep it literal rather than guess
				continue
			}
			b.WriteString("${" + java[i+1:j] + "}")
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// CertPrincipal is the principal Kafka gives a client presenting a certificate with this
// subject (DER), under these mapping rules ("" is DEFAULT).
func CertPrincipal(rawSubject []byte, rules string) (string, error) {
	rs, err := ParseMappingRules(rules)
	if err != nil {
		return "", err
	}
	dn, err := SubjectDN(rawSubject)
	if err != nil {
		return "", err
	}
	name, ok := Map(rs, dn)
	if !ok {
		return "", fmt.Errorf("no ssl.principal.mapping.rules rule matches %q: Kafka refuses this certificate", dn)
	}
	return User(name), nil
}
