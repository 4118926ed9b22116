// Package deploy holds the tests that check Veil's deployment artifacts (Docker Compose,
// Kubernetes, load balancer, Prometheus, OpenTelemetry Collector and Grafana files) against
// each other and against Veil's configuration; it has no code of its own.
package deploy
