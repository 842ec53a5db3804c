// Package gateway reads from the API gateway what the broadcast service
// needs of it: the items a user bids on, when their personal channel
// opens, and the name of an item its notices speak of.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Item is the part of GET /api/v1/users/{id}/items's item shape the
// notices need.
type Item struct {
	ID              string        `json:"id"`
	Name            string        `json:"name"`
	Status          models.Status `json:"status"`
	CurrentBid      models.Money  `json:"current_bid"`
	HighestBidderID string        `json:"highest_bidder_id"`
	EndsAt          *time.Time    `json:"ends_at"`
	Seq             uint64        `json:"seq"`
	Leading         bool          `json:"leading"`
}

type page struct {
	Items      []Item `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Client calls one gateway base URL.
type Client struct {
	base string
	http *http.Client
}

// New returns a client of the gateway at baseURL (scheme://host[:port]).
func New(baseURL string) *Client {
	return &Client{base: strings.TrimSuffix(baseURL, "/"), http: &http.Client{Timeout: 10 * time.Second}}
}

// pageSize is the gateway's largest page; maxPages bounds one user's read,
// so a user bidding on thousands of items costs the gateway a few
// requests, and their oldest items get no notices for bids placed before
// the channel opened.
const (
	pageSize = 100
	maxPages = 10
)

// Bidding returns the items userID bids on that are not final, reading the
// gateway with the user's token (none with authentication off). clientIP,
// when given, is the user's address: sent as X-Forwarded-For, so that a
// gateway that trusts it (TRUST_PROXY_HEADERS) counts the read against the
// user's address rather than this service's, which every user's reconnect
// after a deploy would exhaust.
func (c *Client) Bidding(ctx context.Context, userID, token, clientIP string) ([]Item, error) {
	var items []Item
	cursor := ""
	for range maxPages {
		q := url.Values{"role": {"bidding"}, "limit": {fmt.Sprint(pageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var p page
		if err := c.get(ctx, "/api/v1/users/"+url.PathEscape(userID)+"/items?"+q.Encode(), token, clientIP, &p); err != nil {
			return items, err
		}
		if p.Items == nil {
			return items, errors.New(`gateway: a user's items answer has no "items"`)
		}
		items = append(items, p.Items...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	return items, nil
}

// ItemName returns an item's name from its public page (GET
// /api/v1/items/{id}, no token).
func (c *Client) ItemName(ctx context.Context, itemID string) (string, error) {
	var it Item
	if err := c.get(ctx, "/api/v1/items/"+url.PathEscape(itemID), "", "", &it); err != nil {
		return "", err
	}
	if it.ID != itemID || it.Name == "" {
		return "", fmt.Errorf("gateway: item %s answered as %q named %q", itemID, it.ID, it.Name)
	}
	return it.Name, nil
}

// get decodes the gateway's 200 answer to path into out.
func (c *Client) get(ctx context.Context, path, token, clientIP string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("gateway request: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if clientIP != "" {
		req.Header.Set("X-Forwarded-For", clientIP)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("gateway %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("gateway %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	// A page of a user's items is well under this; more is not a gateway
	// answer.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(out); err != nil {
		return fmt.Errorf("gateway %s: decode: %w", path, err)
	}
	return nil
}
