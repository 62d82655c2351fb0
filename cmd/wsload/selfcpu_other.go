//go:build !unix

package main

import "time"

// selfCPU is not measured here (wsload reads servers' figures from /proc,
// which only Linux has): it reports zero.
func selfCPU() time.Duration { return 0 }
