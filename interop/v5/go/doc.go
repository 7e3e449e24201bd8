// Package v5interop holds FerroMQ's interop tests for the official RocketMQ 5 gRPC Go client
// (github.com/apache/rocketmq-clients/golang/v5): normal, FIFO, delay and transactional
// messages, SimpleConsumer and PushConsumer, invisible durations, retries and the DLQ, TLS and
// plaintext. TARGET=ferromq (default) starts $FERROMQ_BIN; TARGET=apache runs Apache RocketMQ
// 5.5.0 through ../apache-local.sh. See README.md.
package v5interop
