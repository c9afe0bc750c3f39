package load

import (
	"net/http"
	"testing"
)

func TestSerialize(t *testing.T) {
	w, err := serialize("h:1", Req{Method: "POST", Path: "/p", Header: http.Header{
		"X-B": {"2"}, "X-A": {"1"}, "Content-Length": {"99"},
	}, Body: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	want := "POST /p HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\nX-A: 1\r\nX-B: 2\r\n\r\nabc"
	if string(w.raw) != want {
		t.Errorf("got %q\nwant %q", w.raw, want)
	}
}
