package browser

import (
	"testing"

	"github.com/claiim/claiim-operator/test/consoletest"
)

func TestLoginInABrowser(t *testing.T) {
	admin := open(t, consoletest.Admin)
	admin.screenshot("login")
	admin.login()
}
