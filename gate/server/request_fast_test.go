package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/claiim/claiim-operator/gate/api"
)

// decodeValidateReflect is decodeValidate as it was: encoding/json
// streaming every body. The oracle the hand parser is compared with.
func decodeValidateReflect(w http.ResponseWriter, r *http.Request, out *api.ValidateRequest) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if field, err := decodeJSON(r.Body, out); err != nil {
		return field, err
	}
	return checkValidate(out)
}

type decoded struct {
	field, err string
	out        api.ValidateRequest
}

func decodeWith(decode func(http.ResponseWriter, *http.Request, *api.ValidateRequest) (string, error), r *http.Request) decoded {
	var d decoded
	field, err := decode(httptest.NewRecorder(), r, &d.out)
	d.field = field
	if err != nil {
		d.err = err.Error()
	}
	return d
}

// checkSameDecode: decodeValidate gives what encoding/json streaming gave
// (the request, or the field and message of its refusal), for the body
// sent with its length, chunked (unknown length), with a short
// Content-Length, and cut by a failing connection.
func checkSameDecode(t *testing.T, body []byte) {
	t.Helper()
	reqs := map[string]func() *http.Request{
		"length": func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/v/validate", bytes.NewReader(body))
		},
		"chunked": func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/v/validate", io.NopCloser(bytes.NewReader(body)))
		},
		"short length": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/v/validate", bytes.NewReader(body))
			r.ContentLength = int64(len(body) / 2)
			return r
		},
		"cut": func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/v/validate", io.MultiReader(bytes.NewReader(body[:len(body)/2]),
				errReader{errors.New("connection reset")}))
			r.ContentLength = int64(len(body))
			return r
		},
	}
	for name, req := range reqs {
		got, want := decodeWith(decodeValidate, req()), decodeWith(decodeValidateReflect, req())
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s body %.300q\ndecoded %+v\nencoding/json streaming %+v", name, body, got, want)
		}
	}
	// A body the hand parser takes is one encoding/json takes, the same.
	var out api.ValidateRequest
	if parseValidate(body, &out) {
		var want api.ValidateRequest
		if field, err := decodeJSON(bytes.NewReader(body), &want); err != nil || !reflect.DeepEqual(out, want) {
			t.Fatalf("parsed %.300q to %#v; encoding/json: %#v, %s %v", body, out, want, field, err)
		}
	}
}

// fastBodies are plain bodies the hand parser takes, and near misses it
// leaves to encoding/json.
var fastBodies = []string{
	`{"action":"deploy:staging","context":{"target":"eu-1","replicas":3},"skill_version_id":"v1"}`,
	` { "action" : "a:b" , "context" : null , "skill_version_id" : "v1" , "approval_id" : "ap-1" } `,
	"\t\n\r{}\n",
	`{"action":"a:b","context":{},"skill_version_id":"v"}`,
	`{"context":{"l":[1,-0,0.5,-1.5e-7,1E+21,1.7976931348623157e308,5e-324,1e-400,123456789012345678901234567890,-0.0e0],"n":null,"t":true,"f":false}}`,
	`{"context":{"s":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\u2028\u0000\uFFFF","k\u0000":1,"k\u0000":2}}`,
	`{"context":{"a":"\ud83d\ude00","b":"\ud800","c":"\udc00x","d":"\ud800\u0041"}}`,
	`{"context":{"a":[],"b":{},"c":[[]],"d":[{}],"e":{"f":{"g":{"h":{"i":{}}}}}}}`,
	`{"context":{"n":2e308}}`, `{"context":{"n":-1e400}}`, `{"context":{"x":1},"context":{"y":2}}`, `{"context":{"x":1},"context":null}`, `{"action":"a","action":"b"}`,
	`{"Action":"a:b"}`, `{"action":null}`, `{"action":1}`, `{"actoin":"x"}`, `{"context":[]}`, `{"context":"x"}`,
	`{"context":{"n":01}}`, `{"context":{"n":1.}}`, `{"context":{"n":.5}}`, `{"context":{"n":-}}`, `{"context":{"n":1e}}`,
	`{"context":{"n":+1}}`, `{"context":{"n":0x10}}`, `{"context":{"n":Infinity}}`, `{"context":{"n":1_0}}`,
	`{"context":{"s":"a` + "\x01" + `"}}`, `{"context":{"s":"\x"}}`, `{"context":{"s":"\u12"}}`, `{"context":{"s":"\'"}}`,
	`{"context":{"s":"` + "\xff" + `"}}`, `{"context":{"s":"\u00e9` + "\xc3" + `"}}`, `{"context":{tru:1}}`,
	`{"context":{"b":tru}}`, `{"context":{"b":nul}}`, `{"context":{"b":truex}}`, `{"context":{"a":1,}}`, `{"context":{"a" 1}}`,
	`{"action":"a:b",}`, `{,}`, `{"action":"a:b"`, `{"action":"a:b"}x`, `{"action":"a:b"}{}`, `{"action":"a:b"} []`,
	`{"context":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40) + `}`,
	`{"context":{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}}`,
	"{\"action\":\"a:b\"}\x00", `{"action":"a:b"}` + strings.Repeat(" ", MaxBodyBytes-16),
	`{"action":"a:b"}` + strings.Repeat(" ", MaxBodyBytes-15), `{"context":{"s":"` + strings.Repeat("é", MaxBodyBytes/2) + `"}}`,
}

func TestDecodeValidateMatchesEncodingJSON(t *testing.T) {
	for _, b := range append(validateSeeds(), fastBodies...) {
		checkSameDecode(t, []byte(b))
	}
	// And the hand parser takes the plain ones (it is the fast path).
	for _, b := range fastBodies[:6] {
		if !parseValidate([]byte(b), &api.ValidateRequest{}) {
			t.Errorf("the hand parser left a plain body to encoding/json: %s", b)
		}
	}
}

// FuzzDecodeValidateFast: any body decodes as encoding/json streamed it.
func FuzzDecodeValidateFast(f *testing.F) {
	for _, s := range append(validateSeeds(), fastBodies...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkSameDecode(t, body) })
}

// BenchmarkDecodeValidate is a typical body decoded as before (encoding/json
// streaming) and now (read once, parsed by hand).
func BenchmarkDecodeValidate(b *testing.B) {
	body := []byte(`{"action":"deploy:production","context":{"target":"prod-eu-1","replicas":3,` +
		`"image":"registry.example/app:1.4.2","labels":{"team":"payments","tier":"critical"},"regions":["eu-1","eu-2"]},` +
		`"skill_version_id":"deploy-bot-v1"}`)
	for name, decode := range map[string]func(http.ResponseWriter, *http.Request, *api.ValidateRequest) (string, error){
		"reflect": decodeValidateReflect, "hand": decodeValidate,
	} {
		b.Run(name, func(b *testing.B) {
			w := httptest.NewRecorder()
			rd := bytes.NewReader(body)
			req := httptest.NewRequest(http.MethodPost, "/v/validate", rd)
			b.ReportAllocs()
			for range b.N {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				var out api.ValidateRequest
				if _, err := decode(w, req, &out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
