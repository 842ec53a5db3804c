// Package smoke holds the tests that keep the load tools runnable: the
// Python scripts against Debian's Locust and websockets, the benchmark
// script's Redis part, and every tool against the real gateway and broadcast
// service built from this repository. It has no code of its own.
package smoke
