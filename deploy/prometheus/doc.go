// Package prometheus holds no code: its tests check the alert rules
// (rules.yaml), their promtool unit tests (rules_test.yaml) and the Grafana
// dashboard (../grafana/yggdrasil.json) against the Prometheus rule parser,
// promtool and the metric tables of docs/metrics.md. It is a module of its
// own, outside go.work, because github.com/prometheus/prometheus is heavy
// and its dependencies would raise the versions the services build with:
// run its tests with GOWORK=off (make test does). No service may import it.
package prometheus
