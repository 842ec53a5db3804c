module github.com/bidding-platform/infrastructure

go 1.26.0
