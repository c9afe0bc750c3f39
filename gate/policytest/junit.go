package policytest

import (
	"encoding/xml"
	"io"
	"strings"
)

// JUnit report elements: the format CI systems (GitLab, Jenkins, GitHub
// test reporters) read test results in.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes results as a JUnit XML report: one testsuite per
// DecisionTest, one testcase per case.
func WriteJUnit(w io.Writer, results []Result) error {
	out := junitSuites{}
	index := map[string]int{}
	for _, r := range results {
		i, ok := index[r.Test]
		if !ok {
			i = len(out.Suites)
			index[r.Test] = i
			out.Suites = append(out.Suites, junitSuite{Name: r.Test})
		}
		s := &out.Suites[i]
		c := junitCase{Name: r.Case, Classname: r.Test, File: r.Pos.File, Line: r.Pos.Line}
		if !r.Pass {
			c.Failure = &junitFailure{Message: r.Diffs[0], Text: strings.Join(append(r.Diffs, "message: "+r.Message), "\n")}
			s.Failures++
			out.Failures++
		}
		s.Tests++
		out.Tests++
		s.Cases = append(s.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
