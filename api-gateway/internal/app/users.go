package app

import (
	"context"

	"github.com/bidding-platform/api-gateway/internal/service"
	"github.com/bidding-platform/shared/models"
)

var _ service.UserArchive = (*lazyHistory)(nil)

func (h *lazyHistory) UserBids(ctx context.Context, userID string, after *service.BidKey, n int) ([]models.Bid, error) {
	db, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.UserBids(ctx, userID, after, n)
}

func (h *lazyHistory) BiddingItems(ctx context.Context, userID string, after *service.ItemKey, n int) ([]service.ArchivedItem, error) {
	db, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.BiddingItems(ctx, userID, after, n)
}

func (h *lazyHistory) WonItems(ctx context.Context, userID string, after *service.ItemKey, n int) ([]service.ArchivedItem, error) {
	db, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.WonItems(ctx, userID, after, n)
}

func (h *lazyHistory) SoldItems(ctx context.Context, sellerID string, after *service.ItemKey, n int) ([]service.ArchivedItem, error) {
	db, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.SoldItems(ctx, sellerID, after, n)
}

func (h *lazyHistory) ArchivedItems(ctx context.Context, ids []string) (map[string]models.Item, error) {
	db, err := h.get(ctx)
	if err != nil {
		return nil, err
	}
	return db.ArchivedItems(ctx, ids)
}
