package console

import (
	"fmt"
	"net/http"
)

// registerCatalog adds the pages of what people declare.
func (c *Console) registerCatalog(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.page(c.dashboard))
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request, s *Session) {
	c.render(w, http.StatusOK, "dashboard", newView(r, s, "Dashboard", "dashboard", fmt.Sprintf("Logged in as %s", s.Name())))
}
