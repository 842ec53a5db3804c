// Package service is the gateway's bidding logic: validation, the local price
// pre-filter, coalescing of concurrent bids per item, and the calls into the
// atomic store. It imports only shared and declares the interfaces its
// adapters implement.
package service
