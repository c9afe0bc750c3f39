package ha

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claiimv1 "github.com/claiim/claiim-operator/api/v1alpha1"
)

// load counts admissions answered and refused; refusals keep their
// first messages so a failure says what went wrong.
type load struct {
	name     string
	ok       atomic.Int64
	refused  atomic.Int64
	tlsFault atomic.Int64 // refusals for a TLS reason (also counted in refused)
	served   atomic.Value // serial of the last serving certificate seen (direct only)
	mu       sync.Mutex
	errs     []string
}

func (l *load) fail(err error) {
	l.refused.Add(1)
	if s := err.Error(); strings.Contains(s, "x509") || strings.Contains(s, "tls:") || strings.Contains(s, "certificate") {
		l.tlsFault.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 5 {
		l.errs = append(l.errs, time.Now().Format(time.TimeOnly)+" "+err.Error())
	}
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%s: %d answered, %d refused (%d for a TLS reason) %q", l.name, l.ok.Load(), l.refused.Load(), l.tlsFault.Load(), l.errs)
}

// direct sends AdmissionReviews straight to one replica's webhook server,
// each on a new TLS connection verified as the apiserver verifies it: the
// caBundle the MutatingWebhookConfiguration carries at that moment, and
// the Service's DNS name. It stops when ctx ends.
func (c *cluster) direct(ctx context.Context, r *replica) *load {
	l := &load{name: "direct to " + r.name}
	l.served.Store("")
	url := "https://" + net.JoinHostPort(c.hostIP, strconv.Itoa(r.webhookPort)) + "/mutate-pimrequest?timeout=5s"
	go func() {
		for ctx.Err() == nil {
			if err := c.review(ctx, l, url); err != nil && ctx.Err() == nil {
				l.fail(err)
			}
		}
	}()
	return l
}

func (c *cluster) review(ctx context.Context, l *load, url string) error {
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.admin.Get(ctx, client.ObjectKey{Name: mutating}, cfg); err != nil {
		return nil //nolint:nilerr // reading the caBundle is the test's own step, not an admission
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.Webhooks[0].ClientConfig.CABundle) {
		return fmt.Errorf("no caBundle in %s", mutating)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: service + "." + namespace + ".svc", MinVersion: tls.VersionTLS12}}}
	uid := uuid.NewUUID()
	obj, _ := json.Marshal(&claiimv1.PIMRequest{TypeMeta: metav1.TypeMeta{APIVersion: claiimv1.GroupVersion.String(), Kind: "PIMRequest"},
		ObjectMeta: metav1.ObjectMeta{Name: "ha-" + string(uid)}, Spec: claiimv1.PIMRequestSpec{Reason: "high availability under renewal"}})
	body, _ := json.Marshal(&admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: uid, Operation: admissionv1.Create, Name: "ha-" + string(uid),
			Kind:     metav1.GroupVersionKind{Group: claiimv1.GroupVersion.Group, Version: claiimv1.GroupVersion.Version, Kind: "PIMRequest"},
			Resource: metav1.GroupVersionResource{Group: claiimv1.GroupVersion.Group, Version: claiimv1.GroupVersion.Version, Resource: "pimrequests"},
			UserInfo: authenticationv1.UserInfo{Username: adminUser, Groups: []string{"system:authenticated"}},
			Object:   runtime.RawExtension{Raw: obj}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered HTTP %s", resp.Status)
	}
	review := &admissionv1.AdmissionReview{}
	if err := json.NewDecoder(resp.Body).Decode(review); err != nil {
		return fmt.Errorf("reading the AdmissionReview: %w", err)
	}
	if review.Response == nil || review.Response.UID != types.UID(uid) || !review.Response.Allowed {
		return fmt.Errorf("unexpected answer %+v", review.Response)
	}
	l.served.Store(resp.TLS.PeerCertificates[0].SerialNumber.String())
	l.ok.Add(1)
	return nil
}

// viaAPI asks for elevation through the apiserver, as a person does: the
// apiserver calls the mutating and the validating webhook, each at a
// replica its EndpointSlices choose.
func (c *cluster) viaAPI(ctx context.Context) *load {
	l := &load{name: "through the apiserver"}
	go func() {
		for ctx.Err() == nil {
			p := &claiimv1.PIMRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: "ha-"}, Spec: claiimv1.PIMRequestSpec{Reason: "high availability under renewal"}}
			if err := c.as[peerUser].Create(ctx, p); err != nil {
				if ctx.Err() == nil {
					l.fail(err)
				}
				continue
			}
			l.ok.Add(1)
		}
	}()
	return l
}

// stored is the certificate Secret as the leader keeps it.
type stored struct {
	leaf   *x509.Certificate
	bundle []*x509.Certificate
}

func (s stored) serial() string { return s.leaf.SerialNumber.String() }
func (s stored) issuer() string { return hex.EncodeToString(s.leaf.AuthorityKeyId) }

// trusts reports whether the bundle holds the CA whose key id is given.
func (s stored) trusts(issuer string) bool {
	for _, ca := range s.bundle {
		if hex.EncodeToString(ca.SubjectKeyId) == issuer {
			return true
		}
	}
	return false
}

func (c *cluster) stored(g Gomega) stored {
	sec := &corev1.Secret{}
	g.Expect(c.admin.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: certSecret}, sec)).To(Succeed())
	var s stored
	for rest := append(sec.Data["tls.crt"], sec.Data["ca.crt"]...); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		g.Expect(err).NotTo(HaveOccurred())
		if s.leaf == nil {
			s.leaf = cert
		} else {
			s.bundle = append(s.bundle, cert)
		}
	}
	g.Expect(s.leaf).NotTo(BeNil())
	return s
}

// renewal waits for the stored serving certificate to change from prev
// in the way wanted (by the same CA, or by another), and returns the new
// state; renewals of the other kind on the way are passed over.
func (c *cluster) renewal(prev stored, sameCA bool) stored {
	var got stored
	Eventually(func(g Gomega) {
		cur := c.stored(g)
		if cur.serial() != prev.serial() && (cur.issuer() == prev.issuer()) != sameCA {
			prev = cur
		}
		g.Expect(cur.serial()).NotTo(Equal(prev.serial()), "no renewal yet")
		g.Expect(cur.issuer() == prev.issuer()).To(Equal(sameCA))
		got = cur
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	if !sameCA {
		// The CA that signed until now is still trusted: a replica that
		// has not reloaded yet is not refused.
		Expect(got.trusts(prev.issuer())).To(BeTrue(), "the previous CA left the bundle when the new one started signing")
	}
	return got
}

// serves waits until each load's replica serves the certificate stored
// now, then until each answered at least n admissions more.
func (c *cluster) serves(n int64, ls ...*load) {
	for _, l := range ls {
		Eventually(func(g Gomega) {
			g.Expect(l.served.Load()).To(Equal(c.stored(g).serial()), "%s does not serve the stored certificate", l.name)
		}).Should(Succeed())
	}
	base := make([]int64, len(ls))
	for i, l := range ls {
		base[i] = l.ok.Load()
	}
	for i, l := range ls {
		Eventually(func() int64 { return l.ok.Load() - base[i] }).WithTimeout(2*time.Minute).Should(BeNumerically(">=", n), "%v", l)
	}
}
