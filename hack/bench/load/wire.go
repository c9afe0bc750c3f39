package load

// Requests serialised once, before the clock starts.

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// wire is a Req serialised once and shared read-only by every connection.
type wire struct {
	raw []byte
	req *http.Request // only Method is read by http.ReadResponse (HEAD has no body)
}

func serialize(addr string, r Req) (wire, error) {
	method, path := r.Method, r.Path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/"
	}
	if strings.ContainsAny(method, " \r\n") || strings.ContainsAny(path, " \r\n") {
		return wire{}, fmt.Errorf("invalid method or path %q %q", method, path)
	}
	host := addr
	if h := r.Header.Get("Host"); h != "" {
		host = h
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, host, len(r.Body))
	// Sorted so the bytes on the wire are the same on every run.
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding":
			continue // we own the framing
		}
		for _, v := range r.Header[k] {
			if strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(v, "\r\n") {
				return wire{}, fmt.Errorf("invalid header %q: %q", k, v)
			}
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	return wire{raw: b.Bytes(), req: &http.Request{Method: method}}, nil
}
