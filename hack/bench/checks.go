package main

// What every answer is held to: the engine's decision for the same request.
// The HTTP helpers here serve the checks, never the load.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/claiim/claiim-operator/gate/decide"
	"github.com/claiim/claiim-operator/hack/bench/fixture"
	"github.com/claiim/claiim-operator/hack/bench/load"
)

func gateStatus(d decide.Decision) int {
	switch {
	case d.Outcome == decide.Allow:
		return http.StatusOK
	case d.Reason == decide.ReasonUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// gateAnswered checks the gate's status for a request the engine decided
// d: a credential nobody holds may also be answered 429 RATE_LIMITED once
// its address has failed too often (the mix sends them all from one).
func gateAnswered(d decide.Decision, status int) error {
	if d.Reason == decide.ReasonUnauthenticated && status == http.StatusTooManyRequests {
		return nil
	}
	return statusIs(status, gateStatus(d))
}

func statusIs(got, want int) error {
	if got != want {
		return fmt.Errorf("HTTP %d, want %d", got, want)
	}
	return nil
}

// verifyAnswers sends the first requests of the mix one by one and holds
// each server to the engine's answers: the live half of the differential
// test (the no-op answers ALLOW to everything, so it is skipped).
func (c *config) verifyAnswers(t, addr string, f *fixture.Fixture, gate, opa []load.Req, want []decide.Decision) error {
	if t == tNoop {
		return nil
	}
	for i := 0; i < min(c.verify, len(f.Requests)); i++ {
		var got fixture.Answer
		switch t {
		case tGate:
			var resp struct {
				Outcome, Reason string
			}
			if err := postJSON(addr, gate[i], &resp); err != nil {
				return err
			}
			got = fixture.Answer{Outcome: resp.Outcome, Reason: resp.Reason}
		default:
			var resp struct {
				Result any `json:"result"`
			}
			if err := postJSON(addr, opa[i], &resp); err != nil {
				return err
			}
			a, err := fixture.AnswerFrom(resp.Result)
			if err != nil {
				return err
			}
			got = fixture.Answer{Outcome: a.Outcome, Reason: a.Reason}
		}
		if got.Outcome != string(want[i].Outcome) || got.Reason != want[i].Reason {
			return fmt.Errorf("%s answered request %d (%s %s) with %s %s; the engine says %s %s",
				t, i, f.Requests[i].Agent, f.Requests[i].Action, got.Outcome, got.Reason, want[i].Outcome, want[i].Reason)
		}
	}
	fmt.Printf("  %-26s answered the first %d requests like the engine\n", t, min(c.verify, len(f.Requests)))
	return nil
}

func postJSON(addr string, r load.Req, out any) error {
	req, err := http.NewRequest(r.Method, "http://"+addr+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return err
	}
	req.Header = r.Header.Clone()
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

func getJSON(url string, out any) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func gateStatsOf(addr string) (gateStats, error) {
	var st gateStats
	return st, getJSON("http://"+addr+"/bench/stats", &st)
}

// httpClient is for the checks around the load, never for the load itself.
var httpClient = &http.Client{Timeout: 10 * time.Second}
