//go:build !linux

package server_test

import "errors"

// fanoutClientProcess needs Linux (the benchmarks that start it are Linux-only).
func fanoutClientProcess() error { return errors.New("fan-out client process: Linux only") }
