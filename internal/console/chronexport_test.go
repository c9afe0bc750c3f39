package console

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
		"+1+2":                     "'+1+2",
		"-2+3":                     "'-2+3",
		"@SUM(A1)":                 "'@SUM(A1)",
		"\t=1":                     "'\t=1",
		"\r=1":                     "'\r=1",
		"deploy:production":        "deploy:production",
		"a=b":                      "a=b",
		"":                         "",
		"'quoted":                  "'quoted",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExport(t *testing.T) {
	e := newEnv(t)
	written, orgOf := seedRows(t, e)
	// Cells an attacker controls: an agent's action and context, a
	// message.
	w := e.writer(t, "gate/1")
	evil := record(99, "engineering")
	evil.Action, evil.Message, evil.Reason = `=HYPERLINK("http://evil","x")`, "+cmd|' /C calc'!A0", "@SUM(1)"
	evil.Context = map[string]any{"note": "-1+1"}
	row, err := w.Write(e.ctx, evil)
	if err != nil {
		t.Fatal(err)
	}
	written, orgOf[row.ID] = append(written, row.ID), "engineering"
	var eng []string
	for _, id := range written {
		if orgOf[id] == "engineering" {
			eng = append(eng, id)
		}
	}

	// NDJSON, oldest first by default, every entry whole.
	status, body := e.get(t, "admin", "/api/v1/chron/export")
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var en Entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, en.ID)
		if en.ID == row.ID && en.Action != evil.Action {
			t.Errorf("NDJSON changed the action: %q", en.Action)
		}
	}
	if status != 200 || !slices.Equal(got, written) {
		t.Errorf("ndjson: %d, %v\nwant %v", status, got, written)
	}
	status, body = e.get(t, "eng", "/api/v1/chron/export?format=ndjson&order=newest")
	if n := bytes.Count(body, []byte("\n")); status != 200 || n != len(eng) || !strings.Contains(string(body), row.ID) {
		t.Errorf("eng's newest-first export: %d, %d lines, want %d", status, n, len(eng))
	}

	// CSV: the same rows, formulas defused.
	status, body = e.get(t, "eng", "/api/v1/chron/export?format=csv")
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(recs) != len(eng)+1 || !slices.Equal(recs[0], csvHeader) {
		t.Fatalf("csv: %d, %d records, %v\n%s", status, len(recs), err, body)
	}
	last := map[string]string{}
	for i, h := range csvHeader {
		last[h] = recs[len(recs)-1][i]
	}
	for col, want := range map[string]string{
		"id": row.ID, "action": "'" + evil.Action, "message": "'" + evil.Message, "reason": "'@SUM(1)",
		"context": `{"note":"-1+1"}`, "org": "engineering", "seq": "1", "stream": "gate/1", "format": "1",
		"policies": `[{"name":"no-prod-deploys","version":3,"rule":"deploy:production","effect":"Deny"}]`,
	} {
		if last[col] != want {
			t.Errorf("csv %s = %q, want %q", col, last[col], want)
		}
	}
	for _, rec := range recs {
		for _, cell := range rec {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("a cell a spreadsheet would run: %q", cell)
			}
		}
	}

	for query, status := range map[string]int{"format=xml": 400, "format=csv&limit=5": 400, "cursor=x": 400} {
		if got, body := e.get(t, "admin", "/api/v1/chron/export?"+query); got != status {
			t.Errorf("export?%s: %d %s, want %d", query, got, body, status)
		}
	}
	if got, _ := e.get(t, "", "/api/v1/chron/export"); got != 401 {
		t.Errorf("export without a user: %d", got)
	}
}

// TestExportManyPages: past one page of 1,000 rows, continuing in order.
func TestExportManyPages(t *testing.T) {
	e := newEnv(t)
	if _, err := e.owner.Exec(e.ctx, `INSERT INTO chron_records (id, stream, seq, time, kind, org, outcome, prev_hash, hash)
		SELECT 'id-' || lpad(g::text, 5, '0'), 'gate/bulk', g, now(), 'decision', 'sales', 'ALLOW', '', ''
		FROM generate_series(1, 2345) g`); err != nil {
		t.Fatal(err)
	}
	status, body := e.get(t, "auditor", "/api/v1/chron/export?format=csv&org=sales")
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if status != 200 || err != nil || len(recs) != 2346 {
		t.Fatalf("%d, %d records, %v", status, len(recs), err)
	}
	for i, rec := range recs[1:] {
		if rec[22] != strconv.Itoa(i+1) {
			t.Fatalf("record %d: seq %s (id %s), want %d", i, rec[22], rec[0], i+1)
		}
	}
}
