package kubectlclaiim

// The console's Chron API as the person: their own bearer token, from
// their kubeconfig (a token, a token file, or an exec or auth-provider
// credential plugin) or --token / --token-file, over TLS.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/claiim/claiim-operator/internal/console"
)

// consoleClient calls the console's Chron API.
type consoleClient struct {
	base *url.URL
	http *http.Client
}

// errNoBearer: the console takes bearer tokens only, and the
// credentials at hand give none. It is wrapped in why.
var errNoBearer = errors.New("the console accepts bearer tokens only (an OIDC id token, or one from `kubectl create token`): " +
	"pass yours with --token or --token-file, or read the database with --database-url (the reader role)")

// newConsoleClient reaches the console at raw, trusting caFile's
// certificates (PEM) or else the system's, with tokenFile's token or
// else the kubeconfig's credentials.
func (o *Options) newConsoleClient(raw, caFile, tokenFile string) (*consoleClient, error) {
	base, err := consoleURL(raw)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		if base.Scheme != "https" {
			return nil, fmt.Errorf("--console-ca is for an https console; %s is plain http", base.Redacted())
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--console-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--console-ca %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	creds, err := o.consoleCredentials(tokenFile)
	if err != nil {
		return nil, err
	}
	// client-go adds the token as it does for the apiserver: a token file
	// read again as it changes, an exec plugin run when its token expires.
	rt, err := rest.HTTPWrappersForConfig(creds, requireBearer{tr})
	if err != nil {
		return nil, fmt.Errorf("your kubeconfig's credentials: %w", err)
	}
	return &consoleClient{base: base, http: &http.Client{
		Transport: rt,
		// The token is added to every request, redirects too: follow none.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// consoleURL checks the console's URL. A bearer token goes over plain
// http only to this machine (a port-forward).
func consoleURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("--console: give the console's URL as https://HOST[:PORT][/PATH]")
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("--console %s is plain http, which would send your bearer token unencrypted: use the console's https URL "+
			"(with --console-ca FILE if its certificate is not from a CA your system trusts); plain http is only for localhost, 127.0.0.1 or ::1 "+
			"(kubectl port-forward)", u.Redacted())
	}
	return u, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// consoleCredentials keeps of the kubeconfig's rest.Config only what
// gives a bearer token: no client certificate (the console takes none),
// no basic auth, and no impersonation (the console acts as the token's
// owner, never as someone they name).
func (o *Options) consoleCredentials(tokenFile string) (*rest.Config, error) {
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	if imp := cfg.Impersonate; imp.UserName != "" || imp.UID != "" || len(imp.Groups) > 0 {
		return nil, errors.New("the console acts as the owner of the token: --as, --as-group and --as-uid (or a kubeconfig's as) do not apply to it")
	}
	c := rest.CopyConfig(cfg)
	c.CertData, c.CertFile, c.KeyData, c.KeyFile = nil, "", nil, ""
	c.Username, c.Password = "", ""
	c.WrapTransport, c.Transport, c.Dial = nil, nil, nil
	c.UserAgent = "kubectl-claiim"
	if tokenFile != "" {
		if o.Flags.BearerToken != nil && *o.Flags.BearerToken != "" {
			return nil, errors.New("give --token or --token-file, not both")
		}
		if b, err := os.ReadFile(tokenFile); err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		} else if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("--token-file %s is empty", tokenFile)
		}
		c.BearerToken, c.BearerTokenFile, c.ExecProvider, c.AuthProvider = "", tokenFile, nil, nil
	}
	if c.BearerToken == "" && c.BearerTokenFile == "" && c.ExecProvider == nil && c.AuthProvider == nil {
		if len(cfg.CertData) > 0 || cfg.CertFile != "" {
			return nil, fmt.Errorf("your kubeconfig authenticates with a client certificate, which the console cannot take; %w", errNoBearer)
		}
		return nil, fmt.Errorf("your kubeconfig has no token; %w", errNoBearer)
	}
	return c, nil
}

// requireBearer sends nothing without a bearer token: a credential
// plugin may give only a client certificate.
type requireBearer struct{ next http.RoundTripper }

func (r requireBearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("your kubeconfig's credential plugin gave no token (a client certificate only?); %w", errNoBearer)
	}
	return r.next.RoundTrip(req)
}

// apiError is a status other than 200, in the API's words.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// readAPIError reads the API's {"error": "..."}: 401 says the token is
// refused, 403 is the API's own words, anything else adds the status.
func readAPIError(resp *http.Response) error {
	var body console.ErrorResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Error == "" {
		// Not the API's answer (a proxy's page, another server): not shown.
		body.Error = http.StatusText(resp.StatusCode) + ", and not in the Chron API's words: is --console the console's URL?"
	}
	e := &apiError{status: resp.StatusCode}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		e.msg = "the console does not accept your token: " + body.Error
	case resp.StatusCode == http.StatusForbidden:
		e.msg = body.Error
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		e.msg = fmt.Sprintf("the console answered %s, a redirect, which is not followed: check --console (%s)", resp.Status, resp.Header.Get("Location"))
	default:
		e.msg = fmt.Sprintf("the console answered %s: %s", resp.Status, body.Error)
	}
	return e
}

// get requests the API's path with query and header; the response is
// 200, its body for the caller to close.
func (c *consoleClient) get(ctx context.Context, path string, query url.Values, header http.Header) (*http.Response, error) {
	u := c.base.JoinPath("api/v1/chron", path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if ue := (*url.Error)(nil); errors.As(err, &ue) && errors.Is(err, errNoBearer) {
		return nil, ue.Err
	}
	if err != nil {
		return nil, fmt.Errorf("reaching the console: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readAPIError(resp)
	}
	return resp, nil
}

func (c *consoleClient) getJSON(ctx context.Context, path string, query url.Values, into any) error {
	resp, err := c.get(ctx, path, query, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("the console's answer to %s: %w", path, err)
	}
	return nil
}
