package console

import "net/http"

// registerOperations adds the pages of what people do: agents' lifecycle,
// PIM, and reading Chron.
func (c *Console) registerOperations(mux *http.ServeMux) {
	_ = mux
}
