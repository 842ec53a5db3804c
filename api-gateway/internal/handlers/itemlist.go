package handlers

import (
	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/auth"
)

// itemsPage is a page of items in a listing's answer.
type itemsPage struct {
	Items      []itemView `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// itemsPage renders a page of items each in the shape GET
// /api/v1/items/{id} answers, as caller may see it.
func (s *server) itemsPage(p service.ItemPage, caller auth.Identity) itemsPage {
	out := itemsPage{Items: make([]itemView, len(p.Items)), NextCursor: p.NextCursor}
	for i, it := range p.Items {
		out.Items[i] = s.view(it, caller)
	}
	return out
}
