// Package prometheus holds Veil's Prometheus files — the alert rules in alerts.yml, which its
// tests check, and the server configuration prometheus.yml; it has no code of its own.
package prometheus
