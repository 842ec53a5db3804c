// Package models holds the domain types every service shares: exact money,
// items, bids and the events that travel between services.
package models

import (
	"errors"
	"fmt"
	"strconv"
)

// Money is an exact amount in minor units (cents). It never passes through
// float64: the JSON API's decimal text is parsed digit by digit.
type Money int64

// MaxMoney bounds every amount the API accepts: one billion in major units.
// Anything larger is a typo or an attack, and staying far below int64's range
// keeps every sum and increment computed from it exact.
const MaxMoney Money = 1_000_000_000_00

// The rules an amount can break. Callers branch on them with errors.Is; the
// messages are written for API clients.
var (
	ErrMoneyFormat      = errors.New("amount must be a plain decimal number like 200 or 200.50 (no sign, exponent, spaces or quotes)")
	ErrMoneyPrecision   = errors.New("amount must have at most two decimal places")
	ErrMoneyNotPositive = errors.New("amount must be greater than zero")
	ErrMoneyTooLarge    = errors.New("amount must not exceed 1000000000.00")
)

// ParseMoney parses a strictly positive amount such as "200", "200.5" or
// "200.50". It is what request validation uses.
func ParseMoney(s string) (Money, error) {
	m, err := parseMoney(s)
	if err != nil {
		return 0, err
	}
	if m == 0 {
		return 0, ErrMoneyNotPositive
	}
	return m, nil
}

// parseMoney accepts zero, which events need for "no previous bid".
func parseMoney(s string) (Money, error) {
	if s == "" {
		return 0, ErrMoneyFormat
	}
	if s[0] == '-' {
		if len(s) > 1 && isDigit(s[1]) {
			return 0, ErrMoneyNotPositive
		}
		return 0, ErrMoneyFormat
	}
	intPart, fracPart, hasDot := cut(s, '.')
	if intPart == "" || !allDigits(intPart) || (hasDot && !allDigits(fracPart)) {
		return 0, ErrMoneyFormat
	}
	// JSON forbids leading zeros ("007"), and so do we: they make a typo look valid.
	if len(intPart) > 1 && intPart[0] == '0' {
		return 0, ErrMoneyFormat
	}
	if hasDot && fracPart == "" {
		return 0, ErrMoneyFormat
	}
	if len(fracPart) > 2 {
		return 0, ErrMoneyPrecision
	}
	// MaxMoney has 10 integer digits; longer text cannot be valid and must not
	// reach ParseInt, which would overflow on absurd sizes.
	if len(intPart) > 10 {
		return 0, ErrMoneyTooLarge
	}
	major, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return 0, ErrMoneyFormat
	}
	var minor int64
	for i := 0; i < 2; i++ {
		minor *= 10
		if i < len(fracPart) {
			minor += int64(fracPart[i] - '0')
		}
	}
	m := Money(major*100 + minor)
	if m > MaxMoney {
		return 0, ErrMoneyTooLarge
	}
	return m, nil
}

// String prints the amount with exactly two decimals, as the API does.
func (m Money) String() string {
	sign := ""
	v := int64(m)
	if v < 0 {
		sign = "-"
		v = -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// MarshalJSON writes the amount as a JSON number with two decimals
// ("amount": 200.00), keeping the documented shape without float rounding.
func (m Money) MarshalJSON() ([]byte, error) {
	return []byte(m.String()), nil
}

// UnmarshalJSON reads a JSON number exactly. Zero is allowed here because
// events carry "previous_bid": 0 for an item's first bid; request validation
// uses ParseMoney, which rejects it.
func (m *Money) UnmarshalJSON(b []byte) error {
	v, err := parseMoney(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
