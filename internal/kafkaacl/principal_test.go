package kafkaacl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"
)

// certSubject makes a real self-signed certificate with this subject and returns its
// RawSubject, as the brokers receive it.
func certSubject(t testing.TB, n pkix.Name) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: n, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.RawSubject
}

var (
	oidDC  = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidUID = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
)

// TestSubjectDN: the subject as X500Principal.getName() (RFC 2253) writes it, which is what
// Kafka's DEFAULT rule makes the principal. The expected strings are Java's output for the
// same subjects.
func TestSubjectDN(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    pkix.Name
		want string
	}{
		{"component", pkix.Name{CommonName: "logrouter-collector", OrganizationalUnit: []string{"logging"}, Organization: []string{"example"}},
			"CN=logrouter-collector,OU=logging,O=example"},
		{"country and locality", pkix.Name{CommonName: "gw", Country: []string{"DE"}, Locality: []string{"Berlin"}, Province: []string{"BE"}},
			"CN=gw,L=Berlin,ST=BE,C=DE"},
		{"escaped", pkix.Name{CommonName: `a,b+c"d\e<f>g;h`}, `CN=a\,b\+c\"d\\e\<f\>g\;h`},
		{"leading and trailing", pkix.Name{CommonName: " #x "}, `CN=\ #x\ `},
		{"leading hash", pkix.Name{CommonName: "#x"}, `CN=\#x`},
		{"unicode", pkix.Name{CommonName: "équipe-ü"}, "CN=équipe-ü"},
		{"DC and UID by name", pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidDC, Value: "example"}, {Type: oidDC, Value: "com"}, {Type: oidUID, Value: "u1"}}},
			"UID=u1,DC=com,DC=example"},
		// Java writes SERIALNUMBER by its OID with the DER value (PrintableString "42").
		{"serial number as OID", pkix.Name{CommonName: "c", SerialNumber: "42"}, "2.5.4.5=#13023432,CN=c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SubjectDN(certSubject(t, tc.n))
			if err != nil || got != tc.want {
				t.Errorf("SubjectDN = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// A multi-valued RDN: CN+OU in one SET.
	raw, err := asn1.Marshal(rdnSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: mustRaw(t, "a")}, {Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: mustRaw(t, "b")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := SubjectDN(raw); err != nil || got != "CN=a+OU=b" {
		t.Errorf("multi-valued RDN: %q %v", got, err)
	}
	if _, err := SubjectDN([]byte{0x30, 0x03, 0x01}); err == nil {
		t.Error("a truncated subject is accepted")
	}
}

func mustRaw(t *testing.T, s string) asn1.RawValue {
	der, err := asn1.MarshalWithParams(s, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	var v asn1.RawValue
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMappingRules: ssl.principal.mapping.rules as Kafka's documentation writes them.
func TestMappingRules(t *testing.T) {
	const dn = "CN=logrouter-collector,OU=logging,O=example,C=DE"
	for _, tc := range []struct {
		rules, dn, want string
		ok              bool
	}{
		{"", dn, dn, true},
		{"DEFAULT", dn, dn, true},
		{`RULE:^CN=([^,]+),OU=logging,.*$/$1/,DEFAULT`, dn, "logrouter-collector", true},
		{`RULE:^CN=([^,]+),OU=logging,.*$/$1/,DEFAULT`, "CN=other,OU=sales,O=example", "CN=other,OU=sales,O=example", true},
		{`RULE:^CN=(.*?),OU=(.*?),O=(.*?),C=(.*?)$/$1@$2/L`, "CN=Kafka-Client,OU=Logging,O=Example,C=DE", "kafka-client@logging", true},
		{`RULE:^CN=(.*?),OU=(.*?),O=(.*?),C=(.*?)$/$1@$2/U`, dn, "LOGROUTER-COLLECTOR@LOGGING", true},
		{`RULE:^CN=([^,]+).*$/$1x/`, dn, "logrouter-collectorx", true}, // $1x is group 1, then x (Java)
		{`RULE:^CN=([^,]+).*$/a\/b\$$1/`, dn, "a/b$logrouter-collector", true},
		{` RULE:^CN=([^,]+),OU=sales.*$/$1/ , RULE:^CN=([^,]+).*$/svc-$1/ `, dn, "svc-logrouter-collector", true},
		{`RULE:^CN=([^,]+),OU=sales.*$/$1/`, dn, "", false}, // no DEFAULT: Kafka refuses the client
	} {
		rs, err := ParseMappingRules(tc.rules)
		if err != nil {
			t.Errorf("%q: %v", tc.rules, err)
			continue
		}
		if got, ok := Map(rs, tc.dn); got != tc.want || ok != tc.ok {
			t.Errorf("%q on %q = %q %v, want %q %v", tc.rules, tc.dn, got, ok, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{"RULE:^CN=(.*$/$1/", "DEFAULTX", "RULE:a/b", "nonsense", `RULE:^(a)\1$/x/`} {
		if _, err := ParseMappingRules(bad); err == nil {
			t.Errorf("ParseMappingRules(%q) accepted", bad)
		}
	}
}

// TestCertPrincipal: the principal of a real certificate, and the documented component
// template gives exactly it.
func TestCertPrincipal(t *testing.T) {
	for _, c := range ComponentNames {
		raw := certSubject(t, pkix.Name{CommonName: "logrouter-" + c, OrganizationalUnit: []string{"logging"}, Organization: []string{"example"}})
		got, err := CertPrincipal(raw, "")
		want := strings.ReplaceAll("User:CN=logrouter-{component},OU=logging,O=example", "{component}", c)
		if err != nil || got != want {
			t.Errorf("%s DEFAULT: %q %v, want %q", c, got, err, want)
		}
		got, err = CertPrincipal(raw, `RULE:^CN=([^,]+),OU=logging,.*$/$1/,DEFAULT`)
		if err != nil || got != "User:logrouter-"+c {
			t.Errorf("%s mapped: %q %v", c, got, err)
		}
	}
	if _, err := CertPrincipal(certSubject(t, pkix.Name{CommonName: "x"}), `RULE:^CN=y$/y/`); err == nil || !strings.Contains(err.Error(), "refuses") {
		t.Errorf("no rule matches: %v", err)
	}
}

// FuzzMappingRules: any rules string parses or is refused, and mapping never panics.
func FuzzMappingRules(f *testing.F) {
	for _, s := range []string{"", "DEFAULT", `RULE:^CN=([^,]+),OU=logging,.*$/$1/,DEFAULT`, `RULE:a\/b/$1$/L`, `RULE:(.*)/\$$9/U`, ",", "RULE:/"} {
		f.Add(s, "CN=a,OU=b")
	}
	f.Fuzz(func(t *testing.T, rules, dn string) {
		rs, err := ParseMappingRules(rules)
		if err != nil {
			return
		}
		if len(rs) == 0 {
			t.Fatalf("%q parsed to no rule", rules)
		}
		Map(rs, dn)
	})
}

// FuzzSubjectDN: any bytes decode to a DN or an error, never a panic.
func FuzzSubjectDN(f *testing.F) {
	f.Add(certSubject(f, pkix.Name{CommonName: "a", Organization: []string{"b"}}))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = SubjectDN(raw)
	})
}
