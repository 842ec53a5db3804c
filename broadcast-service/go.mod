module github.com/bidding-platform/broadcast-service

go 1.26.0

require github.com/bidding-platform/shared v0.0.0

// go.work resolves this inside the repository; the replace keeps a single
// module buildable on its own (go mod tidy, Docker builds without go.work).
replace github.com/bidding-platform/shared => ../shared
