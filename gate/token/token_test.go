package token

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tok, id, hash := New()
	if len(tok) != Len {
		t.Fatalf("token length %d, want %d", len(tok), Len)
	}
	gotID, ok := ID(tok)
	if !ok || gotID != id {
		t.Fatalf("ID(%q) = %q, %v; want %q", tok, gotID, ok, id)
	}
	if hash != Hash(tok) || !strings.HasPrefix(hash, "sha256:") || strings.Contains(hash, tok) {
		t.Fatalf("hash %q", hash)
	}
	if !Matches(tok, hash) || Matches(tok+"x", hash) || Matches(tok, "") {
		t.Fatal("Matches disagrees with Hash")
	}
	tok2, id2, _ := New()
	if tok2 == tok || id2 == id {
		t.Fatal("two tokens are equal")
	}
}

func TestIDRejects(t *testing.T) {
	tok, _, _ := New()
	for _, bad := range []string{"", tok[:len(tok)-1], "xlm_" + tok[4:], tok[:4] + "ZZZZZZZZZZZZZZZZ" + tok[20:], strings.Replace(tok, "_", "-", 2)} {
		if _, ok := ID(bad); ok {
			t.Errorf("ID(%q) accepted a malformed token", bad)
		}
	}
}
