// Package interop holds the Go-client interoperability tests for FerroMQ.
//
// The tests start the ferromq binary ($FERROMQ_BIN, default
// ../../target/debug/ferromq) and drive it with the official Apache client
// github.com/apache/rocketmq-client-go/v2 v2.1.2:
//
//	cd interop/go && go test ./... -count=1 -timeout 20m
//
// Set FERROMQ_GO_LOG_LEVEL=debug|info to capture more client log lines
// (printed only for failing tests).
package interop
