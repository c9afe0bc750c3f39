package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// Keys of the certificate Secret. ca.crt is the trust bundle the
// webhook configurations carry; ca.key holds the keys of the CAs that may
// still sign. The CA key gives nothing tls.key does not already give:
// only CLAIIM's webhook configurations trust this CA.
const (
	keyCA      = "ca.crt"
	keyCAKey   = "ca.key"
	keyCert    = "tls.crt"
	keyCertKey = "tls.key"
)

// How the CA is kept across renewals, so no replica ever serves a
// certificate the apiserver does not trust yet:
//
//   - A serving certificate is renewed RenewBefore its end, signed by the
//     same CA while that CA outlives the new certificate. The caBundle does
//     not change, so replicas may reload in any order.
//   - A CA signs only after it has been in the caBundle for a long time:
//     halfway through the signing CA's life a next CA is minted and added
//     to the bundle (pre-published); it takes over signing only when the
//     current one can no longer cover a full serving certificate
//     (CAValidity/2 - Validity later).
//   - A CA that stopped signing stays in the bundle until it expires. Its
//     last certificate cannot outlive it, so no replica still serving one
//     is ever refused, and no "has every replica reloaded" bookkeeping is
//     needed.
//
// A CA signs at once only when no CA key survives (first install, a Secret
// written before CA keys were kept, a lost key), and even then a fresh
// certificate being served is kept: so only when nothing fresh is served
// anyway (first install, or a lost key within RenewBefore of the end) may
// the apiserver refuse, for as long as it takes to see the new caBundle.

// authority is a CA from the bundle; key is set while it may sign.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// plan is the certificate Secret's data brought up to date.
type plan struct {
	data map[string][]byte
	// changed: data differs from what is stored.
	changed bool
	// next is when the data must be looked at again at the latest.
	next time.Time
	// did says what changed, for the log.
	did []string
}

// renew brings the stored data up to date at now: it prunes expired CAs,
// pre-publishes or mints CAs as above, and issues a serving certificate
// when the stored one is missing, does not chain or is within
// RenewBefore of its end.
func (r *Rotator) renew(d map[string][]byte) (plan, error) {
	now := r.Clock.Now()
	cas := parseAuthorities(d[keyCA], d[keyCAKey], now)
	var signers []*authority
	for _, a := range cas {
		if a.key != nil && !a.cert.NotAfter.Before(now.Add(r.Validity)) {
			signers = append(signers, a)
		} else {
			a.key = nil // retired: trusted until it expires, never signs again
		}
	}
	slices.SortFunc(signers, func(a, b *authority) int { return a.cert.NotAfter.Compare(b.cert.NotAfter) })
	var did []string
	mint := func(what string) error {
		a, err := r.newAuthority(now)
		if err == nil {
			cas, signers, did = append(cas, a), append(signers, a), append(did, what)
		}
		return err
	}
	if len(signers) == 0 {
		if err := mint("minted a signing CA"); err != nil {
			return plan{}, err
		}
	}
	halfway := func() time.Time { return signers[0].cert.NotAfter.Add(-r.CAValidity / 2) }
	if len(signers) == 1 && !now.Before(halfway()) {
		if err := mint("pre-published the next CA"); err != nil {
			return plan{}, err
		}
	}
	caKeys, err := encodeKeys(signers)
	if err != nil {
		return plan{}, err
	}
	out := map[string][]byte{keyCA: encodeCerts(cas), keyCAKey: caKeys, keyCert: d[keyCert], keyCertKey: d[keyCertKey]}
	leaf, err := r.servingCert(out, now)
	if err != nil || !now.Add(r.RenewBefore).Before(leaf.NotAfter) {
		if out[keyCert], out[keyCertKey], err = r.newServingCert(signers[0], now); err != nil {
			return plan{}, err
		}
		if leaf, err = r.servingCert(out, now); err != nil {
			return plan{}, fmt.Errorf("the certificate just issued does not verify: %w", err)
		}
		did = append(did, "issued a serving certificate")
	}
	p := plan{data: out, next: leaf.NotAfter.Add(-r.RenewBefore), did: did}
	if len(signers) == 1 {
		p.next = earliest(p.next, halfway())
	}
	for _, a := range cas {
		p.next = earliest(p.next, a.cert.NotAfter) // pruned when it expires
	}
	for _, k := range []string{keyCA, keyCAKey, keyCert, keyCertKey} {
		p.changed = p.changed || !bytes.Equal(d[k], out[k])
	}
	if p.changed && len(did) == 0 {
		p.did = []string{"dropped an expired or retired CA"}
	}
	return p, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// servingCert returns the data's serving certificate when it matches its
// key and chains, now, to the data's CA bundle for the Service's name.
func (r *Rotator) servingCert(d map[string][]byte, now time.Time) (*x509.Certificate, error) {
	pair, err := tlsPair(d[keyCert], d[keyCertKey])
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(d[keyCA]) {
		return nil, fmt.Errorf("no CA")
	}
	if _, err := pair.Verify(x509.VerifyOptions{Roots: pool, DNSName: r.dnsNames()[0], CurrentTime: now}); err != nil {
		return nil, err
	}
	return pair, nil
}

func tlsPair(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(certPEM)
	k, _ := pem.Decode(keyPEM)
	if b == nil || k == nil {
		return nil, fmt.Errorf("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(k.Bytes)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(c.PublicKey) {
		return nil, fmt.Errorf("key does not match certificate")
	}
	return c, nil
}

// parseAuthorities reads the bundle's CAs that are still valid at now,
// each with its key when ca.key holds it. Anything unreadable is dropped:
// a CA the rotator cannot read it cannot keep.
func parseAuthorities(bundle, keys []byte, now time.Time) []*authority {
	var privs []*ecdsa.PrivateKey
	for b, rest := pem.Decode(keys); b != nil; b, rest = pem.Decode(rest) {
		if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
			privs = append(privs, k)
		}
	}
	var out []*authority
	for b, rest := pem.Decode(bundle); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil || !c.IsCA || !now.Before(c.NotAfter) {
			continue
		}
		a := &authority{cert: c}
		for _, k := range privs {
			if k.PublicKey.Equal(c.PublicKey) {
				a.key = k
			}
		}
		out = append(out, a)
	}
	return out
}

// encodeCerts writes the bundle oldest first, so unchanged CAs encode to
// the same bytes and an unchanged bundle is never rewritten.
func encodeCerts(cas []*authority) []byte {
	slices.SortStableFunc(cas, func(a, b *authority) int { return a.cert.NotBefore.Compare(b.cert.NotBefore) })
	var buf bytes.Buffer
	for _, a := range cas {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})
	}
	return buf.Bytes()
}

func encodeKeys(signers []*authority) ([]byte, error) {
	var buf bytes.Buffer
	for _, a := range signers {
		der, err := x509.MarshalECPrivateKey(a.key)
		if err != nil {
			return nil, fmt.Errorf("encoding a CA key: %w", err)
		}
		_ = pem.Encode(&buf, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	return buf.Bytes(), nil
}

func (r *Rotator) newAuthority(now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	// The mint time in the name tells CAs apart in the bundle, as
	// Kubernetes' own self-signed CAs do.
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: fmt.Sprintf("claiim-%s-ca@%d", r.Purpose, now.Unix())},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(r.CAValidity), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &authority{cert: c, key: key}, nil
}

// newServingCert issues a serving certificate for the Service's DNS names,
// valid for Validity (the signer outlives it: see renew).
func (r *Rotator) newServingCert(ca *authority, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: r.dnsNames()[0]}, DNSNames: r.dnsNames(),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(r.Validity), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func (r *Rotator) dnsNames() []string {
	s, ns := r.Service, r.Namespace
	return []string{s + "." + ns + ".svc", s, s + "." + ns, s + "." + ns + ".svc.cluster.local"}
}
